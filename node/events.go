package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/journal"
)

// promoteWait bounds how long a new master waits for its drivers to
// acknowledge the promote before it shares its failover record without
// that time.
const promoteWait = 10 * time.Second

// failoverBuckets are the failover histogram's bucket bounds, in seconds:
// the fast profile fails over in a fraction of a second, the default in a
// few, and a partition can keep the cluster without master far longer.
var failoverBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300}

// recorder keeps the node's journal: it turns the daemon's state changes,
// driver and member events into journal events, makes the failover record
// when this node becomes master, shares it with the other members and
// catches up on the records this node missed.
//
// Its hooks run with the daemon's lock (and sometimes the hub's) held:
// they never block, and the disk and the network are reached through the
// journal's queue and the peers' send queues.
type recorder struct {
	d    *Daemon
	j    *journal.Journal // nil when the journal could not be opened
	hist *prometheus.HistogramVec

	mu sync.Mutex
	// held are the failover records this node has, the latest revision
	// of each, by term: the newest few hundred, for peers catching up.
	held map[uint64]journal.Event
	// lastMaster is the master this node last knew of, in lastTerm;
	// masterSeen is when it last heard from it (Monotonic).
	lastMaster string
	lastTerm   uint64
	masterSeen time.Duration
	// leaseUntil is the end of this node's own lease while it is master.
	leaseUntil time.Duration
	// lastTick is when the daemon's timer last fired (Monotonic), and
	// tickGap how long after the tick before. Guarded by the daemon's
	// lock, not mu: the loop sets them before each tick.
	lastTick, tickGap time.Duration
	// stepDowns are former masters' accounts, by node.
	stepDowns map[string]stepDown
	// mine are the records this node made, by term, for revising.
	mine map[uint64]journal.Event
	// pending is this node's record waiting for its drivers' promote.
	pending *pendingRecord
}

type pendingRecord struct {
	ev    journal.Event
	acked map[string]bool // drivers that confirmed the promote
	timer *time.Timer
}

func newRecorder(d *Daemon) *recorder {
	r := &recorder{
		d:         d,
		held:      map[uint64]journal.Event{},
		stepDowns: map[string]stepDown{},
		mine:      map[uint64]journal.Event{},
	}
	r.hist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace:   "clustd",
		Name:        "failover_duration_seconds",
		Help:        "How long the cluster had no master, per failover this node completed as the new master, by cause.",
		Buckets:     failoverBuckets,
		ConstLabels: prometheus.Labels{"node": d.cfg.ID},
	}, []string{"cause"})
	for _, c := range driverproto.Causes {
		r.hist.WithLabelValues(c)
	}
	if err := d.reg.Register(r.hist); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			r.hist = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	j, err := journal.Open(journal.Options{Dir: filepath.Join(d.cfg.DataDir, "journal"), Logger: d.log})
	if err != nil {
		// The journal tells what happened; the daemon keeps the master
		// role safe without it.
		d.log.Error("running without the event journal", "err", err)
		return r
	}
	r.j = j
	r.record(journal.Event{Kind: journal.KindStart, Detail: "clustd started"})
	if fos, err := j.Read(journal.Query{Failovers: true}); err == nil {
		for _, ev := range fos {
			if old, ok := r.held[ev.Term]; !ok || ev.Rev >= old.Rev {
				r.held[ev.Term] = ev
			}
			if ev.Term > r.lastTerm {
				r.lastMaster, r.lastTerm = ev.To, ev.Term
			}
		}
	}
	// The master this node knew last before it stopped, so that a master
	// change soon after a restart still names the old master.
	if evs, err := j.Read(journal.Query{Limit: 1000}); err == nil {
		for _, ev := range evs {
			if ev.Kind == journal.KindRole && ev.Master != "" && ev.Term > r.lastTerm {
				r.lastMaster, r.lastTerm = ev.Master, ev.Term
			}
		}
	}
	return r
}

