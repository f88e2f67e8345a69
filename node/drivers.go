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
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/metrics"
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
	// declaredRequired is the hello's own claim, which counts for nothing
	// unless drivers.required names the driver too.
	declaredRequired bool
	events           bool
	ws               *websocket.Conn
	send             chan driverproto.Message
	closed           chan struct{}
	once             sync.Once

	// demoteTimeout is how long its demote may take, as it declared (the
	// daemon's demote_timeout if it declared nothing).
	demoteTimeout time.Duration

	// roleName is the role the driver chose in its hello ("" for the
	// first); nonce and peerNonce are the handshake's, for the welcome.
	roleName, nonce, peerNonce string
	// role is the role it serves, set as it registers.
	role *roleElection

	// Guarded by hub.mu.
	healthy      bool
	healthReason string
	// holdsLease: this driver was told it is master and has not yet
	// acknowledged a demote since; it must have stopped by stopUntil, the
	// last stop deadline it was sent.
	holdsLease bool
	stopUntil  time.Duration
	// demoteBy is when a planned demote of this driver overruns the time it
	// declared; overrun says it did.
	demoteBy time.Duration
	overrun  bool
}

func (c *driverConn) close() {
	c.once.Do(func() { close(c.closed) })
}

// hub serves the drivers of one role: it tells them every state of the
// role's core, collects their acknowledgements, and turns their health
// into the node's. The first role's hub also accepts every driver's
// connection and hands it to the hub of the role it chose.
type hub struct {
	cfg     hubConfig
	d       hubDaemon
	metrics *metrics.Metrics
	journal hubJournal
	failLog *burstLog
	drivers *driverRegistry
	role    *roleElection
	log     *slog.Logger

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
	// stopDeadline is the stop deadline last sent to the drivers, on a
	// master or during a planned hand-over: renewals are paced by it, and
	// an unplanned demote carries it on.
	stopDeadline int64
	// overrunTimer fires when the first driver of a planned hand-over
	// overruns the demote time it declared.
	overrunTimer *time.Timer
	// required names the drivers listed in drivers.required (the node's
	// health from them is Daemon.health).
	required  map[string]bool
	reachable map[string]bool
	// orphans are drivers that went away while told they were master: they
	// act until their stop deadline (by id, that deadline).
	orphans map[string]time.Duration
	// seed, when set, serves the 2018 drivers (seed.go).
	seed seedHolder

	upgrader websocket.Upgrader
}

