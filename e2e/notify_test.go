package e2e

import (
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/clustd/clustd/node/journal"
)

// mailbox is a real SMTP server (emersion/go-smtp) on loopback that keeps
// what it receives.
type mailbox struct {
	mu    sync.Mutex
	mails []receivedMail
}

type receivedMail struct {
	from    string
	to      []string
	subject string
	body    string
}

type mailSession struct {
	box  *mailbox
	from string
	to   []string
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }
func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	s.box.mails = append(s.box.mails, receivedMail{from: s.from, to: s.to, subject: msg.Header.Get("Subject"), body: string(b)})
	s.box.mu.Unlock()
	return nil
}

func (b *mailbox) received() []receivedMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]receivedMail(nil), b.mails...)
}

func startMailServer(t *testing.T) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: box}, nil }))
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return box, ln.Addr().String()
}

// A notifier on every machine sends exactly one mail per failover during a
// sequence of five kills of the master, each naming the old and the new
// master, the cause and how long there was no master.
func TestNotifyOneMailPerFailover(t *testing.T) {
	box, addr := startMailServer(t)
	c := newCluster(t, 3, "fast")
	c.startAll()
	c.waitMaster(30 * time.Second)
	var notifiers []*driverProc
	for i := range c.ids {
		notifiers = append(notifiers, c.startDriverProc(i, "notify", "--smtp", "smtp://"+addr,
			"--from", "clustd@example.test", "--to", "ops@example.test", "--window", "100ms"))
	}
	allConnected := func() bool {
		for i := range c.ids {
			if c.driversConnected(i) != 1 {
				return false
			}
		}
		return true
	}
	type failover struct {
		from, to string
		term     uint64
	}
	var want []failover
	for k := range 5 {
		c.waitFor(30*time.Second, "every notifier connected", allConnected)
		// A master killed inside its stop budget never acted and never
		// passed its failover record to its drivers: wait for the mail of
		// the previous failover, so that each kill ends a master that was.
		c.waitFor(30*time.Second, fmt.Sprintf("%d mails", k), func() bool { return len(box.received()) >= k })
		m, before, _ := c.waitMaster(30 * time.Second)
		c.kill(m)
		n, st, _ := c.waitMaster(30*time.Second, c.others(m)...)
		if st.Term <= before.Term {
			t.Fatalf("kill %d: term %d after %d", k+1, st.Term, before.Term)
		}
		want = append(want, failover{from: c.ids[m], to: c.ids[n], term: st.Term})
		c.start(m)
		c.waitFor(30*time.Second, c.ids[m]+" back as a follower", func() bool {
			s, err := c.status(m)
			return err == nil && s.Master == c.ids[n]
		})
	}
	c.waitFor(30*time.Second, "every notifier connected", allConnected)
	c.waitFor(30*time.Second, "five mails", func() bool { return len(box.received()) >= 5 })
	// Stopping the notifiers sends anything still queued: after that no
	// mail can come, and the count is final.
	for _, dp := range notifiers {
		dp.terminate(15 * time.Second)
	}
	mails := box.received()

	// The cluster's own account: every failover record of the run.
	var records []journal.Event
	evs, err := c.admin(0).Events(t.Context(), "", 100, true)
	if err != nil {
		t.Fatal(err)
	}
	records = evs.Events
	if len(records) != 5 {
		t.Fatalf("the cluster recorded %d failovers, want 5: %+v", len(records), records)
	}
	if len(mails) != 5 {
		var subjects []string
		for _, m := range mails {
			subjects = append(subjects, m.subject)
		}
		t.Fatalf("%d mails for 5 failovers:\n%s", len(mails), strings.Join(subjects, "\n"))
	}
	for _, f := range want {
		var found []receivedMail
		for _, m := range mails {
			if strings.Contains(m.body, fmt.Sprintf("new master:            %s (term %d)", f.to, f.term)) {
				found = append(found, m)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d mails for the failover %s -> %s in term %d", len(found), f.from, f.to, f.term)
		}
		m := found[0]
		for _, s := range []string{
			fmt.Sprintf("moved from %s to %s", f.from, f.to),
			"old master:            " + f.from,
			"cause:                 master_lost",
			"no master for:         ",
		} {
			if !strings.Contains(m.body, s) {
				t.Errorf("the mail for term %d lacks %q:\n%s", f.term, s, m.body)
			}
		}
		if m.from != "clustd@example.test" || len(m.to) != 1 || m.to[0] != "ops@example.test" {
			t.Errorf("envelope %s -> %v", m.from, m.to)
		}
		if !strings.HasPrefix(m.subject, fmt.Sprintf("clustd failover: %s -> %s (master_lost), no master for ", f.from, f.to)) {
			t.Errorf("subject %q", m.subject)
		}
	}
}
