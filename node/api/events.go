package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clustd/clustd/node/journal"
)

// Journal reading limits.
const (
	// DefaultEventLimit is how many events GET /v1/events returns without
	// a limit.
	DefaultEventLimit = 100
	// MaxEventLimit bounds limit.
	MaxEventLimit = 10000
	// statusEvery is how often the event stream sends the status, so that
	// a page's lease countdown, reachability and round trips stay current.
	statusEvery  = time.Second
	streamBuffer = 256
)

// Events is the body of GET /v1/events.
type Events struct {
	Node string `json:"node"`
	// Events are oldest first.
	Events []journal.Event `json:"events"`
	// LastSeq is the journal's last sequence number: ?since=LastSeq asks
	// for what follows.
	LastSeq uint64 `json:"last_seq"`
}

// DriverStatus is one driver connected to the daemon, as the event
// stream's status names it.
type DriverStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Healthy  bool   `json:"healthy"`
	Reason   string `json:"reason,omitempty"`
}

// DriverLister is what a Daemon also implements when it has drivers to
// show on the status page.
type DriverLister interface {
	// Drivers lists the connected drivers, sorted by id.
	Drivers() []DriverStatus
}

// StreamStatus is the data of the event stream's status events: the
// status and the drivers.
type StreamStatus struct {
	Status
	Drivers []DriverStatus `json:"drivers"`
}

// ParseSince reads the since parameter of the events API and of clustd
// events: a sequence number (events after it), a duration (events of that
// last stretch of time, as 1h or 90m) or an RFC 3339 time (events from
// then). Empty selects everything.
func ParseSince(s string, now time.Time) (journal.Query, error) {
	var q journal.Query
	s = strings.TrimSpace(s)
	if s == "" {
		return q, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		q.AfterSeq = n
		return q, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return q, fmt.Errorf("since %q: a duration must not be negative", s)
		}
		q.Since = now.Add(-d)
		return q, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		q.Since = t
		return q, nil
	}
	return q, fmt.Errorf("since %q: expected a sequence number, a duration such as 1h, or an RFC 3339 time such as 2025-01-02T15:04:05Z", s)
}

func (h *handler) eventsQuery(r *http.Request) (journal.Query, error) {
	v := r.URL.Query()
	q, err := ParseSince(v.Get("since"), time.Now())
	if err != nil {
		return q, err
	}
	q.Limit = DefaultEventLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxEventLimit {
			return q, fmt.Errorf("limit %q: expected 1 to %d", l, MaxEventLimit)
		}
		q.Limit = n
	}
	switch v.Get("failovers") {
	case "", "0", "false":
	case "1", "true":
		q.Failovers = true
	default:
		return q, fmt.Errorf("failovers %q: expected 1 or 0", v.Get("failovers"))
	}
	return q, nil
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	if h.journal == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon has no event journal (see its log for why it could not be opened)")
		return
	}
	q, err := h.eventsQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	evs, err := h.journal.Read(q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return
	}
	if evs == nil {
		evs = []journal.Event{}
	}
	writeJSON(w, http.StatusOK, Events{Node: h.d.Status().Node, Events: evs, LastSeq: h.journal.LastSeq()})
}

// streamWriteTimeout bounds one write of an event stream: a client that
// stops reading is dropped rather than held for ever.
const streamWriteTimeout = 10 * time.Second

// eventStream serves the journal as Server-Sent Events: each journal
// event as a message whose id is its sequence number and whose data is
// its JSON, and every second, and after each event, the node's status as
// an event named "status". A client resuming with Last-Event-ID (or
// ?since=) gets what it missed first; a new one gets the last ?limit=
// events (default 100).
func (h *handler) eventStream(w http.ResponseWriter, r *http.Request) {
	if h.journal == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon has no event journal (see its log for why it could not be opened)")
		return
	}
	q, ok := h.streamQuery(w, r)
	if !ok {
		return
	}
	past, sub, err := h.journal.SubscribeAfter(q, streamBuffer)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return
	}
	defer sub.Close()
	s := h.startStream(w)
	// Tell the browser to come back quickly after a restart of the daemon.
	if s.write("retry: 500\n\n") != nil {
		return
	}
	for _, ev := range past {
		if s.event(ev) != nil {
			return
		}
	}
	if s.status() != nil {
		return
	}
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				// Cut off for falling behind, or the daemon is stopping:
				// the client reconnects with Last-Event-ID.
				return
			}
			if q.Failovers && !ev.IsFailover() {
				continue
			}
			if s.event(ev) != nil || s.status() != nil {
				return
			}
		case <-tick.C:
			if s.status() != nil {
				return
			}
		}
	}
}

// streamQuery reads the stream's query, in which a Last-Event-ID header
// overrides ?since= and ?limit=. It answers a bad one itself and returns
// false.
func (h *handler) streamQuery(w http.ResponseWriter, r *http.Request) (journal.Query, bool) {
	q, err := h.eventsQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return q, false
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Last-Event-ID %q: expected a sequence number", id))
			return q, false
		}
		q = journal.Query{AfterSeq: n, Failovers: q.Failovers, Limit: MaxEventLimit}
	}
	return q, true
}

// eventWriter writes the messages of one event stream, each with a write
// deadline of its own.
type eventWriter struct {
	h  *handler
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startStream sends the headers of an event stream.
func (h *handler) startStream(w http.ResponseWriter) *eventWriter {
	rc := http.NewResponseController(w)
	// The server's read and write timeouts bound ordinary requests; a
	// stream outlives them, so each write gets a deadline of its own.
	_ = rc.SetReadDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return &eventWriter{h: h, w: w, rc: rc}
}

func (s *eventWriter) write(msg string) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := fmt.Fprint(s.w, msg)
	return err
}

// event sends one journal event.
func (s *eventWriter) event(ev journal.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return s.write(fmt.Sprintf("id: %d\ndata: %s\n\n", ev.Seq, b))
}

// status sends the node's status and its drivers', and flushes.
func (s *eventWriter) status() error {
	ss := StreamStatus{Status: s.h.snapshot(), Drivers: []DriverStatus{}}
	if dl, ok := s.h.d.(DriverLister); ok {
		if ds := dl.Drivers(); ds != nil {
			ss.Drivers = ds
		}
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	if err := s.write(fmt.Sprintf("event: status\ndata: %s\n\n", b)); err != nil {
		return err
	}
	return s.rc.Flush()
}