// newHub builds the hub of role r; Daemon.newRoleHub wires it to the
// daemon.
func newHub(cfg hubConfig, r *roleElection, deps hubDeps) *hub {
	h := &hub{
		cfg:       cfg,
		d:         deps.daemon,
		metrics:   deps.metrics,
		journal:   deps.journal,
		failLog:   deps.failLog,
		drivers:   deps.drivers,
		role:      r,
		log:       deps.log,
		conns:     map[string]*driverConn{},
		required:  map[string]bool{},
		reachable: map[string]bool{},
		orphans:   map[string]time.Duration{},
	}
	// Only the configuration makes a driver required: a driver that could
	// declare itself so could make its node ineligible at will.
	for _, name := range cfg.required {
		h.required[name] = true
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
		if h.failLog.first("driver/"+hostOf(r.RemoteAddr), Monotonic()) {
			h.log.Warn("driver connection refused", "remote", r.RemoteAddr, "err", err)
		}
		return
	}
	ws.SetReadLimit(driverproto.MaxMessage)
	c, rh, err := h.handshake(ws)
	if err != nil {
		if h.failLog.first("driver/"+hostOf(r.RemoteAddr), Monotonic()) {
			h.log.Warn("driver refused", "remote", r.RemoteAddr, "err", err)
		}
		h.refuse(ws, err.Error())
		return
	}
	rh.run(c)
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

// handshake proves both sides know the secret and registers the driver
// with the hub of the role it chose, which it returns.
func (h *hub) handshake(ws *websocket.Conn) (*driverConn, *hub, error) {
	c, err := h.hello(ws)
	if err != nil {
		return nil, nil, err
	}
	rh := h.d.hubOf(c.roleName)
	if !rh.register(c) {
		return nil, nil, fmt.Errorf("driver id %q is already connected to this node", c.id)
	}
	ws.SetWriteDeadline(time.Now().Add(driverWriteTimeout))
	if err := ws.WriteJSON(driverproto.Message{Type: driverproto.TypeWelcome, Node: h.cfg.node, MAC: driverproto.WelcomeMAC(h.cfg.secret, c.peerNonce, c.nonce, c.id)}); err != nil {
		rh.drop(c, "welcome failed")
		return nil, nil, err
	}
	return c, rh, nil
}

// hello runs the handshake up to the driver's proof of the secret.
func (h *hub) hello(ws *websocket.Conn) (*driverConn, error) {
	var nb [driverproto.NonceLen]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	ws.SetWriteDeadline(time.Now().Add(driverWriteTimeout))
	if err := ws.WriteJSON(driverproto.Message{Type: driverproto.TypeChallenge, Version: driverproto.Version, Node: h.cfg.node, Nonce: nonce}); err != nil {
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
	if !driverproto.CheckMAC(m.MAC, driverproto.HelloMACRole(h.cfg.secret, nonce, m.Nonce, m.ID, m.Required, m.Events, m.DemoteTimeoutMS, m.RoleName)) {
		h.metrics.AuthFailure()
		return nil, fmt.Errorf("driver %q failed authentication: wrong secret", m.ID)
	}
	demoteTimeout := h.cfg.demoteTimeout
	if m.DemoteTimeoutMS > 0 {
		declared := time.Duration(m.DemoteTimeoutMS) * time.Millisecond
		if declared > h.cfg.demoteTimeout || m.DemoteTimeoutMS > int64(h.cfg.demoteTimeout/time.Millisecond) {
			return nil, fmt.Errorf("driver %q declares that its demote may take %v, longer than this node's demote_timeout of %v: a hand-over would not wait for it; shorten the driver's stop time or raise demote_timeout in %s",
				m.ID, declared, h.cfg.demoteTimeout, h.cfg.path)
		}
		demoteTimeout = declared
	}
	if m.RoleName != "" && h.d.hubOf(m.RoleName) == nil {
		return nil, fmt.Errorf("driver %q chose the role %q, which this cluster does not have; its roles are %s", m.ID, m.RoleName, strings.Join(h.d.roleNames(), ", "))
	}
	return &driverConn{
		id: m.ID, name: m.Name, required: h.required[m.Name], declaredRequired: m.Required, events: m.Events, ws: ws, demoteTimeout: demoteTimeout,
		send: make(chan driverproto.Message, driverQueue), closed: make(chan struct{}), healthy: true,
		roleName: m.RoleName, nonce: nonce, peerNonce: m.Nonce,
	}, nil
}

// register adds c to the hub and queues the state it must start from. A
// driver id is unique across the node's roles.
func (h *hub) register(c *driverConn) bool {
	added, n := h.drivers.add(c.id)
	if !added {
		return false
	}
	c.role = h.role
	h.mu.Lock()
	h.conns[c.id] = c
	// Queued under the same lock as the registration, so that no state is
	// missed or sent twice; the writer sends it after the welcome.
	if h.last != nil {
		if h.last.IsMaster {
			c.holdsLease, c.stopUntil = true, time.Duration(h.last.StopDeadlineNS)
		}
		h.enqueue(c, driverproto.Message{Type: driverproto.TypeState, Seq: h.lastSeq, State: h.last})
	}
	h.mu.Unlock()
	h.metrics.SetDrivers(n)
	return true
}

// run serves one driver until it goes: the writer here, the reader in its
// own goroutine.
func (h *hub) run(c *driverConn) {
	h.log.Info("driver connected", "driver", c.id, "required", c.required, "events", c.events, "demote_timeout", c.demoteTimeout, "role_name", h.role.name)
	if c.declaredRequired && !c.required {
		h.log.Warn("driver declares itself required, but drivers.required does not name it, so it does not affect eligibility; list it there to make it required",
			"driver", c.id, "name", c.name)
	}
	h.journal.driverConnected(c)
	h.d.updateHealth()

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
				h.journal.driverHealth(c, *m.OK, m.Reason)
				h.event(driverproto.EventHealth, fmt.Sprintf("driver %s: ok=%v %s", c.id, *m.OK, m.Reason))
			}
			h.d.updateHealth()
		}
	}
}

