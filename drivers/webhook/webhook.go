// Package webhook posts clustd role changes, and optionally the daemon's
// event stream, as JSON to an HTTP endpoint: a chat channel, a pager, an
// inventory.
//
// Notifications never slow a failover down: Trigger and Event only queue
// them, and one goroutine posts them in order, retrying failures with
// exponential backoff. The queue is bounded; when it is full the oldest
// notification is dropped, with a warning in the log, because the newest
// says what is true now.
//
// A role change is posted as
//
//	{"type":"role","node":"a","role":"master","term":7,"master":"a","reason":"elected","at":"2025-01-02T15:04:05.123Z"}
//
// with "local":true added when the driver demoted itself because the lease
// ran out with no word from the daemon. An event is posted as
//
//	{"type":"event","node":"a","term":7,"kind":"member_lost","detail":"b","at":"2025-01-02T15:04:05.123Z"}
//
// and a failover record, which only the new master's daemon passes to its
// drivers, so that each is posted once for the whole cluster, as
//
//	{"type":"failover","node":"b","term":8,"from":"a","to":"b","prev_term":7,"cause":"master_lost","no_master_ms":812,
//	 "last_contact":"…","lease_expired":"…","elected":"…","promoted":"…","at":"…"}
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/drivers/common"
)

// Defaults of Options.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultQueue      = 100
	DefaultAttempts   = 4
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Notification types, the "type" key of the JSON.
const (
	TypeRole  = "role"
	TypeEvent = "event"
	// TypeFailover is a failover record: one per change of master, posted
	// by the new master's driver.
	TypeFailover = "failover"
)

// FailoverNote is the JSON posted for a failover record: the new master
// (node), its term, and the record's keys (from, to, cause, no_master_ms,
// last_contact, lease_expired, elected, promoted).
type FailoverNote struct {
	Type string `json:"type"`
	Node string `json:"node"`
	Term uint64 `json:"term"`
	*driverproto.Failover
	At time.Time `json:"at"`
}

// RoleChange is the JSON posted when the node's role, term or master
// changes.
type RoleChange struct {
	Type   string    `json:"type"`
	Node   string    `json:"node"`
	Role   string    `json:"role"`
	Term   uint64    `json:"term"`
	Master string    `json:"master"`
	Reason string    `json:"reason"`
	Local  bool      `json:"local,omitempty"`
	At     time.Time `json:"at"`
}

