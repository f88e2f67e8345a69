package node

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/rawio"
)

// Driver connection timing. A driver that cannot keep up is cut off rather
// than allowed to hold the daemon back.
const (
	driverHelloTimeout = 5 * time.Second
	driverWriteTimeout = 5 * time.Second
	driverPingPeriod   = 5 * time.Second
	driverPongWait     = 3 * driverPingPeriod
	driverQueue        = 64
)

// driverConn is one connected driver.
type driverConn struct {
	id, name string
	required bool
	events   bool
	ws       *websocket.Conn
	send     chan driverproto.Message
	closed   chan struct{}
	once     sync.Once

	// Guarded by hub.mu.
	healthy      bool
	healthReason string
	// holdsLease: this driver was told it is master, until leaseUntil, and
	// has not yet acknowledged a demote since.
	holdsLease bool
	leaseUntil time.Duration
}

func (c *driverConn) close() {
	c.once.Do(func() { close(c.closed) })
}

// hub serves drivers: it tells them every state of the core, collects their
// acknowledgements, and turns their health into the node's.
type hub struct {
	d      *Daemon
	log    *slog.Logger
	secret []byte

	mu      sync.Mutex
	conns   map[string]*driverConn
	seq     uint64
	last    *driverproto.State
	lastSeq uint64
	// demoteSeq is the state that told drivers to stop being master;
	// waiting is whether the core still waits for them to confirm it.
	demoteSeq uint64
	waiting   bool
	// masterSeq is the last state that told drivers they are master: an
	// acknowledgement only confirms a demote sent after it.
	masterSeq uint64
	// sentDeadline is the lease deadline last sent to the drivers.
	sentDeadline int64
	// required names ever seen, and whether the node is healthy as far as
	// drivers go.
	required  map[string]bool
	healthy   bool
	reachable map[string]bool
	// orphans are drivers that went away while told they were master: they
	// act until the lease they were given runs out (by id, that deadline).
	orphans map[string]time.Duration

	upgrader websocket.Upgrader
}

func newHub(d *Daemon) *hub {
	h := &hub{
		d:         d,
		log:       d.log.With("component", "drivers"),
		secret:    d.cfg.DriversSecret,
		conns:     map[string]*driverConn{},
		required:  map[string]bool{},
		healthy:   true,
		reachable: map[string]bool{},
		orphans:   map[string]time.Duration{},
	}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// A browser page must not drive this node: refuse any request that
		// carries an Origin (drivers are programs, which send none).
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
	}
	return h
}

// ServeHTTP upgrades a driver's connection and runs it.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := h.upgrader.Upgrade(rawHijacker{w}, r, nil)
	if err != nil {
		h.log.Warn("driver connection refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(driverproto.MaxMessage)
	c, err := h.handshake(ws)
	if err != nil {
		h.log.Warn("driver refused", "remote", r.RemoteAddr, "err", err)
		h.refuse(ws, err.Error())
		return
	}
	h.run(c)
}

// rawHijacker hands the websocket library a connection whose reads and
// writes are raw system calls (see rawio): a master renews its drivers'
// leases several times a second.
type rawHijacker struct{ http.ResponseWriter }

func (w rawHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the HTTP connection cannot be taken over")
	}
	c, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return rawio.Wrap(c), brw, nil
}

func (h *hub) refuse(ws *websocket.Conn, msg string) {
	ws.SetWriteDeadline(time.Now().Add(time.Second))
	ws.WriteJSON(driverproto.Message{Type: driverproto.TypeError, Error: msg})
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(msg, 100)), time.Now().Add(time.Second))
	ws.Close()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// handshake proves both sides know the secret and registers the driver.
