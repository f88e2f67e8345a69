package driverclient

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/clustd/clustd/driverproto"
)

// inState is a state message as a connection's reader hands it to the loop.
type inState struct {
	cn  *conn
	seq uint64
	st  State
}

// result is a finished Trigger call.
type result struct {
	gen uint64
	err error
}

// ackItem is a state waiting to be acknowledged. Acknowledgements leave in
// the order the states arrived, so an item that is already resolved still
// waits behind one whose Trigger is running.
type ackItem struct {
	cn  *conn
	seq uint64
	// gen is the Trigger call whose result this state gets; 0 once the
	// result is known.
	gen uint64
	err error
	// overrun is how late past its deadline the demote it acknowledges
	// finished.
	overrun time.Duration
}

// call is the Trigger call in progress.
type call struct {
	gen      uint64
	st       State
	cancel   context.CancelFunc
	canceled bool
	start    time.Time
	// deadline is, for a demote, the CLOCK_BOOTTIME reading by which it
	// must have finished (zero: none).
	deadline time.Duration
}

// errStaleLease is the acknowledgement of a master state whose lease had
// ended before it arrived: acting on it would make this machine master on
// the strength of a lease nobody holds any more.
var errStaleLease = errors.New("not acting as master: the lease deadline had passed when the state arrived")

// machine holds what the loop knows. Only the loop goroutine touches it;
// Trigger runs in a goroutine of its own and reports back on done.
type machine struct {
	c *Client
	// base is the parent of every Trigger context: Run's context without
	// its cancellation, because the loop decides itself which Trigger to
	// cancel and when (a demote is never cut short by ctx ending).
	base context.Context
	done chan result

	// want is the state the driver must end up in: the pending one if
	// there is one, else the one Trigger is running or last ran.
	want     State
	haveWant bool
	// pending says want has not been handed to Trigger yet; pendingGen is
	// the generation its call will have.
	pending    bool
	pendingGen uint64
	nextGen    uint64
	// acted is the state of the last Trigger call started: the driver may
	// be acting as master exactly when acted.IsMaster.
	acted State
	run   *call
	acks  []ackItem

	lease   timer
	leaseAt time.Duration
	// ackedOn is the connection of the last state acknowledged.
	ackedOn *conn
	// stop watches the stop deadline while a demote runs: a planned
	// hand-over renews it, and if the daemon goes silent it passes and
	// the demote is cut short.
	stop   timer
	stopAt time.Duration

	// told is the lease the driver was last told of (LeaseWatcher), if
	// toldAny.
	told    Lease
	toldAny bool
}

// loop runs Trigger as the daemon's states ask, enforces the lease and
// acknowledges states, until ctx ends; then it makes the final demote. It
// never blocks on the network, so the lease is enforced even when the
// daemon stops reading.
func (c *Client) loop(ctx context.Context, states <-chan inState) {
	m := &machine{c: c, base: context.WithoutCancel(ctx), done: make(chan result, 1), nextGen: 1}
	for {
		m.armLease()
		m.armStop()
		select {
		case in := <-states:
			m.onState(in)
			if c.afterState != nil {
				c.afterState(in.seq)
			}
		case r := <-m.done:
			m.onResult(r)
		case <-m.leaseC():
			m.onLeaseTimer()
		case <-m.stopC():
			m.onStopTimer()
		case <-ctx.Done():
			m.shutdown()
			return
		}
	}
}

// changes reports whether b asks the driver for something a does not: a
// different role, term or master. Anything else (members, reason, the
// lease deadline) is a renewal.
func changes(a, b State) bool {
	return a.IsMaster != b.IsMaster || a.Term != b.Term || a.Master != b.Master || a.Role != b.Role
}