// Journal is the node's event journal, or nil when it could not be opened.
func (d *Daemon) Journal() *journal.Journal { return d.rec.j }

func (r *recorder) record(ev journal.Event) {
	if r.j == nil {
		return
	}
	if ev.Node == "" {
		ev.Node = r.d.cfg.ID
	}
	r.j.Record(ev)
}

func (r *recorder) close() {
	if r.j != nil {
		r.j.Close()
	}
}

// wallAt converts a Monotonic reading into wall-clock time.
func wallAt(mono time.Duration) time.Time {
	return time.Now().Add(mono - Monotonic()).Round(time.Millisecond)
}

// state journals a state change of the core and acts on master changes.
// Called with d.mu held, after the hub was told.
func (r *recorder) state(prev, st election.State) {
	if st.Role == prev.Role && st.Term == prev.Term && st.Master == prev.Master {
		if st.Role == election.Master {
			r.mu.Lock()
			r.leaseUntil = st.LeaseUntil
			r.mu.Unlock()
		}
		return
	}
	r.journalState(r.d.roles[0], prev, st)

	r.mu.Lock()
	defer r.mu.Unlock()
	now := st.At
	if prev.Role == election.Master && st.Role != election.Master {
		r.steppedDown(prev, st)
	}
	if st.Role == election.Master && (prev.Role != election.Master || prev.Term != st.Term) {
		r.leaseUntil = st.LeaseUntil
		r.elected(st, now)
	}
	if st.Role != election.Master && r.pending != nil {
		r.finishLocked(time.Time{})
	}
	if st.Master != "" && (st.Master != r.lastMaster || st.Term != r.lastTerm) {
		r.lastMaster, r.lastTerm = st.Master, st.Term
		r.masterSeen = now
	}
}

// journalState journals a change of role r's state.
func (r *recorder) journalState(re *roleElection, prev, st election.State) {
	role := roleName(st.Role)
	switch {
	case st.Role == election.PreCandidate:
		// Asking whether an election is needed raises no term; journaling
		// every pre-vote would bury the elections under a partition.
	case st.Role == election.Candidate && st.Term != prev.Term:
		r.record(journal.Event{Kind: journal.KindElection, Term: st.Term, Role: role, RoleName: r.roleName(re), Detail: "campaigning: " + st.Reason.String()})
	default:
		r.record(journal.Event{Kind: journal.KindRole, Term: st.Term, Role: role, Master: st.Master, RoleName: r.roleName(re), Detail: st.Reason.String()})
	}
}

// roleState journals a state change of a role other than the first. The
// failover records follow the first role only: their terms are its terms.
// Called with d.mu held.
func (r *recorder) roleState(re *roleElection, prev, st election.State) {
	if st.Role == prev.Role && st.Term == prev.Term && st.Master == prev.Master {
		return
	}
	r.journalState(re, prev, st)
}

// roleName is the role_name journal events of role re carry: its name in
// a cluster with roles:, else none.
func (r *recorder) roleName(re *roleElection) string {
	if len(r.d.cfg.Roles) == 0 || re == nil {
		return ""
	}
	return re.name
}

// ticked notes that the daemon's timer fired. Called with d.mu held.
func (r *recorder) ticked(now time.Duration) {
	if r.lastTick > 0 {
		r.tickGap = now - r.lastTick
	}
	r.lastTick = now
}

// heard notes a message from the master this node knows. Called with d.mu
// held.
func (r *recorder) heard(from string, term uint64, now time.Duration) {
	r.mu.Lock()
	if from == r.lastMaster && term == r.lastTerm {
		r.masterSeen = now
	}
	r.mu.Unlock()
}