func (h *hub) handshake(ws *websocket.Conn) (*driverConn, error) {
	var nb [driverproto.NonceLen]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	ws.SetWriteDeadline(time.Now().Add(driverWriteTimeout))
	if err := ws.WriteJSON(driverproto.Message{Type: driverproto.TypeChallenge, Version: driverproto.Version, Node: h.d.cfg.ID, Nonce: nonce}); err != nil {
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(driverHelloTimeout))
	_, b, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("no hello: %w", err)
	}
	m, err := driverproto.Decode(b)
	if err != nil {
		return nil, err
	}
	if m.Type != driverproto.TypeHello {
		return nil, fmt.Errorf("expected hello, got %q", m.Type)
	}
	if !driverproto.CheckMAC(m.MAC, driverproto.HelloMAC(h.secret, nonce, m.Nonce, m.ID, m.Required, m.Events)) {
		h.d.metrics.AuthFailure()
		return nil, fmt.Errorf("driver %q failed authentication: wrong secret", m.ID)
	}
	c := &driverConn{
		id: m.ID, name: m.Name, required: m.Required, events: m.Events, ws: ws,
		send: make(chan driverproto.Message, driverQueue), closed: make(chan struct{}), healthy: true,
	}
	h.mu.Lock()
	if _, dup := h.conns[c.id]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("driver id %q is already connected to this node", c.id)
	}
	h.conns[c.id] = c
	if c.required {
		h.required[c.name] = true
	}
	// Queued under the same lock as the registration, so that no state is
	// missed or sent twice; the writer sends it after the welcome.
	if h.last != nil {
		if h.last.IsMaster {
			c.holdsLease, c.leaseUntil = true, time.Duration(h.last.LeaseDeadlineNS)
		}
		h.enqueue(c, driverproto.Message{Type: driverproto.TypeState, Seq: h.lastSeq, State: h.last})
	}
	h.d.metrics.SetDrivers(len(h.conns))
	h.mu.Unlock()

	ws.SetWriteDeadline(time.Now().Add(driverWriteTimeout))
	if err := ws.WriteJSON(driverproto.Message{Type: driverproto.TypeWelcome, Node: h.d.cfg.ID, MAC: driverproto.WelcomeMAC(h.secret, m.Nonce, nonce, c.id)}); err != nil {
		h.drop(c, "welcome failed")
		return nil, err
	}
	return c, nil
}

// run serves one driver until it goes: the writer here, the reader in its
// own goroutine.
func (h *hub) run(c *driverConn) {
	h.log.Info("driver connected", "driver", c.id, "required", c.required, "events", c.events)
	h.d.rec.driverConnected(c)
	h.updateHealth()

	go h.read(c)
	ping := time.NewTicker(driverPingPeriod)
	defer ping.Stop()
	reason := "disconnected"
loop:
	for {
		select {
		case m := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(driverWriteTimeout))
			if err := c.ws.WriteJSON(m); err != nil {
				reason = "write failed: " + err.Error()
				break loop
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(driverWriteTimeout)); err != nil {
				reason = "ping failed: " + err.Error()
				break loop
			}
		case <-c.closed:
			// Send what is already queued (an error explaining the close,
			// say) before closing.
			c.ws.SetWriteDeadline(time.Now().Add(time.Second))
			for len(c.send) > 0 && c.ws.WriteJSON(<-c.send) == nil {
			}
			break loop
		}
	}
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.ws.Close()
	h.drop(c, reason)
}

