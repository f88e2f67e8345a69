package node

import (
	"container/list"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// Bounds on what strangers can make the daemon hold. A connection that has
// not proved the secret (a peer mid-handshake) or not yet finished a request
// (the local HTTP listener) costs a descriptor and a goroutine; without a
// bound a port scanner or a runaway client takes every descriptor the
// process has, and the daemon can no longer hear its peers or save its vote.
const (
	// maxHandshakes bounds the peer handshakes in progress, and
	// maxHandshakesPerSource those from one address. A real peer finishes
	// its handshake in a few round trips, so when a bound is reached the
	// oldest pending handshake is dropped, not the newcomer: a flood of
	// idle connections then evicts itself and cannot lock the peers out.
	maxHandshakes          = 64
	maxHandshakesPerSource = 16
	// maxHTTPConns bounds the local HTTP listener's connections that are
	// not drivers (drivers' websockets are hijacked and leave the count).
	maxHTTPConns = 64
	// maxBurstKeys bounds the sources a burstLog remembers.
	maxBurstKeys = 1024
)

// sourceOf is the host part of addr: the "per source" in every bound.
func sourceOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	s := addr.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// hostOf is the host part of a "host:port" remote address.
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// acceptBackoff is the wait after a failed Accept, doubling from 5 ms up to
// a second as net/http does. A listener that runs out of descriptors
// (EMFILE, ENFILE) recovers once some close; returning from the accept loop
// instead would leave the node deaf to its peers for good.
type acceptBackoff struct{ delay time.Duration }

func (b *acceptBackoff) next() time.Duration {
	if b.delay == 0 {
		b.delay = 5 * time.Millisecond
	} else {
		b.delay = min(2*b.delay, time.Second)
	}
	return b.delay
}

func (b *acceptBackoff) reset() { b.delay = 0 }

// shedder tracks connections under a total and a per-source bound. Admitting
// a connection over a bound closes the oldest one that may be shed (from the
// same source when the source is over its bound): the old ones are the ones
// that had their chance.
type shedder struct {
	total, perSource int

	mu       sync.Mutex
	order    list.List // of *shedEntry, oldest first
	bySource map[string]int
}

type shedEntry struct {
	conn   net.Conn
	source string
	// busy, when it returns true, keeps the entry from being shed while
	// another sheddable one exists.
	busy func() bool
	elem *list.Element
}

func newShedder(total, perSource int) *shedder {
	return &shedder{total: total, perSource: perSource, bySource: map[string]int{}}
}

// admit records conn and returns the entry to release when the connection
// is done with, and how many older connections it closed to make room.
func (s *shedder) admit(conn net.Conn, busy func() bool) (*shedEntry, int) {
	e := &shedEntry{conn: conn, source: sourceOf(conn.RemoteAddr()), busy: busy}
	s.mu.Lock()
	var victims []net.Conn
	if s.bySource[e.source] >= s.perSource {
		if v := s.evictLocked(e.source); v != nil {
			victims = append(victims, v)
		}
	}
	if s.order.Len() >= s.total {
		if v := s.evictLocked(""); v != nil {
			victims = append(victims, v)
		}
	}
	e.elem = s.order.PushBack(e)
	s.bySource[e.source]++
	s.mu.Unlock()
	for _, v := range victims {
		v.Close()
	}
	return e, len(victims)
}

// evictLocked removes the oldest idle entry (of source, if not empty), or
// failing that the oldest busy one, and returns its connection to close.
func (s *shedder) evictLocked(source string) net.Conn {
	var victim *shedEntry
	for el := s.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*shedEntry)
		if source != "" && e.source != source {
			continue
		}
		if e.busy == nil || !e.busy() {
			victim = e
			break
		}
		if victim == nil {
			victim = e
		}
	}
	if victim == nil {
		return nil
	}
	s.removeLocked(victim)
	return victim.conn
}

func (s *shedder) removeLocked(e *shedEntry) {
	if e.elem == nil {
		return
	}
	s.order.Remove(e.elem)
	e.elem = nil
	if s.bySource[e.source]--; s.bySource[e.source] <= 0 {
		delete(s.bySource, e.source)
	}
}

// release forgets e; releasing twice does nothing.
func (s *shedder) release(e *shedEntry) {
	s.mu.Lock()
	s.removeLocked(e)
	s.mu.Unlock()
}

// len is how many connections are tracked.
func (s *shedder) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// httpLimiter bounds the local HTTP listener's connections: it wraps the
// listener so each accepted connection is admitted to a shedder, and its
// ConnState hook releases connections that close or are hijacked (a driver's
// websocket, which the hub bounds itself). Connections in the middle of a
// request are shed only when every other one is too.
type httpLimiter struct {
	net.Listener
	shed      *shedder
	shedCount func(int)

	mu      sync.Mutex
	entries map[net.Conn]*shedEntry
	active  map[net.Conn]bool
}

func newHTTPLimiter(ln net.Listener, total, perSource int, shed func(int)) *httpLimiter {
	return &httpLimiter{
		Listener:  ln,
		shed:      newShedder(total, perSource),
		shedCount: shed,
		entries:   map[net.Conn]*shedEntry{},
		active:    map[net.Conn]bool{},
	}
}

// Accept admits the next connection, shedding an old one if need be.
func (l *httpLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	e, n := l.shed.admit(c, func() bool { return l.isActive(c) })
	l.mu.Lock()
	l.entries[c] = e
	l.mu.Unlock()
	if n > 0 && l.shedCount != nil {
		l.shedCount(n)
	}
	return c, nil
}

func (l *httpLimiter) isActive(c net.Conn) bool {
	// Called with the shedder's lock held; l.mu is never held while
	// taking the shedder's, so the order is fixed.
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active[c]
}

// connState is the http.Server's ConnState hook.
func (l *httpLimiter) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateActive:
		l.mu.Lock()
		l.active[c] = true
		l.mu.Unlock()
	case http.StateIdle:
		l.mu.Lock()
		delete(l.active, c)
		l.mu.Unlock()
	case http.StateHijacked, http.StateClosed:
		l.mu.Lock()
		e := l.entries[c]
		delete(l.entries, c)
		delete(l.active, c)
		l.mu.Unlock()
		if e != nil {
			l.shed.release(e)
		}
	}
}

// acceptLoop accepts connections from ln until ctx ends or ln closes,
// retrying failed accepts with backoff, and hands each to handle on a
// goroutine of its own. failed sees each accept error.
func acceptLoop(done <-chan struct{}, ln net.Listener, failed func(error), handle func(net.Conn)) {
	var bo acceptBackoff
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			failed(err)
			t := time.NewTimer(bo.next())
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		bo.reset()
		handle(conn)
		// With one processor this goroutine would otherwise accept a
		// whole backlog before any handshake it started gets to run, and
		// a real peer queued among a flood would be shed unheard.
		runtime.Gosched()
	}
}