func (m *machine) onState(in inState) {
	st := in.st
	now := m.c.opts.Clock()
	changed := !m.haveWant || changes(m.want, st)
	// Deadlines are compared with our own reading of the shared clock: a
	// state computed before the daemon was paused and delivered after may
	// carry a deadline that has already passed.
	stale := st.IsMaster && st.LeaseDeadline <= now
	switch {
	case stale && changed:
		m.c.log.Warn("ignoring a master state whose lease had already ended when it arrived",
			"term", st.Term, "seq", in.seq, "deadline", st.LeaseDeadline, "now", now)
		m.ack(in, 0, errStaleLease)
	case !changed:
		deadline := m.want.LeaseDeadline
		m.want = st
		if stale {
			// It extends nothing, but it is no reason to stop either:
			// the deadline already given still stands.
			m.want.LeaseDeadline = deadline
		}
		// A renewal of a state Trigger has not finished with is
		// acknowledged when it finishes, so that an acknowledgement never
		// overtakes an earlier one (a planned hand-over waits for it). A
		// renewal with nothing in flight asks nothing of the driver and
		// is not acknowledged: on a master that is every renewal, several
		// a second, and the daemon has no use for the answer.
		switch {
		case m.pending:
			m.ack(in, m.pendingGen, nil)
		case m.run != nil:
			m.ack(in, m.run.gen, nil)
		case len(m.acks) > 0 || in.cn != m.ackedOn:
			// Behind other acknowledgements, or the first state on a
			// new connection: the daemon there hears this driver's state.
			m.ack(in, 0, nil)
		}
		if !m.pending || !m.want.IsMaster {
			// A promote still waiting for Trigger tells its lease when it
			// starts; anything else is what the driver acts on now.
			m.tellLease(m.want)
		}
	default:
		m.want, m.haveWant = st, true
		m.setPending()
		m.ack(in, m.pendingGen, nil)
		if !st.IsMaster {
			// At once, not when Trigger is free: a service reading its
			// lease must not start anything as master from here on.
			m.tellLease(st)
			// Whatever the promote was doing is now to be undone; let it
			// stop early so the demote, which the daemon waits for,
			// starts sooner.
			m.cancelPromote("a demote arrived")
		}
		m.start()
	}
}

// setPending marks want as waiting for Trigger. States that pile up while
// Trigger runs share one generation: only the latest is acted on, and all
// are acknowledged with its result.
func (m *machine) setPending() {
	if !m.pending {
		m.pending = true
		m.pendingGen = m.nextGen
		m.nextGen++
	}
}

func (m *machine) ack(in inState, gen uint64, err error) {
	m.ackedOn = in.cn
	m.acks = append(m.acks, ackItem{cn: in.cn, seq: in.seq, gen: gen, err: err})
	m.flush()
}

// flush sends the acknowledgements at the head of the queue whose results
// are known.
func (m *machine) flush() {
	n := 0
	for ; n < len(m.acks) && m.acks[n].gen == 0; n++ {
		a := m.acks[n]
		msg := driverproto.Message{Type: driverproto.TypeAck, Seq: a.seq, OK: driverproto.Bool(a.err == nil)}
		if a.overrun > 0 {
			msg.OverrunMS = max(a.overrun.Milliseconds(), 1)
		}
		if a.err != nil {
			msg.Error = truncate(a.err.Error())
		}
		// If the state's connection is gone, so is the daemon that waits
		// for this; the next connection starts with a fresh state.
		a.cn.send(msg)
	}
	m.acks = slices.Delete(m.acks, 0, n)
}

// start hands want to Trigger if it is pending and Trigger is free.
func (m *machine) start() {
	if m.run != nil || !m.pending {
		return
	}
	st := m.want
	// Trigger gets its own copy: it may keep or change it.
	st.Members = slices.Clone(st.Members)
	ctx, cancel := context.WithCancel(m.base)
	r := &call{gen: m.pendingGen, st: st, cancel: cancel, start: time.Now()}
	if !st.IsMaster {
		if r.deadline = m.demoteDeadline(st); r.deadline > 0 {
			// The context's deadline is on the wall clock; the stop watch
			// (armStop) holds it to CLOCK_BOOTTIME as well.
			cancel()
			ctx, cancel = context.WithDeadline(m.base, time.Now().Add(r.deadline-m.c.opts.Clock()))
			r.cancel = cancel
		}
	}
	m.run, m.pending, m.acted = r, false, st
	// Before Trigger: a command a promote starts finds its lease there.
	m.tellLease(st)
	m.c.log.Debug("trigger starting", stateAttrs(st)...)
	go func() {
		err := m.c.trigger(ctx, st)
		cancel()
		m.done <- result{gen: r.gen, err: err}
	}()
}