// read handles what the driver sends: acknowledgements and health.
func (h *hub) read(c *driverConn) {
	defer c.close()
	c.ws.SetReadDeadline(time.Now().Add(driverPongWait))
	c.ws.SetPongHandler(func(string) error {
		c.ws.SetReadDeadline(time.Now().Add(driverPongWait))
		return nil
	})
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(driverPongWait))
		m, err := driverproto.Decode(b)
		if err == nil && m.Type != driverproto.TypeAck && m.Type != driverproto.TypeHealth {
			err = fmt.Errorf("a driver may send ack or health here, not %q", m.Type)
		}
		if err != nil {
			h.log.Warn("malformed message from driver; closing its connection", "driver", c.id, "err", err)
			h.mu.Lock()
			h.enqueue(c, driverproto.Message{Type: driverproto.TypeError, Error: err.Error()})
			h.mu.Unlock()
			return
		}
		switch m.Type {
		case driverproto.TypeAck:
			h.ack(c, m)
		case driverproto.TypeHealth:
			h.mu.Lock()
			changed := c.healthy != *m.OK || c.healthReason != m.Reason
			c.healthy, c.healthReason = *m.OK, m.Reason
			h.mu.Unlock()
			if changed {
				h.log.Info("driver health", "driver", c.id, "ok", *m.OK, "reason", m.Reason)
				h.d.rec.driverHealth(c, *m.OK, m.Reason)
				h.event(driverproto.EventHealth, fmt.Sprintf("driver %s: ok=%v %s", c.id, *m.OK, m.Reason))
			}
			h.updateHealth()
		}
	}
}

func (h *hub) drop(c *driverConn, reason string) {
	h.mu.Lock()
	if h.conns[c.id] == c {
		delete(h.conns, c.id)
	}
	if c.holdsLease && c.leaseUntil > Monotonic() {
		h.orphans[c.id] = c.leaseUntil
	}
	n := len(h.conns)
	h.mu.Unlock()
	c.close()
	h.d.metrics.SetDrivers(n)
	h.log.Info("driver gone", "driver", c.id, "reason", reason)
	h.d.rec.driverGone(c, reason)
	h.updateHealth()
}

// enqueue sends without blocking; a driver too far behind is cut off.
// Called with h.mu held.
func (h *hub) enqueue(c *driverConn, m driverproto.Message) {
	select {
	case c.send <- m:
	default:
		h.log.Warn("driver fell too far behind; disconnecting it", "driver", c.id)
		c.close()
	}
}