func (h *hub) drop(c *driverConn, reason string) {
	h.mu.Lock()
	mine := h.conns[c.id] == c
	if mine {
		delete(h.conns, c.id)
	}
	if c.holdsLease && c.stopUntil > Monotonic() {
		h.orphans[c.id] = c.stopUntil
	}
	h.checkDemoted()
	h.mu.Unlock()
	n := h.drivers.count()
	if mine {
		n = h.drivers.remove(c.id)
	}
	c.close()
	h.metrics.SetDrivers(n)
	h.log.Info("driver gone", "driver", c.id, "reason", reason)
	h.journal.driverGone(c, reason)
	h.d.updateHealth()
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

// driverState is what drivers are told of a state of the core: master only
// once the stop budget has passed, the lease less the lateness reserve, and
// the stop deadline on a master and during a planned hand-over.
func driverState(id string, tm election.Timing, st election.State, members []driverproto.Member) *driverproto.State {
	ds := &driverproto.State{
		RoleName:     config.DefaultRole,
		Node:         id,
		Role:         roleName(st.Role),
		IsMaster:     st.Role == election.Master && st.Act,
		Term:         st.Term,
		Master:       st.Master,
		Members:      members,
		Reason:       st.Reason.String(),
		StopBudgetMS: tm.StopBudget.Milliseconds(),
	}
	if st.Role == election.Master && !st.Act {
		// Master for the cluster, not yet for the drivers: the drivers of
		// the master before may still be stopping.
		ds.Role = driverproto.RoleCandidate
		ds.Reason = fmt.Sprintf("%s; drivers start once the stop budget (%v) has passed", st.Reason, tm.StopBudget)
	}
	if ds.IsMaster {
		ds.LeaseDeadlineNS = int64(tm.DriverLease(st.LeaseUntil))
		ds.LeaseMS = (tm.DriverLease(st.LeaseUntil) - st.At).Milliseconds()
		ds.StopDeadlineNS = int64(tm.StopDeadline(st.LeaseUntil))
	}
	if st.Draining {
		ds.Planned = true
		ds.StopDeadlineNS = int64(tm.StopDeadline(st.LeaseUntil))
	}
	return ds
}

// publish tells every driver a new state of the core. It runs on the
// daemon's loop goroutine and never blocks.
func (h *hub) publish(st election.State, members []driverproto.Member) {
	tm := h.cfg.timing
	ds := driverState(h.cfg.node, tm, st, members)
	ds.RoleName = h.role.name
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seed != nil {
		h.seed.SetMaster(ds.IsMaster)
	}
	prev := h.last
	if !ds.IsMaster && !ds.Planned && h.stopDeadline > 0 && prev != nil && (prev.IsMaster || prev.Planned) {
		// An unplanned demote: the drivers must stop by the deadline
		// they were last given, which nothing renews now.
		ds.StopDeadlineNS = h.stopDeadline
	}
	if renewal(prev, ds) && ds.StopDeadlineNS-h.stopDeadline < int64(tm.LeaseDuration()/4) {
		// A renewal every heartbeat round is more than drivers need: one
		// per quarter lease keeps them well inside it, at a fraction of
		// the wake-ups. Not fewer: on a busy machine a renewal can come a
		// hundred milliseconds late, and a driver whose lease ran out
		// stops its service, to start it again at the next renewal. Later
		// connections get the newest deadline.
		h.last = ds
		return
	}
	if ds.IsMaster || ds.Planned {
		h.stopDeadline = ds.StopDeadlineNS
	}
	h.seq++
	h.last, h.lastSeq = ds, h.seq
	if ds.IsMaster {
		h.masterSeq = h.seq
		h.waiting = false
		h.stopOverrunTimer()
	}
	for _, c := range h.conns {
		if ds.IsMaster || (ds.Planned && c.holdsLease) {
			c.holdsLease = true
			c.stopUntil = time.Duration(ds.StopDeadlineNS)
		}
		h.enqueue(c, driverproto.Message{Type: driverproto.TypeState, Seq: h.seq, State: ds})
	}
	// A drain may start before the drivers were told to act (the stop
	// budget had not passed): the core waits for the word all the same.
	if prev != nil && !ds.IsMaster && (prev.IsMaster || (ds.Planned && !prev.Planned)) {
		h.demoteStarted(ds.Planned)
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
	if m.OverrunMS > 0 {
		h.overrunLocked(c, time.Duration(m.OverrunMS)*time.Millisecond, "its demote finished after its deadline")
	}
	h.journal.promoteAcked(h, c, m.Seq)
	if h.demoteSeq > h.masterSeq && m.Seq >= h.demoteSeq {
		c.holdsLease = false
		h.checkDemoted()
	}
}

// demoteStarted begins waiting for the drivers' confirmation of the demote
// just sent; a planned one gives each driver the time it declared. Called
// with h.mu held.
func (h *hub) demoteStarted(planned bool) {
	h.demoteSeq = h.seq
	h.waiting = true
	if planned {
		now := Monotonic()
		for _, c := range h.conns {
			c.demoteBy, c.overrun = now+c.demoteTimeout, false
		}
		h.armOverrunTimer(now)
	}
	h.checkDemoted()
}

// overrunLocked reports a driver whose demote did not finish in the time
// it was given: never silently. Called with h.mu held.
func (h *hub) overrunLocked(c *driverConn, late time.Duration, why string) {
	h.log.Error("driver demote overran its time", "driver", c.id, "late", late, "why", why, "declared", c.demoteTimeout)
	h.metrics.DemoteOverrun()
	h.eventLocked(driverproto.EventDemoteOverrun, fmt.Sprintf("driver %s: %s (%v late)", c.id, why, late.Round(time.Millisecond)))
}

// armOverrunTimer sets the timer for the first driver of a planned
// hand-over that could still overrun. Called with h.mu held.
func (h *hub) armOverrunTimer(now time.Duration) {
	h.stopOverrunTimer()
	first := time.Duration(-1)
	for _, c := range h.conns {
		if c.holdsLease && !c.overrun && (first < 0 || c.demoteBy < first) {
			first = c.demoteBy
		}
	}
	if first < 0 {
		return
	}
	h.overrunTimer = time.AfterFunc(max(first-now, 0), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.waiting {
			return
		}
		now := Monotonic()
		for _, c := range h.conns {
			if c.holdsLease && !c.overrun && now >= c.demoteBy {
				c.overrun = true
				h.overrunLocked(c, now-c.demoteBy, "no confirmation of its demote within the time it declared")
			}
		}
		h.armOverrunTimer(now)
		h.checkDemoted()
	})
}

func (h *hub) stopOverrunTimer() {
	if h.overrunTimer != nil {
		h.overrunTimer.Stop()
		h.overrunTimer = nil
	}
}

// checkDemoted lets the core hand over once every driver that was told it
// is master has confirmed the demote, or overran the time it declared.
// Drivers that overran or went away while holding a lease cannot be
// counted on: the core then hands over unconfirmed, waiting for the lease
// they were last given to run out, and the target's drivers wait out the
// stop budget, by which time they have stopped by themselves. Called with
// h.mu held.
func (h *hub) checkDemoted() {
	if !h.waiting {
		return
	}
	confirmed := true
	for _, c := range h.conns {
		switch {
		case c.holdsLease && c.overrun:
			confirmed = false
		case c.holdsLease:
			return
		}
	}
	if h.seed != nil && h.seed.Holding() {
		return
	}
	h.waiting = false
	h.stopOverrunTimer()
	now := Monotonic()
	for id, until := range h.orphans {
		if until > now {
			confirmed = false
			continue
		}
		delete(h.orphans, id)
	}
	// In a goroutine: this runs with the hub's lock held, often under the
	// daemon's too (publish), and telling the core takes the daemon's
	// lock, which comes before the hub's.
	if confirmed {
		go h.d.demoteDone(h.role)
	} else {
		go h.d.demoteUnconfirmed(h.role)
	}
}

// missingRequired lists the required driver names with no connection to
// any role, in order, for status. Called with the daemon's lock held (the
// lock order is daemon, then hub).
func (d *Daemon) missingRequired() []string {
	connected := map[string]bool{}
	for _, r := range d.roles {
		r.hub.connectedNames(connected)
	}
	var out []string
	for name := range d.hub.required {
		if !connected[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// connectedNames adds the names of the hub's drivers to names.
func (h *hub) connectedNames(names map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		names[c.name] = true
	}
}

// requiredHealth adds to healthy the names of the hub's required drivers
// that report themselves healthy, and says why one does not ("" when all
// do).
func (h *hub) requiredHealth(healthy map[string]bool) (unhealthy string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if !c.required {
			continue
		}
		if c.healthy {
			healthy[c.name] = true
		} else {
			unhealthy = fmt.Sprintf("required driver %s unhealthy: %s", c.id, c.healthReason)
		}
	}
	return unhealthy
}

// updateHealth recomputes the node's health from its required drivers':
// unhealthy while one says so, or while a required name has no healthy
// connection. Other drivers' health is reported (events, logs) but does
// not move the master. A driver serves one role, but the health it
// reports is its node's: it counts for every role, as maintenance does.
func (d *Daemon) updateHealth() {
	d.health.Lock()
	defer d.health.Unlock()
	ok := true
	why := ""
	connected := map[string]bool{}
	for _, r := range d.roles {
		if unhealthy := r.hub.requiredHealth(connected); unhealthy != "" {
			ok, why = false, unhealthy
		}
	}
	var names []string
	for name := range d.hub.required {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !connected[name] {
			ok, why = false, fmt.Sprintf("required driver %s not connected", name)
		}
	}
	if ok != d.health.unhealthy {
		return // the cores start healthy
	}
	d.health.unhealthy = !ok
	d.hub.log.Info("node health from drivers", "ok", ok, "reason", why)
	for _, r := range d.roles {
		d.setHealthy(r, ok)
	}
}

// event sends an event to the drivers that asked for the stream.
func (h *hub) event(kind, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eventLocked(kind, detail)
}

func (h *hub) eventLocked(kind, detail string) {
	ev := &driverproto.Event{Kind: kind, Node: h.cfg.node, Detail: detail, AtNS: int64(Monotonic())}
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

// event sends an event to the drivers of every role that asked for the
// stream.
func (d *Daemon) event(kind, detail string) {
	for _, r := range d.roles {
		r.hub.event(kind, detail)
	}
}

// checkMembers emits member_lost and member_back events as peers come and
// go. The link watcher calls it on every tick.
func (h *hub) checkMembers(now time.Duration) {
	for _, p := range h.d.reachability(now) {
		h.mu.Lock()
		was, known := h.reachable[p.id]
		h.reachable[p.id] = p.up
		h.mu.Unlock()
		h.metrics.SetPeerReachable(p.id, p.up)
		switch {
		case known && was && !p.up:
			h.log.Info("member lost", "peer", p.id)
			h.journal.member(p.id, false)
			h.d.event(driverproto.EventMemberLost, p.id)
		case known && !was && p.up, !known && p.up:
			if known {
				h.log.Info("member back", "peer", p.id)
				h.journal.member(p.id, true)
			}
			h.d.event(driverproto.EventMemberBack, p.id)
		}
	}
}

// renewal reports whether next only extends prev's lease, or during a
// planned hand-over the drivers' stop deadline.
func renewal(prev, next *driverproto.State) bool {
	return prev != nil && prev.IsMaster == next.IsMaster && prev.Planned == next.Planned &&
		(next.IsMaster || next.Planned) && prev.Term == next.Term && prev.Master == next.Master &&
		prev.Role == next.Role && next.StopDeadlineNS > prev.StopDeadlineNS
}