func (m *machine) onResult(r result) {
	run := m.run
	m.run = nil
	m.c.logTrigger(run.st, time.Since(run.start), r.err)
	var overrun time.Duration
	if run.deadline > 0 {
		if now := m.c.opts.Clock(); now > run.deadline {
			overrun = now - run.deadline
			m.c.log.Error("the demote finished after its deadline: the next master's drivers may have started meanwhile",
				"term", run.st.Term, "late", overrun)
		}
	}
	for i := range m.acks {
		if m.acks[i].gen == r.gen {
			m.acks[i].gen, m.acks[i].err, m.acks[i].overrun = 0, r.err, overrun
		}
	}
	m.flush()
	m.start()
}

// cancelPromote cancels the running Trigger if it is a promote.
func (m *machine) cancelPromote(why string) {
	if m.run == nil || !m.run.st.IsMaster || m.run.canceled {
		return
	}
	m.run.canceled = true
	m.c.log.Info("cancelling the promote in progress", "term", m.run.st.Term, "why", why)
	m.run.cancel()
}

// armLease keeps the lease timer set for want's deadline while want is
// master, and stopped otherwise.
func (m *machine) armLease() {
	on := m.haveWant && m.want.IsMaster
	if m.lease != nil && !on {
		m.lease.Stop()
		m.lease = nil
	}
	// A renewal moves the deadline of the timer already set: one system
	// call, where a new timer took five and a wake-up of its reader.
	if m.lease != nil && m.leaseAt != m.want.LeaseDeadline {
		if m.lease.Reset(m.want.LeaseDeadline - m.c.opts.Clock()) {
			m.leaseAt = m.want.LeaseDeadline
		} else {
			m.lease.Stop()
			m.lease = nil
		}
	}
	if on && m.lease == nil {
		m.leaseAt = m.want.LeaseDeadline
		m.lease = m.c.newTimer(m.leaseAt - m.c.opts.Clock())
	}
}

func (m *machine) leaseC() <-chan time.Time {
	if m.lease == nil {
		return nil
	}
	return m.lease.C()
}

func (m *machine) onLeaseTimer() {
	m.lease = nil
	now := m.c.opts.Clock()
	if !m.want.IsMaster || now < m.want.LeaseDeadline {
		// Early by CLOCK_BOOTTIME's reckoning; armLease sets it again.
		return
	}
	term := m.want.Term
	m.c.log.Warn("lease ran out with no renewal from the daemon; demoting",
		"term", term, "deadline", m.want.LeaseDeadline, "late", now-m.want.LeaseDeadline, "stop_deadline", m.want.StopDeadline)
	m.want = State{
		Node:         m.want.Node,
		Role:         driverproto.RoleFollower,
		Term:         term,
		Reason:       fmt.Sprintf("the lease of term %d ran out with no renewal from the daemon", term),
		Local:        true,
		StopDeadline: m.want.StopDeadline,
	}
	m.setPending()
	m.tellLease(m.want)
	m.cancelPromote("the lease ran out")
	m.start()
}

// tellLease tells a LeaseWatcher driver the lease of st, the state it
// acts on or is about to, if that changes what it was last told.
func (m *machine) tellLease(st State) {
	w, ok := m.c.driver.(LeaseWatcher)
	if !ok {
		return
	}
	l := Lease{Term: st.Term, StopDeadline: st.StopDeadline}
	if st.IsMaster {
		l.Deadline = st.LeaseDeadline
	}
	if m.toldAny && l == m.told {
		return
	}
	m.told, m.toldAny = l, true
	w.LeaseChanged(l)
}

// demoteDeadline is when a demote to st must have finished, zero for no
// bound. A demote the daemon asks for gets the time the driver declared;
// any demote but a planned one must also be done by the stop deadline,
// after which the next master's drivers may start.
func (m *machine) demoteDeadline(st State) time.Duration {
	var dl time.Duration
	if !st.Local && m.c.opts.DemoteTimeout > 0 {
		dl = m.c.opts.Clock() + m.c.opts.DemoteTimeout
	}
	if st.StopDeadline > 0 && !st.Planned && (dl == 0 || st.StopDeadline < dl) {
		dl = st.StopDeadline
	}
	return dl
}

