package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

var at = time.Date(2025, 1, 2, 15, 4, 5, 123e6, time.UTC)

func masterAt(term uint64) driverclient.State {
	return driverclient.State{Node: "a", Role: driverproto.RoleMaster, IsMaster: true, Term: term, Master: "a", Reason: "elected"}
}

// receiver is a webhook endpoint that records what it gets and answers
// with the statuses it is given, then 200.
type receiver struct {
	mu       sync.Mutex
	bodies   []string
	headers  []http.Header
	statuses []int
	hold     chan struct{} // if set, requests wait for it to close
	srv      *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.headers = append(r.headers, req.Header.Clone())
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func newDriver(t *testing.T, url string, edit func(*Options)) *Driver {
	t.Helper()
	opts := Options{
		URL:        url,
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
		Now:        func() time.Time { return at },
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d
}

// waitFor polls cond until it holds or ten seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// within fails the test if f does not return within a few seconds: it
// must not block on the endpoint.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestNotifications(t *testing.T) {
	r := newReceiver(t)
	d := newDriver(t, r.srv.URL, func(o *Options) { o.Header = http.Header{"Authorization": {"Bearer x"}} })
	if err := d.Trigger(context.Background(), masterAt(7)); err != nil {
		t.Fatal(err)
	}
	lost := driverclient.State{Node: "a", Role: driverproto.RoleFollower, Term: 7, Reason: "the lease of term 7 ran out", Local: true}
	if err := d.Trigger(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	d.Event(driverproto.Event{Kind: driverproto.EventMemberLost, Node: "a", Term: 7, Detail: "b", AtNS: 12345})
	want := []string{
		`{"type":"role","node":"a","role":"master","term":7,"master":"a","reason":"elected","at":"2025-01-02T15:04:05.123Z"}`,
		`{"type":"role","node":"a","role":"follower","term":7,"master":"","reason":"the lease of term 7 ran out","local":true,"at":"2025-01-02T15:04:05.123Z"}`,
		`{"type":"event","node":"a","term":7,"kind":"member_lost","detail":"b","at":"2025-01-02T15:04:05.123Z"}`,
	}
	waitFor(t, "three notifications", func() bool { return len(r.got()) == 3 })
	if got := r.got(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h := r.headers[0]
	if h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "Bearer x" {
		t.Errorf("headers %v", h)
	}
	// The documented keys are there for role changes.
	var m map[string]any
	if err := json.Unmarshal([]byte(r.got()[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node", "role", "term", "master", "reason", "at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
}

func TestRetriesServerErrors(t *testing.T) {
	r := newReceiver(t)
	r.statuses = []int{500, 503, 429}
	d := newDriver(t, r.srv.URL, nil)
	d.Trigger(context.Background(), masterAt(1))
	d.Trigger(context.Background(), masterAt(2))
	waitFor(t, "delivery after retries", func() bool { return len(r.got()) == 5 })
	got := r.got()
	for i := range 4 {
		if !strings.Contains(got[i], `"term":1`) {
			t.Errorf("request %d: %s, want the first notification again", i, got[i])
		}
	}
	if !strings.Contains(got[4], `"term":2`) {
		t.Errorf("request 5: %s, want the second notification", got[4])
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	r := newReceiver(t)
	r.statuses = []int{500, 500, 500, 200}
	d := newDriver(t, r.srv.URL, func(o *Options) { o.Attempts = 3 })
	d.Trigger(context.Background(), masterAt(1))
	d.Trigger(context.Background(), masterAt(2))
	waitFor(t, "the second notification", func() bool { return len(r.got()) == 4 })
	if got := r.got(); !strings.Contains(got[2], `"term":1`) || !strings.Contains(got[3], `"term":2`) {
		t.Errorf("received %q: want three attempts at term 1, then term 2", got)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	r := newReceiver(t)
	r.statuses = []int{404}
	d := newDriver(t, r.srv.URL, nil)
	d.Trigger(context.Background(), masterAt(1))
	d.Trigger(context.Background(), masterAt(2))
	waitFor(t, "the second notification", func() bool { return len(r.got()) == 2 })
	if got := r.got(); !strings.Contains(got[1], `"term":2`) {
		t.Errorf("received %q: a 404 was retried", got)
	}
}

func TestQueueBoundDropsOldest(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	d := newDriver(t, r.srv.URL, func(o *Options) { o.Queue = 3 })
	d.Trigger(context.Background(), masterAt(1))
	// The first is in flight, held by the endpoint.
	waitFor(t, "the first request", func() bool { return len(r.got()) == 1 })
	within(t, "Trigger with the endpoint hanging", func() {
		for term := uint64(2); term <= 11; term++ {
			if err := d.Trigger(context.Background(), masterAt(term)); err != nil {
				t.Error(err)
			}
		}
	})
	if got := d.Dropped(); got != 7 {
		t.Errorf("Dropped() = %d, want 7", got)
	}
	r.mu.Lock()
	close(r.hold)
	r.hold = nil
	r.mu.Unlock()
	waitFor(t, "the queue to drain", func() bool { return len(r.got()) == 4 })
	var terms []float64
	for _, b := range r.got() {
		var m map[string]any
		json.Unmarshal([]byte(b), &m)
		terms = append(terms, m["term"].(float64))
	}
	if len(terms) != 4 || terms[0] != 1 || terms[1] != 9 || terms[2] != 10 || terms[3] != 11 {
		t.Errorf("terms delivered %v, want 1 (in flight) then the newest 9 10 11", terms)
	}
}

func TestTriggerDoesNotWaitForAHangingEndpoint(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	defer close(r.hold)
	d := newDriver(t, r.srv.URL, func(o *Options) { o.Timeout = time.Hour })
	within(t, "Trigger", func() {
		for term := range uint64(500) {
			d.Trigger(context.Background(), masterAt(term+1))
			d.Event(driverproto.Event{Kind: driverproto.EventElection, Node: "a", Term: term + 1})
		}
	})
}

func TestCloseFlushesTheQueue(t *testing.T) {
	r := newReceiver(t)
	d := newDriver(t, r.srv.URL, nil)
	for term := range uint64(5) {
		d.Trigger(context.Background(), masterAt(term+1))
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); len(got) != 5 {
		t.Errorf("%d notifications delivered before Close returned, want 5", len(got))
	}
	// Later ones are dropped, not queued for ever.
	d.Trigger(context.Background(), masterAt(9))
	if got := r.got(); len(got) != 5 {
		t.Errorf("a notification after Close was delivered")
	}
}

func TestCloseGivesUpOnAHangingEndpoint(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	defer close(r.hold)
	d := newDriver(t, r.srv.URL, func(o *Options) { o.Timeout = time.Hour })
	d.Trigger(context.Background(), masterAt(1))
	d.Trigger(context.Background(), masterAt(2))
	waitFor(t, "the first request", func() bool { return len(r.got()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err error
	within(t, "Close", func() { err = d.Close(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	r := newReceiver(t)
	url := r.srv.URL
	r.srv.Close()
	d := newDriver(t, url, func(o *Options) { o.Attempts = 2 })
	d.Trigger(context.Background(), masterAt(1))
	// Given up after two attempts, the queue is empty again and Close has
	// nothing left to wait for.
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"http://h/x", "https://h:8443/hook?x=1"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"", "h/x", "ftp://h/x", "http://", "http://h:x/", "/hook"} {
		if err := CheckURL(u); err == nil {
			t.Errorf("CheckURL(%q) accepted", u)
		}
	}
}

func TestParseHeader(t *testing.T) {
	name, value, err := ParseHeader("authorization:  Bearer abc ")
	if err != nil || name != "Authorization" || value != "Bearer abc" {
		t.Errorf("ParseHeader = %q, %q, %v", name, value, err)
	}
	for _, h := range []string{"", "no colon", ": x", "a b: c", "X: a\nb"} {
		if _, _, err := ParseHeader(h); err == nil {
			t.Errorf("ParseHeader(%q) accepted", h)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("https://u:secret@h/x"); strings.Contains(got, "secret") {
		t.Errorf("redact left the password: %s", got)
	}
}

func TestFailoverPayload(t *testing.T) {
	r := newReceiver(t)
	d := newDriver(t, r.srv.URL, nil)
	elected := time.Date(2026, 3, 14, 9, 26, 5, 450e6, time.UTC)
	d.Event(driverproto.Event{Kind: driverproto.EventFailover, Node: "b", Term: 8, Failover: &driverproto.Failover{
		From: "a", To: "b", PrevTerm: 7, Cause: driverproto.CauseMasterLost, NoMasterMS: 812, Elected: elected,
	}})
	waitFor(t, "the failover notification", func() bool { return len(r.got()) == 1 })
	want := `{"type":"failover","node":"b","term":8,"from":"a","to":"b","prev_term":7,"cause":"master_lost","no_master_ms":812,"elected":"2026-03-14T09:26:05.45Z","at":"2025-01-02T15:04:05.123Z"}`
	if got := r.got()[0]; got != want {
		t.Errorf("received\n%s\nwant\n%s", got, want)
	}
}
