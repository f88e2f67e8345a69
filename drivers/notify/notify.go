// Package notify tells people about failovers: one message per failover
// record, by mail, to a Slack channel or to a webhook.
//
// The daemon passes a failover record only to the drivers of the node that
// made it, the new master, so running the notifier on every machine sends
// each record once for the whole cluster.
//
// Sending never holds the daemon or a failover up: Event queues the record
// and returns. A record waits for the batching window before it goes, so
// that a revision of it (the former master saying, once it runs again, that
// it was paused or isolated) replaces it rather than following it; records
// that arrive together go out together. A token bucket limits how many
// messages leave per hour, so that a flapping cluster cannot flood the
// inbox: records beyond it wait their turn, and when more than the queue
// holds are waiting, the oldest is dropped with a warning. A failed send is
// retried with exponential backoff.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

// Defaults of Options.
const (
	DefaultWindow     = 5 * time.Second
	DefaultPerHour    = 30
	DefaultBurst      = 10
	DefaultQueue      = 100
	DefaultAttempts   = 6
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// Message is one notification.
type Message struct {
	// Subject is one line; Text is the plain-text body.
	Subject string
	Text    string
	// Node and Term are the new master and its term; Record the record.
	Node   string
	Term   uint64
	Record *driverproto.Failover
}

// Sender delivers messages: mail, Slack, a webhook.
type Sender interface {
	// Send delivers one message, or fails; ctx bounds one attempt.
	Send(ctx context.Context, m Message) error
	// String names the destination for the logs, without secrets.
	String() string
}

// Options configure a Driver. Sender is required.
type Options struct {
	Sender Sender
	// Window is how long a record waits for a revision before it is sent.
	Window time.Duration
	// PerHour and Burst shape the token bucket: Burst messages at once,
	// then PerHour an hour.
	PerHour, Burst int
	// Queue bounds the records waiting.
	Queue int
	// Attempts, MinBackoff and MaxBackoff shape the retries.
	Attempts               int
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt. Default 30s.
	Timeout time.Duration
	// Zone is the time zone of the times in the text; default UTC.
	Zone   *time.Location
	Logger *slog.Logger
}

type pending struct {
	msg   Message
	ready time.Time // when the window ends
}

// Driver is the notifier. It implements driverclient.Driver (it acts on no
// role change) and takes the event stream through Event.
type Driver struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	queue   []pending
	sent    map[uint64]int // revision sent, by term
	tokens  float64
	last    time.Time // when tokens was last topped up
	closing bool
	flush   bool
	wake    chan struct{}
	done    chan struct{}
	dropped int
}