// steppedDown works out why this node stopped being master and tells the
// other members, whose next master takes the cause from it. Called with
// r.mu held.
func (r *recorder) steppedDown(prev, st election.State) {
	s := stepDown{Node: r.d.cfg.ID, Term: prev.Term, At: wallAt(st.At)}
	switch st.Reason {
	case election.ReasonTransferOut:
		s.Cause = driverproto.CauseTransfer
	case election.ReasonMaintenance:
		s.Cause = driverproto.CauseMaintenance
	case election.ReasonUnhealthy:
		s.Cause = driverproto.CauseCheckFailed
	case election.ReasonPreempted:
		s.Cause = driverproto.CausePreempted
	default:
		// The lease ran out. A running master's timer fires at least every
		// heartbeat; a master whose timer last fired long before it
		// noticed was not running: stopped, or its machine frozen.
		s.At = wallAt(r.leaseUntil)
		s.Cause = driverproto.CauseIsolated
		tm := r.d.cfg.Timing
		if max(r.tickGap, st.At-r.lastTick) > max(3*tm.Heartbeat, tm.ElectionMin/2) {
			s.Cause = driverproto.CausePaused
		}
	}
	r.stepDowns[s.Node] = s
	frame := encodeJSONFrame(frameStepDown, s)
	for _, p := range r.d.order {
		p.send(frame)
	}
	if s.Cause == driverproto.CauseTransfer || s.Cause == driverproto.CauseMaintenance ||
		s.Cause == driverproto.CauseCheckFailed || s.Cause == driverproto.CausePreempted {
		r.watchDemote(prev.Term)
	}
}

// elected starts this node's failover record. Called with r.mu held.
func (r *recorder) elected(st election.State, now time.Duration) {
	if r.lastMaster == "" {
		return // the cluster's first master: nothing failed over
	}
	f := &driverproto.Failover{
		From: r.lastMaster, To: r.d.cfg.ID, PrevTerm: r.lastTerm,
		Cause: driverproto.CauseMasterLost, Elected: wallAt(now),
	}
	if r.lastTerm >= st.Term {
		return
	}
	if r.masterSeen > 0 {
		lc := wallAt(r.masterSeen)
		f.LastContact = &lc
		// As followers reckon it: a lease lasts at most LeaseDuration
		// from the last word of its master.
		le := wallAt(min(r.masterSeen+r.d.cfg.Timing.LeaseDuration(), now))
		f.LeaseExpired = &le
	}
	if s, ok := r.stepDowns[f.From]; ok && s.Term == f.PrevTerm {
		r.applyStepDown(f, s)
	}
	if f.LeaseExpired != nil {
		f.NoMasterMS = max(f.Elected.Sub(*f.LeaseExpired).Milliseconds(), 0)
	}
	p := &pendingRecord{
		ev:    journal.Event{Kind: journal.KindFailover, Node: r.d.cfg.ID, Term: st.Term, Time: f.Elected, Failover: f},
		acked: map[string]bool{},
	}
	r.pending = p
	term := st.Term
	p.timer = time.AfterFunc(promoteWait, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.pending != nil && r.pending.ev.Term == term {
			r.finishLocked(time.Time{})
		}
	})
	// With no driver connected there is nothing to wait for.
	if r.d.hub.connected() == 0 {
		r.finishLocked(time.Time{})
	}
}

func (r *recorder) applyStepDown(f *driverproto.Failover, s stepDown) {
	f.Cause = s.Cause
	at := s.At
	f.LeaseExpired = &at
	f.NoMasterMS = max(f.Elected.Sub(at).Milliseconds(), 0)
}

// promoteAcked notes a driver's acknowledgement of a master state. Called
// with the hub's lock held.
func (r *recorder) promoteAcked(h *hub, c *driverConn, seq uint64) {
	if h.last == nil || !h.last.IsMaster || seq < h.masterSeq {
		return
	}
	now := time.Now().Round(time.Millisecond)
	conns := make([]string, 0, len(h.conns))
	for id := range h.conns {
		conns = append(conns, id)
	}
	term := h.last.Term
	// Not under the hub's lock: finishing sends to the drivers.
	go func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		p := r.pending
		if p == nil || p.ev.Term != term {
			return
		}
		p.acked[c.id] = true
		for _, id := range conns {
			if !p.acked[id] {
				return
			}
		}
		r.finishLocked(now)
	}()
}

