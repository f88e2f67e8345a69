package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

type fakeSender struct {
	mu    sync.Mutex
	got   []Message
	fails int // the first fails sends fail
}

func (f *fakeSender) Send(_ context.Context, m Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("mail server down")
	}
	f.got = append(f.got, m)
	return nil
}

func (f *fakeSender) String() string { return "fake" }

func (f *fakeSender) sent() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func record(term uint64, cause string, rev int) driverproto.Event {
	el := time.Date(2026, 3, 14, 9, 26, 5, 450e6, time.UTC)
	lc, le, pr := el.Add(-248*time.Millisecond), el.Add(-158*time.Millisecond), el.Add(13*time.Millisecond)
	return driverproto.Event{Kind: driverproto.EventFailover, Node: "b", Term: term, Failover: &driverproto.Failover{
		From: "a", To: "b", PrevTerm: term - 1, Cause: cause, NoMasterMS: 158, Rev: rev,
		LastContact: &lc, LeaseExpired: &le, Elected: el, Promoted: &pr,
	}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// One message per record; a revision within the window replaces the
// record; other events send nothing.
func TestOneMessagePerRecord(t *testing.T) {
	s := &fakeSender{}
	d, err := New(Options{Sender: s, Window: 200 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	d.Event(driverproto.Event{Kind: driverproto.EventMemberLost, Node: "b", Detail: "a"})
	d.Event(record(4, driverproto.CauseMasterLost, 0))
	d.Event(record(4, driverproto.CausePaused, 1))
	d.Event(record(4, driverproto.CauseMasterLost, 0)) // an older revision, again
	d.Event(record(5, driverproto.CauseTransfer, 0))
	waitFor(t, "two messages", func() bool { return len(s.sent()) == 2 })
	d.Event(record(4, driverproto.CauseIsolated, 2)) // after it was sent
	d.Close(context.Background())
	got := s.sent()
	if len(got) != 2 || got[0].Term != 4 || got[0].Record.Cause != driverproto.CausePaused || got[1].Term != 5 {
		t.Fatalf("sent %+v", got)
	}
	if !strings.Contains(got[0].Subject, "a -> b (paused)") {
		t.Errorf("subject %q", got[0].Subject)
	}
}

// A burst beyond the bucket waits; Close sends what waits at once.
func TestRateLimitAndRetry(t *testing.T) {
	s := &fakeSender{fails: 2}
	d, _ := New(Options{Sender: s, Window: time.Nanosecond, Burst: 2, PerHour: 1, MinBackoff: time.Millisecond, Logger: quiet()})
	for term := uint64(2); term < 7; term++ {
		d.Event(record(term, driverproto.CauseMasterLost, 0))
	}
	waitFor(t, "the burst", func() bool { return len(s.sent()) == 2 })
	// The rest waits for tokens: an hour per message here.
	time.Sleep(50 * time.Millisecond)
	if n := len(s.sent()); n != 2 {
		t.Fatalf("%d sent beyond a burst of 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Close(ctx)
	if n := len(s.sent()); n != 5 {
		t.Fatalf("after Close %d of 5 sent", n)
	}
}

// Event never blocks, even with the sender stuck.
func TestEventNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	d, _ := New(Options{Sender: stuckSender{block}, Window: time.Nanosecond, Queue: 3, Logger: quiet()})
	done := make(chan struct{})
	go func() {
		for term := uint64(2); term < 1000; term++ {
			d.Event(record(term, driverproto.CauseMasterLost, 0))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Event blocked behind a stuck sender")
	}
	close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	d.Close(ctx)
}

type stuckSender struct{ c chan struct{} }

func (s stuckSender) Send(ctx context.Context, _ Message) error {
	select {
	case <-s.c:
	case <-ctx.Done():
	}
	return nil
}
func (stuckSender) String() string { return "stuck" }

func TestFormat(t *testing.T) {
	ev := record(8, driverproto.CauseMasterLost, 0)
	subject, text := Format(ev.Term, ev.Failover, time.UTC)
	if subject != "clustd failover: a -> b (master_lost), no master for 158 ms" {
		t.Errorf("subject %q", subject)
	}
	want := `The master of the clustd cluster moved from a to b.

  old master:            a (term 7)
  new master:            b (term 8)
  cause:                 master_lost: the master stopped answering (crashed, killed, or its machine or network went down) and its lease ran out
  no master for:         158 ms

  last contact with a:   2026-03-14 09:26:05.202 UTC
  lease of a over:       2026-03-14 09:26:05.292 UTC
  b elected:             2026-03-14 09:26:05.450 UTC
  drivers of b promoted: 2026-03-14 09:26:05.463 UTC (13 ms after the election)

Reported by clustd on b. ` + "`clustd events --failovers`" + ` on any member lists every failover.
`
	if text != want {
		t.Errorf("text:\n%s\nwant:\n%s", text, want)
	}
}

func TestSMTPOptions(t *testing.T) {
	for _, bad := range []SMTPOptions{
		{URL: "http://mail:25", From: "a@b", To: []string{"c@d"}},
		{URL: "smtp://u:pw@mail:587", From: "a@b", To: []string{"c@d"}},
		{URL: "smtp://mail:587", From: "not an address", To: []string{"c@d"}},
		{URL: "smtp://mail:587", From: "a@b"},
		{URL: "smtp://mail:587?starttls=maybe", From: "a@b", To: []string{"c@d"}},
	} {
		if _, err := NewSMTP(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := NewSMTP(SMTPOptions{URL: "smtp://ops@mail:587?starttls=required", Password: "pw", From: "a@b", To: []string{"c@d"}}); err != nil {
		t.Error(err)
	}
}