// armStop keeps the stop watch set for want's stop deadline while a
// demote runs.
func (m *machine) armStop() {
	on := m.run != nil && !m.run.st.IsMaster && !m.run.canceled && m.haveWant && !m.want.IsMaster && m.want.StopDeadline > 0
	if m.stop != nil && (!on || m.stopAt != m.want.StopDeadline) {
		m.stop.Stop()
		m.stop = nil
	}
	if on && m.stop == nil {
		m.stopAt = m.want.StopDeadline
		m.stop = m.c.newTimer(m.stopAt - m.c.opts.Clock())
	}
}

func (m *machine) stopC() <-chan time.Time {
	if m.stop == nil {
		return nil
	}
	return m.stop.C()
}

func (m *machine) onStopTimer() {
	m.stop = nil
	now := m.c.opts.Clock()
	if m.run == nil || m.run.st.IsMaster || m.run.canceled || now < m.want.StopDeadline {
		return
	}
	m.c.log.Error("the stop deadline passed with the demote still running and no renewal from the daemon; cutting the demote short",
		"term", m.run.st.Term, "stop_deadline", m.want.StopDeadline, "late", now-m.want.StopDeadline)
	m.run.canceled = true
	if m.run.deadline == 0 || m.run.deadline > m.want.StopDeadline {
		m.run.deadline = m.want.StopDeadline
	}
	m.run.cancel()
}

// shutdown lets the running Trigger finish (a promote is cancelled, a
// demote is given finalDemoteTimeout) and then, if the driver may be
// acting as master, calls Trigger once more with a demote.
func (m *machine) shutdown() {
	if m.lease != nil {
		m.lease.Stop()
		m.lease = nil
	}
	m.pending = false
	if m.run != nil {
		if m.run.st.IsMaster {
			m.cancelPromote("the driver is stopping")
		} else {
			t := time.AfterFunc(m.c.finalDemoteTimeout, m.run.cancel)
			defer t.Stop()
		}
		m.onResult(<-m.done)
	}
	// Whatever the driver acted on is undone once this returns: its lease
	// goes with it.
	defer m.tellLease(State{})
	if !m.acted.IsMaster {
		return
	}
	st := State{
		Node:   m.acted.Node,
		Role:   driverproto.RoleFollower,
		Term:   m.acted.Term,
		Reason: "the driver is stopping",
		Local:  true,
	}
	m.acted = st
	// The daemon waits for a driver that left while holding a lease until
	// the stop deadline it was given: work in hand may finish until then.
	m.tellLease(State{Term: st.Term, StopDeadline: m.want.StopDeadline})
	ctx, cancel := context.WithTimeout(m.base, m.c.finalDemoteTimeout)
	defer cancel()
	start := time.Now()
	err := m.c.trigger(ctx, st)
	m.c.logTrigger(st, time.Since(start), err)
}

// trigger calls the driver's Trigger. A panic in it is turned into an
// error: it must not kill the goroutine that enforces the lease, and the
// daemon should hear that the state was not reached.
func (c *Client) trigger(ctx context.Context, st State) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("Trigger panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("the driver's Trigger panicked: %v", p)
		}
	}()
	return c.driver.Trigger(ctx, st)
}

func (c *Client) logTrigger(st State, d time.Duration, err error) {
	attrs := append(stateAttrs(st), "duration", d)
	if err != nil {
		c.log.Error("trigger failed", append(attrs, "error", err)...)
		return
	}
	c.log.Info("trigger done", attrs...)
}

func stateAttrs(st State) []any {
	attrs := []any{"role", st.Role, "is_master", st.IsMaster, "term", st.Term, "master", st.Master}
	if st.Local {
		attrs = append(attrs, "local", true)
	}
	if st.Reason != "" {
		attrs = append(attrs, "reason", st.Reason)
	}
	return attrs
}