// finishLocked completes the pending record, journals it and shares it.
// Called with r.mu held.
func (r *recorder) finishLocked(promoted time.Time) {
	p := r.pending
	r.pending = nil
	p.timer.Stop()
	ev := p.ev
	if !promoted.IsZero() {
		f := *ev.Failover
		f.Promoted = &promoted
		ev.Failover = &f
	}
	r.mine[ev.Term] = ev
	for t := range r.mine {
		if t+64 < ev.Term {
			delete(r.mine, t)
		}
	}
	r.hist.WithLabelValues(ev.Cause).Observe(float64(ev.NoMasterMS) / 1000)
	r.d.log.Info("failover", "from", ev.From, "to", ev.To, "term", ev.Term, "cause", ev.Cause, "no_master_ms", ev.NoMasterMS)
	r.storeLocked(ev)
	r.broadcast(ev)
	// Only the maker tells its drivers, so that a notifier running on every
	// machine sends each record once for the cluster.
	r.d.hub.failover(ev)
}

// storeLocked journals a failover record this node has not got in this
// revision. Called with r.mu held.
func (r *recorder) storeLocked(ev journal.Event) bool {
	if old, ok := r.held[ev.Term]; ok && old.Rev >= ev.Rev {
		return false
	}
	ev.Seq = 0
	r.held[ev.Term] = ev
	if len(r.held) > 2*syncTerms {
		terms := r.knownTerms()
		for _, t := range terms[:len(terms)-syncTerms] {
			delete(r.held, t)
		}
	}
	r.record(ev)
	return true
}