// New starts a notifier.
func New(opts Options) (*Driver, error) {
	if opts.Sender == nil {
		return nil, errors.New("notify: no destination")
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.PerHour <= 0 {
		opts.PerHour = DefaultPerHour
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Zone == nil {
		opts.Zone = time.UTC
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{
		opts: opts, log: log, sent: map[uint64]int{}, tokens: float64(opts.Burst), last: time.Now(),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go d.run()
	return d, nil
}

// Trigger does nothing: the notifier follows failover records, not the
// node's role.
func (d *Driver) Trigger(context.Context, driverclient.State) error { return nil }

// Event queues a failover record; other events are ignored. It never
// blocks.
func (d *Driver) Event(ev driverproto.Event) {
	if ev.Kind != driverproto.EventFailover || ev.Failover == nil {
		return
	}
	f := *ev.Failover
	msg := Message{Node: ev.Node, Term: ev.Term, Record: &f}
	msg.Subject, msg.Text = Format(ev.Term, &f, d.opts.Zone)
	d.mu.Lock()
	if rev, ok := d.sent[ev.Term]; ok {
		d.mu.Unlock()
		if f.Rev > rev {
			d.log.Warn("a failover record was revised after it was sent; not sending it again", "term", ev.Term, "cause", f.Cause)
		}
		return
	}
	for i := range d.queue {
		if d.queue[i].msg.Term == ev.Term {
			if f.Rev >= d.queue[i].msg.Record.Rev {
				d.queue[i].msg = msg
			}
			d.mu.Unlock()
			return
		}
	}
	if d.closing {
		d.mu.Unlock()
		d.log.Warn("failover record after close not sent", "term", ev.Term)
		return
	}
	if len(d.queue) >= d.opts.Queue {
		lost := d.queue[0]
		d.queue = d.queue[1:]
		d.dropped++
		d.log.Warn("notification queue full: the oldest failover record is not sent", "term", lost.msg.Term, "queue", d.opts.Queue)
	}
	d.queue = append(d.queue, pending{msg: msg, ready: time.Now().Add(d.opts.Window)})
	d.mu.Unlock()
	d.kick()
}

func (d *Driver) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close sends what is queued without waiting for the window, until ctx
// ends, and stops.
func (d *Driver) Close(ctx context.Context) {
	d.mu.Lock()
	d.closing, d.flush = true, true
	d.mu.Unlock()
	d.kick()
	select {
	case <-d.done:
	case <-ctx.Done():
		d.mu.Lock()
		n := len(d.queue)
		d.queue = nil
		d.mu.Unlock()
		if n > 0 {
			d.log.Warn("stopping with failover records not sent", "count", n)
		}
		<-d.done
	}
}

// run sends the records whose window has passed, as the bucket allows.
func (d *Driver) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		now := time.Now()
		d.tokens = min(float64(d.opts.Burst), d.tokens+now.Sub(d.last).Hours()*float64(d.opts.PerHour))
		d.last = now
		var next *pending
		wait := time.Duration(-1)
		if len(d.queue) > 0 {
			p := d.queue[0]
			switch {
			case !d.flush && now.Before(p.ready):
				wait = p.ready.Sub(now)
			case d.tokens < 1 && !d.flush:
				wait = time.Duration((1 - d.tokens) / float64(d.opts.PerHour) * float64(time.Hour))
			default:
				d.queue = d.queue[1:]
				d.tokens = max(d.tokens-1, 0)
				next = &p
			}
		}
		stop := d.closing && len(d.queue) == 0 && next == nil
		d.mu.Unlock()
		if stop {
			return
		}
		if next != nil {
			d.send(next.msg)
			continue
		}
		var timer <-chan time.Time
		if wait >= 0 {
			timer = time.After(wait)
		}
		select {
		case <-d.wake:
		case <-timer:
		}
	}
}

// send delivers one message with retries.
func (d *Driver) send(m Message) {
	backoff := d.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
		err := d.opts.Sender.Send(ctx, m)
		cancel()
		if err == nil {
			d.mu.Lock()
			d.sent[m.Term] = m.Record.Rev
			for t := range d.sent {
				if t+1000 < m.Term {
					delete(d.sent, t)
				}
			}
			d.mu.Unlock()
			d.log.Info("failover notification sent", "to", d.opts.Sender.String(), "term", m.Term, "from", m.Record.From, "new_master", m.Record.To, "cause", m.Record.Cause)
			return
		}
		d.mu.Lock()
		closing := d.closing
		d.mu.Unlock()
		if attempt >= d.opts.Attempts || closing && attempt >= 2 {
			d.log.Error("failover notification not sent", "to", d.opts.Sender.String(), "term", m.Term, "attempts", attempt, "err", err)
			return
		}
		d.log.Warn("failover notification failed; retrying", "to", d.opts.Sender.String(), "term", m.Term, "attempt", attempt, "in", backoff, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, d.opts.MaxBackoff)
	}
}

// causeText explains each cause in a few words.
var causeText = map[string]string{
	driverproto.CauseMasterLost:  "the master stopped answering (crashed, killed, or its machine or network went down) and its lease ran out",
	driverproto.CauseIsolated:    "the master was cut off from the majority of the cluster and its lease ran out",
	driverproto.CausePaused:      "the master's process or machine stopped running past the end of its lease",
	driverproto.CauseTransfer:    "the role was handed over on request (clustd transfer, or the master's daemon stopping)",
	driverproto.CauseMaintenance: "the master was put in maintenance and handed the role over",
	driverproto.CauseCheckFailed: "a required driver of the master reported it unhealthy, and it handed the role over",
	driverproto.CausePreempted:   "a member of higher priority took the role back",
}

// Format renders a failover record as a subject line and a plain-text body.
func Format(term uint64, f *driverproto.Failover, zone *time.Location) (subject, text string) {
	subject = fmt.Sprintf("clustd failover: %s -> %s (%s), no master for %s", f.From, f.To, f.Cause, formatMS(f.NoMasterMS))
	at := func(t time.Time) string { return t.In(zone).Format("2006-01-02 15:04:05.000 MST") }
	var b strings.Builder
	fmt.Fprintf(&b, "The master of the clustd cluster moved from %s to %s.\n\n", f.From, f.To)
	row := func(k, v string) { fmt.Fprintf(&b, "  %-22s %s\n", k+":", v) }
	row("old master", fmt.Sprintf("%s (term %d)", f.From, f.PrevTerm))
	row("new master", fmt.Sprintf("%s (term %d)", f.To, term))
	why := causeText[f.Cause]
	if why != "" {
		why = ": " + why
	}
	row("cause", f.Cause+why)
	row("no master for", formatMS(f.NoMasterMS))
	b.WriteString("\n")
	if f.LastContact != nil {
		row("last contact with "+f.From, at(*f.LastContact))
	}
	if f.LeaseExpired != nil {
		row("lease of "+f.From+" over", at(*f.LeaseExpired))
	}
	row(f.To+" elected", at(f.Elected))
	if f.Promoted != nil {
		row("drivers of "+f.To+" promoted", fmt.Sprintf("%s (%s after the election)", at(*f.Promoted), formatMS(f.Promoted.Sub(f.Elected).Milliseconds())))
	} else {
		row("drivers of "+f.To+" promoted", "no driver confirmed")
	}
	fmt.Fprintf(&b, "\nReported by clustd on %s. `clustd events --failovers` on any member lists every failover.\n", f.To)
	return subject, b.String()
}

func formatMS(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.1f s", float64(ms)/1000)
}