// publish tells every driver a new state of the core. It runs on the
// daemon's loop goroutine and never blocks.
func (h *hub) publish(st election.State, members []driverproto.Member) {
	ds := &driverproto.State{
		Node:     h.d.cfg.ID,
		Role:     roleName(st.Role),
		IsMaster: st.Role == election.Master,
		Term:     st.Term,
		Master:   st.Master,
		Members:  members,
		Reason:   st.Reason,
	}
	if ds.IsMaster {
		ds.LeaseDeadlineNS = int64(st.LeaseUntil)
		ds.LeaseMS = (st.LeaseUntil - st.At).Milliseconds()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.last
	if renewal(prev, ds) && ds.LeaseDeadlineNS-h.sentDeadline < int64(h.d.cfg.Timing.LeaseDuration()/4) {
		// A lease renewal every heartbeat round is more than drivers need:
		// one per quarter lease keeps them well inside it, at a fraction
		// of the wake-ups. Later connections get the newest deadline.
		h.last = ds
		return
	}
	if ds.IsMaster {
		h.sentDeadline = ds.LeaseDeadlineNS
	}
	h.seq++
	h.last, h.lastSeq = ds, h.seq
	if ds.IsMaster {
		h.masterSeq = h.seq
		h.waiting = false
	}
	for _, c := range h.conns {
		if ds.IsMaster {
			c.holdsLease = true
			c.leaseUntil = st.LeaseUntil
		}
		h.enqueue(c, driverproto.Message{Type: driverproto.TypeState, Seq: h.seq, State: ds})
	}
	if prev != nil && prev.IsMaster && !ds.IsMaster {
		h.demoteSeq = h.seq
		h.waiting = true
		h.checkDemoted()
	}
	if prev == nil || prev.Role != ds.Role || prev.Term != ds.Term || prev.Master != ds.Master {
		kind := driverproto.EventRole
		if ds.Role == driverproto.RoleCandidate && (prev == nil || prev.Term != ds.Term) {
			kind = driverproto.EventElection
		}
		h.eventLocked(kind, fmt.Sprintf("%s, term %d, master %q: %s", ds.Role, ds.Term, ds.Master, ds.Reason))
	}
}

func (h *hub) ack(c *driverConn, m driverproto.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !*m.OK {
		// A driver whose demote failed may still be acting: it has not let
		// go, and the core must wait for its lease to run out.
		h.log.Warn("driver reported a failed trigger", "driver", c.id, "seq", m.Seq, "err", m.Error)
		return
	}
	h.d.rec.promoteAcked(h, c, m.Seq)
	if h.demoteSeq > h.masterSeq && m.Seq >= h.demoteSeq {
		c.holdsLease = false
		h.checkDemoted()
	}
}

// checkDemoted lets the core hand over once every driver that was told it
// is master has confirmed the demote. Drivers that went away while holding
// a lease cannot confirm: the core then waits for the lease to run out, by
// which time they have stopped by themselves. Called with h.mu held.
func (h *hub) checkDemoted() {
	if !h.waiting {
		return
	}
	for _, c := range h.conns {
		if c.holdsLease {
			return
		}
	}
	h.waiting = false
	now := Monotonic()
	for id, until := range h.orphans {
		if until > now {
			return
		}
		delete(h.orphans, id)
	}
	go h.d.demoteDone()
}

// updateHealth recomputes the node's health from its required drivers':
// unhealthy while one says so, or while a required name has no healthy
// connection. Other drivers' health is reported (events, logs) but does
// not move the master.
func (h *hub) updateHealth() {
	h.mu.Lock()
	ok := true
	why := ""
	connected := map[string]bool{}
	for _, c := range h.conns {
		if !c.required {
			continue
		}
		if c.healthy {
			connected[c.name] = true
		} else {
			ok, why = false, fmt.Sprintf("required driver %s unhealthy: %s", c.id, c.healthReason)
		}
	}
	var names []string
	for name := range h.required {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !connected[name] {
			ok, why = false, fmt.Sprintf("required driver %s not connected", name)
		}
	}
	changed := ok != h.healthy
	h.healthy = ok
	h.mu.Unlock()
	if changed {
		h.log.Info("node health from drivers", "ok", ok, "reason", why)
		h.d.setHealthy(ok)
	}
}

// event sends an event to the drivers that asked for the stream.
func (h *hub) event(kind, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eventLocked(kind, detail)
}

func (h *hub) eventLocked(kind, detail string) {
	ev := &driverproto.Event{Kind: kind, Node: h.d.cfg.ID, Detail: detail, AtNS: int64(Monotonic())}
	if h.last != nil {
		ev.Term = h.last.Term
	}
	h.seq++
	for _, c := range h.conns {
		if c.events {
			h.enqueue(c, driverproto.Message{Type: driverproto.TypeEvent, Seq: h.seq, Event: ev})
		}
	}
}

// checkMembers emits member_lost and member_back events as peers come and
// go. The link watcher calls it on every tick.
func (h *hub) checkMembers(now time.Duration) {
	for _, p := range h.d.order {
		p.mu.Lock()
		up := p.connected && p.lastSeen > 0 && now-p.lastSeen < h.d.cfg.Timing.ElectionMin
		p.mu.Unlock()
		h.mu.Lock()
		was, known := h.reachable[p.id]
		h.reachable[p.id] = up
		h.mu.Unlock()
		h.d.metrics.SetPeerReachable(p.id, up)
		switch {
		case known && was && !up:
			h.log.Info("member lost", "peer", p.id)
			h.d.rec.member(p.id, false)
			h.event(driverproto.EventMemberLost, p.id)
		case known && !was && up, !known && up:
			if known {
				h.log.Info("member back", "peer", p.id)
				h.d.rec.member(p.id, true)
			}
			h.event(driverproto.EventMemberBack, p.id)
		}
	}
}

// renewal reports whether next only extends prev's lease.
func renewal(prev, next *driverproto.State) bool {
	return prev != nil && prev.IsMaster && next.IsMaster && prev.Term == next.Term &&
		prev.Master == next.Master && next.LeaseDeadlineNS > prev.LeaseDeadlineNS
}