func (r *recorder) knownTerms() []uint64 {
	terms := make([]uint64, 0, len(r.held))
	for t := range r.held {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	return terms
}

func (r *recorder) broadcast(ev journal.Event) {
	ev.Seq = 0
	frame := encodeJSONFrame(frameFailover, ev)
	for _, p := range r.d.order {
		p.send(frame)
	}
}

// connected asks a peer, over a new outbound session, for the failover
// records this node lacks.
func (r *recorder) connected(p *peer) {
	r.mu.Lock()
	frame := r.syncFrameLocked()
	// This node's own account of its last loss of the role, again: the
	// first copy may have been lost with a connection that a partition
	// broke, and the new master needs it to correct its record.
	var mine []byte
	if s, ok := r.stepDowns[r.d.cfg.ID]; ok {
		mine = encodeJSONFrame(frameStepDown, s)
	}
	r.mu.Unlock()
	p.send(frame)
	if mine != nil {
		p.send(mine)
	}
}

func (r *recorder) syncFrameLocked() []byte {
	terms := r.knownTerms()
	if len(terms) > syncTerms {
		terms = terms[len(terms)-syncTerms:]
	}
	return encodeSync(nil, terms)
}

func (r *recorder) isMember(id string) bool {
	_, ok := r.d.peers[id]
	return ok || id == r.d.cfg.ID
}

// handleFrame acts on a journal frame from p.
func (r *recorder) handleFrame(p *peer, frame []byte) {
	switch frame[0] {
	case frameFailover:
		ev, err := decodeFailoverFrame(frame[1:], r.isMember)
		if err != nil {
			r.d.dropFrame(p, "decode", err)
			return
		}
		// The record keeps its maker's time, the election's, so that a node
		// catching up tells when it happened, not when it heard.
		if ev.Time.IsZero() {
			ev.Time = ev.Elected
		}
		r.mu.Lock()
		r.storeLocked(ev)
		r.mu.Unlock()
	case frameFailoverSync:
		terms, err := decodeSync(frame[1:])
		if err != nil {
			r.d.dropFrame(p, "decode", err)
			return
		}
		r.answerSync(p, terms)
	case frameStepDown:
		s, err := decodeStepDown(frame[1:], p.id)
		if err != nil {
			r.d.dropFrame(p, "decode", err)
			return
		}
		r.mu.Lock()
		if old, ok := r.stepDowns[s.Node]; !ok || old.Term <= s.Term {
			r.stepDowns[s.Node] = s
		}
		r.reviseLocked(s)
		r.mu.Unlock()
	}
}

// answerSync sends p the failover records it did not list (those of
// terms within or after its list), and asks for those it listed that this
// node lacks. Asking back matters: the answer to p's request may have gone
// down an outbound session that p's restart had broken, which is noticed
// only when the write fails, and p's request on our new session then shows
// us what we lack.
func (r *recorder) answerSync(p *peer, has []uint64) {
	r.mu.Lock()
	var floor uint64
	if len(has) == syncTerms {
		floor = has[0]
	}
	var send []journal.Event
	for _, t := range r.knownTerms() {
		if _, ok := slices.BinarySearch(has, t); ok || t < floor {
			continue
		}
		send = append(send, r.held[t])
	}
	terms := r.knownTerms()
	lacking := false
	for _, t := range has {
		// A term below the oldest held was let go of, not missed.
		if _, ok := r.held[t]; !ok && (len(terms) < syncTerms || t > terms[0]) {
			lacking = true
		}
	}
	var ask []byte
	if lacking {
		ask = r.syncFrameLocked()
	}
	r.mu.Unlock()
	if len(send) > outQueue/2 {
		send = send[len(send)-outQueue/2:]
	}
	for _, ev := range send {
		p.send(encodeJSONFrame(frameFailover, ev))
	}
	if ask != nil {
		p.send(ask)
	}
}

// reviseLocked corrects a record this node made once its former master
// says why it lost the role: a paused or isolated master can only say so
// when it runs again, after the new master has recorded the loss. Called
// with r.mu held.
func (r *recorder) reviseLocked(s stepDown) {
	if r.pending != nil && r.pending.ev.From == s.Node && r.pending.ev.PrevTerm == s.Term {
		f := *r.pending.ev.Failover
		r.applyStepDown(&f, s)
		r.pending.ev.Failover = &f
		return
	}
	for _, ev := range r.mine {
		if ev.From != s.Node || ev.PrevTerm != s.Term || ev.Cause == s.Cause {
			continue
		}
		f := *ev.Failover
		r.applyStepDown(&f, s)
		f.Rev++
		ev.Failover = &f
		r.mine[ev.Term] = ev
		r.d.log.Info("failover record revised", "term", ev.Term, "cause", f.Cause, "no_master_ms", f.NoMasterMS)
		r.storeLocked(ev)
		r.broadcast(ev)
		r.d.hub.failover(ev)
	}
}

// watchDemote journals a demote overrun: drivers that had not confirmed
// the demote when demote_timeout ran out on a hand-over. The demote is
// the one the hub sent last, which the hub was told before this hook ran.
func (r *recorder) watchDemote(term uint64) {
	timeout := r.d.cfg.DemoteTimeout
	h := r.d.hub
	seq := h.lastDemote()
	time.AfterFunc(timeout, func() {
		for _, id := range h.unconfirmed(seq) {
			r.record(journal.Event{Kind: journal.KindDemoteOverrun, Term: term, Driver: id,
				Detail: fmt.Sprintf("driver %s did not confirm its demote within demote_timeout (%v)", id, timeout)})
		}
	})
}

// appendStatus appends the hub's drivers to out for the status page, each
// with roleName.
func (h *hub) appendStatus(out []api.DriverStatus, roleName string) []api.DriverStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		out = append(out, api.DriverStatus{ID: c.id, Name: c.name, Required: c.required, Healthy: c.healthy, Reason: c.healthReason, RoleName: roleName})
	}
	return out
}

// connected is how many drivers the hub serves.
func (h *hub) connected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// lastDemote identifies the demote the hub sent last, for unconfirmed.
func (h *hub) lastDemote() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.demoteSeq
}