// EventNote is the JSON posted for an entry of the daemon's event stream.
type EventNote struct {
	Type   string    `json:"type"`
	Node   string    `json:"node"`
	Term   uint64    `json:"term"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Options configures a Driver. Only URL is required.
type Options struct {
	// URL is where notifications are posted; http or https.
	URL string
	// Header is added to every request, for instance an Authorization.
	Header http.Header
	// Timeout bounds each attempt; the default is 5s.
	Timeout time.Duration
	// Queue is how many notifications may wait besides the one being
	// posted; the default is 100.
	Queue int
	// Attempts is how many times a notification is tried before it is
	// given up; the default is 4.
	Attempts int
	// MinBackoff and MaxBackoff bound the wait between attempts: it starts
	// at MinBackoff and doubles up to MaxBackoff. The defaults are 500ms
	// and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests; the default is a client of its own.
	Client *http.Client
	// Logger receives the driver's logs; the default is slog.Default().
	Logger *slog.Logger
	// Now reads the wall clock for the "at" key; tests replace it.
	Now func() time.Time
}

// Driver posts notifications. It implements driverclient.Driver; its Event
// method is meant for driverclient.Options.OnEvent.
type Driver struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	queue   []note
	closing bool
	wake    chan struct{} // a token when the queue or closing changed
	dropped uint64

	abort context.CancelFunc // cuts the sender short once Close gives up
	done  chan struct{}      // closed when the sender has ended
}

// note is one queued notification, encoded when it was made.
type note struct {
	what string // for logs: "role master term 7"
	body []byte
}

// New checks opts, fills in the defaults and starts the goroutine that
// posts. Close stops it.
func New(opts Options) (*Driver, error) {
	if err := CheckURL(opts.URL); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Queue == 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Attempts == 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	switch {
	case opts.Timeout < 0:
		return nil, fmt.Errorf("webhook: timeout %v: must be positive", opts.Timeout)
	case opts.Queue < 0:
		return nil, fmt.Errorf("webhook: queue %d: must be positive", opts.Queue)
	case opts.Attempts < 0:
		return nil, fmt.Errorf("webhook: attempts %d: must be positive", opts.Attempts)
	case opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff:
		return nil, fmt.Errorf("webhook: backoff from %v to %v: need 0 < MinBackoff <= MaxBackoff", opts.MinBackoff, opts.MaxBackoff)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, abort := context.WithCancel(context.Background())
	d := &Driver{
		opts:  opts,
		log:   log.With("url", redact(opts.URL)),
		wake:  make(chan struct{}, 1),
		abort: abort,
		done:  make(chan struct{}),
	}
	go d.send(ctx)
	return d, nil
}

// CheckURL reports whether u is an absolute http or https URL.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	switch {
	case u == "":
		return errors.New("no URL")
	case err != nil:
		return fmt.Errorf("URL %q: %v", u, err)
	case p.Scheme != "http" && p.Scheme != "https":
		return fmt.Errorf("URL %q: want an http:// or https:// URL", u)
	case p.Host == "":
		return fmt.Errorf("URL %q: no host", u)
	}
	return nil
}

// redact drops the password of a URL, which must not reach the logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// Trigger queues a role change notification and returns at once: a slow
// or dead endpoint must never hold up the acknowledgement the daemon waits
// for before a hand-over.
func (d *Driver) Trigger(_ context.Context, s driverclient.State) error {
	n := RoleChange{
		Type:   TypeRole,
		Node:   s.Node,
		Role:   common.Role(s),
		Term:   s.Term,
		Master: s.Master,
		Reason: s.Reason,
		Local:  s.Local,
		At:     d.opts.Now().UTC(),
	}
	d.enqueue(fmt.Sprintf("role %s term %d", n.Role, n.Term), n)
	return nil
}

// Event queues an event notification. It has the signature of
// driverclient.Options.OnEvent.
func (d *Driver) Event(ev driverproto.Event) {
	if ev.Kind == driverproto.EventFailover && ev.Failover != nil {
		d.enqueue(fmt.Sprintf("failover term %d", ev.Term), FailoverNote{
			Type: TypeFailover, Node: ev.Node, Term: ev.Term, Failover: ev.Failover, At: d.opts.Now().UTC(),
		})
		return
	}
	n := EventNote{Type: TypeEvent, Node: ev.Node, Term: ev.Term, Kind: ev.Kind, Detail: ev.Detail, At: d.opts.Now().UTC()}
	d.enqueue(fmt.Sprintf("event %s term %d", ev.Kind, ev.Term), n)
}

func (d *Driver) enqueue(what string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only strings, numbers and times: this cannot happen.
		d.log.Error("notification not encoded", "what", what, "err", err)
		return
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		d.log.Warn("notification after close dropped", "what", what)
		return
	}
	var lost *note
	if len(d.queue) >= d.opts.Queue {
		lost = &note{what: d.queue[0].what}
		d.queue = append(d.queue[:0], d.queue[1:]...)
		d.dropped++
	}
	d.queue = append(d.queue, note{what: what, body: body})
	dropped := d.dropped
	d.mu.Unlock()
	if lost != nil {
		d.log.Warn("webhook queue full: oldest notification dropped", "dropped", lost.what, "queue", d.opts.Queue, "dropped_total", dropped)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Dropped returns how many notifications were dropped because the queue
// was full.
func (d *Driver) Dropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// Close stops taking notifications and posts those still queued, until ctx
// ends; then it abandons the rest, including an attempt in flight. It
// returns ctx's error if notifications were abandoned.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	// The sender is stopped either way; abort also releases its context.
	defer d.abort()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
	}
	d.abort()
	<-d.done
	d.mu.Lock()
	left := len(d.queue)
	d.mu.Unlock()
	d.log.Warn("webhook closed with notifications undelivered", "left", left)
	return ctx.Err()
}

// send posts the queue in order until Close is called and the queue is
// empty, or ctx ends.
func (d *Driver) send(ctx context.Context) {
	defer close(d.done)
	for {
		d.mu.Lock()
		var n note
		have := len(d.queue) > 0
		if have {
			n = d.queue[0]
			d.queue = d.queue[1:]
		}
		closing := d.closing
		d.mu.Unlock()
		if !have {
			if closing {
				return
			}
			select {
			case <-d.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if !d.deliver(ctx, n) && ctx.Err() != nil {
			// Put back what was being posted, so that Close counts it.
			d.mu.Lock()
			d.queue = append([]note{n}, d.queue...)
			d.mu.Unlock()
			return
		}
	}
}

// deliver posts n, retrying with backoff, and reports whether it arrived.
func (d *Driver) deliver(ctx context.Context, n note) bool {
	wait := d.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		retry, err := d.post(ctx, n.body)
		if err == nil {
			d.log.Debug("notification delivered", "what", n.what, "attempt", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retry || attempt >= d.opts.Attempts {
			d.log.Error("notification given up", "what", n.what, "attempts", attempt, "err", err)
			return false
		}
		d.log.Warn("notification failed; retrying", "what", n.what, "attempt", attempt, "in", wait.String(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		wait = min(2*wait, d.opts.MaxBackoff)
	}
}

// post makes one attempt. retry says whether another attempt may succeed:
// not after a refusal such as 400 or 404, which will be the same next time.
func (d *Driver) post(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, vs := range d.opts.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clustd-webhook")
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return true, err
	}
	// Drained, within reason, so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusRequestTimeout:
		return true, errors.New(resp.Status)
	default:
		return false, errors.New(resp.Status + " (not retried)")
	}
}

// ParseHeader parses "Name: value", as in --header.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return "", "", fmt.Errorf("header %q: want Name: value", s)
	}
	for _, r := range name {
		if !isToken(r) {
			return "", "", fmt.Errorf("header %q: %q is not a header name", s, name)
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("header %q: the value holds a line break or NUL", s)
	}
	return http.CanonicalHeaderKey(name), value, nil
}

// isToken reports whether r may appear in an HTTP header name (an RFC 9110
// token).
func isToken(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