// unconfirmed lists, in order, the drivers that have not confirmed the
// demote lastDemote returned: none once another demote was sent, or once
// this node became master again since.
func (h *hub) unconfirmed(seq uint64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var late []string
	if h.demoteSeq == seq && h.masterSeq < seq {
		for id, c := range h.conns {
			if c.holdsLease {
				late = append(late, id)
			}
		}
	}
	slices.Sort(late)
	return late
}

// failover passes a failover record to the drivers that asked for events.
func (h *hub) failover(ev journal.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := *ev.Failover
	de := &driverproto.Event{
		Kind: driverproto.EventFailover, Node: ev.Node, Term: ev.Term, AtNS: int64(Monotonic()),
		Detail:   fmt.Sprintf("%s -> %s (%s), no master for %dms", ev.From, ev.To, ev.Cause, ev.NoMasterMS),
		Failover: &f,
	}
	h.seq++
	for _, c := range h.conns {
		if c.events {
			h.enqueue(c, driverproto.Message{Type: driverproto.TypeEvent, Seq: h.seq, Event: de})
		}
	}
}

// endStreams ends the event streams, which would keep the HTTP server's
// shutdown waiting.
func (r *recorder) endStreams() {
	if r.j != nil {
		r.j.EndSubscriptions()
	}
}

// stopped journals the daemon's stop and closes the journal.
func (r *recorder) stopped() {
	r.record(journal.Event{Kind: journal.KindStop})
	r.close()
}

func (r *recorder) transfer(re *roleElection, target string) {
	what := "the master role"
	if len(r.d.cfg.Roles) > 0 {
		what = "the role " + re.name
	}
	detail := "handing " + what + " over to " + target
	if target == "" {
		detail = "handing " + what + " over to the best eligible member"
	}
	r.record(journal.Event{Kind: journal.KindTransfer, Peer: target, RoleName: r.roleName(re), Detail: detail})
}

func (r *recorder) maintenance(on bool, reason string, until time.Time, why string) {
	detail := "maintenance off"
	if on {
		detail = "maintenance on: this node will not be master until " + until.UTC().Format(time.RFC3339)
		if reason != "" {
			detail += " (" + reason + ")"
		}
	}
	if why != "" {
		detail += ": " + why
	}
	r.record(journal.Event{Kind: journal.KindMaintenance, OK: journal.Bool(on), Detail: detail})
}

func (r *recorder) driverConnected(c *driverConn) {
	detail := "driver " + c.name + " connected"
	if c.required {
		detail += " (required)"
	}
	r.record(journal.Event{Kind: journal.KindDriverConnected, Driver: c.id, RoleName: r.roleName(c.role), Detail: detail})
}

func (r *recorder) driverGone(c *driverConn, reason string) {
	r.record(journal.Event{Kind: journal.KindDriverDisconnected, Driver: c.id, RoleName: r.roleName(c.role), Detail: reason})
}

func (r *recorder) driverHealth(c *driverConn, ok bool, reason string) {
	r.record(journal.Event{Kind: journal.KindDriverHealth, Driver: c.id, RoleName: r.roleName(c.role), OK: journal.Bool(ok), Detail: reason})
}

func (r *recorder) member(id string, back bool) {
	kind := journal.KindMemberLost
	if back {
		kind = journal.KindMemberBack
	}
	r.record(journal.Event{Kind: kind, Peer: id})
}

// Reloaded journals a configuration reload (SIGHUP).
func (d *Daemon) Reloaded(detail string) {
	d.rec.record(journal.Event{Kind: journal.KindReload, Detail: detail})
}

// Drivers lists the connected drivers for the status page.
func (d *Daemon) Drivers() []api.DriverStatus {
	var out []api.DriverStatus
	for _, r := range d.roles {
		roleName := ""
		if len(d.roles) > 1 {
			roleName = r.name
		}
		out = r.hub.appendStatus(out, roleName)
	}
	slices.SortFunc(out, func(a, b api.DriverStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
