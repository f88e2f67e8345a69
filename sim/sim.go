package sim

import (
	"container/heap"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/clustd/clustd/election"
)

// Options configure a simulation.
type Options struct {
	// Nodes is the cluster size when Members is empty; members are named
	// n1…nN.
	Nodes int
	// Members overrides Nodes with an explicit member list (witnesses,
	// priorities).
	Members []election.Member
	Seed    uint64
	Timing  election.Timing
	// Roles is how many independent elections (roles) every node runs,
	// over the same network and under the same faults: a crash, pause or
	// partition hits every role of a node at once. Zero means one. With
	// more than one, role r's priorities rotate so that it prefers node
	// r mod N, then the nodes after it (see RolePriority), replacing those
	// of Members. Every role's messages cross the same links, but each
	// message meets the weather (loss, delay) on its own: the daemon's
	// batching of every role's heartbeats into one frame, which makes a
	// lost frame cost every role its heartbeat at once, is not modelled.
	Roles int
	// Preempt and PreemptHoldDown are passed to every core.
	Preempt         bool
	PreemptHoldDown time.Duration
	// DemoteTimeout bounds a drain (see election.Config); zero means
	// DefaultDemoteTimeout.
	DemoteTimeout time.Duration
	// Unsafe removes a safety rule from every core, to prove the checkers
	// catch it.
	Unsafe election.Unsafe
	// unsafeRole, when positive, gives Unsafe to the cores of role
	// unsafeRole-1 only: a test shows that a violation is reported as
	// that role's.
	unsafeRole int
	// Net is the network's weather outside fault windows.
	Net NetParams
	// Drift gives each node a clock rate within ±Timing.MaxClockDrift.
	Drift bool
	// Rates sets each node's clock rate explicitly (1 is real time); it
	// overrides Drift.
	Rates []float64
	// Verbose, if not nil, receives the timeline as it happens.
	Verbose io.Writer
	// OnState, if not nil, sees every state a core of the first role
	// publishes, at real time.
	OnState func(at time.Duration, node int, st election.State)
	// Linearizability records the leadership history for porcupine.
	Linearizability bool
	// LivenessBound is how long after a heal with a majority connected a
	// master must appear; zero means the default (see DefaultLivenessBound).
	LivenessBound time.Duration
	// DriverStop is the longest the drivers take to stop once they begin a
	// demote, and DriverLateness the longest their timers fire late; each
	// node's drivers draw theirs per run (a third of the nodes at the
	// bound). The drivers honour their stop deadline: whatever is still
	// running is killed then, late by the same lateness.
	DriverStop, DriverLateness time.Duration
	// DriversOverrun makes the drivers ignore their stop deadline: a
	// mutation the checkers must catch when DriverStop exceeds the
	// budget.
	DriversOverrun bool
}

// NetParams describe message delivery.
type NetParams struct {
	// Delay is the base one-way delay; Jitter adds a uniform [0, Jitter).
	Delay, Jitter time.Duration
	// Loss, Dup and Reorder are probabilities per message. A reordered
	// message gets up to ten times the jitter on top.
	Loss, Dup, Reorder float64
}

// DefaultDemoteTimeout is the simulated drivers' demote timeout: shorter
// than a real daemon's default, so that wedged drivers cost less simulated
// time, and still longer than the lease, so the drain is exercised.
const DefaultDemoteTimeout = 2 * time.Second

// DefaultLivenessBound is how long a healed cluster may take to elect a
// master: the old lease and the followers' stickiness must run out
// (ElectionMin), the ranked candidates take their steps, and a campaign that
// collided may need one more randomised timeout.
func DefaultLivenessBound(t election.Timing, nodes int) time.Duration {
	return 2*t.ElectionMax + time.Duration(nodes)*t.Step + t.ElectionMin
}

type eventKind uint8

const (
	evDeliver eventKind = iota + 1
	evTimer
	evFunc
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	node int
	// role is the index of the role whose core the event is for: the
	// message's sender's and receiver's, or the timer's.
	role int
	gen  uint64
	sent time.Duration
	msg  election.Message
	fn   func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// node is one role's replica on one simulated machine: a clock, durable
// storage, and a core that exists while the process is up. A machine runs
// one replica per role; the faults keep their up, paused and rate alike.
type node struct {
	id  string
	idx int
	// role is the index of the replica's role in Sim.roles; label names
	// it in the timeline (the id alone when there is one role).
	role    int
	label   string
	core    *election.Node
	up      bool
	paused  bool
	rate    float64
	durable election.HardState
	// timerGen invalidates timer events scheduled before the last change.
	timerGen uint64
	timerAt  time.Duration
	inbox    []event
	// holdUntil models the drivers: after a demote (or a crash) they keep
	// acting as master until they acknowledge the demote or the lease they
	// were given runs out on this machine's clock.
	holdUntil time.Duration
	// acting says the drivers act as master: the core said so (Act) and
	// no demote has reached them since. They stop by themselves when the
	// lease they were given runs out (driversUntil).
	acting bool
	// leaseOpen says the lease of driverLease has not been given up: no
	// demote since it was granted has been confirmed by the drivers.
	leaseOpen bool
	// stopTime and lateness are this node's drivers' (see
	// Options.DriverStop).
	stopTime, lateness time.Duration
	// driverLease is the master's lease the drivers were last given (the
	// core's; their own deadlines derive from it); demoteGen
	// tells one demote's acknowledgement from another's; ackDue is an
	// acknowledgement that arrived while the daemon was paused.
	driverLease time.Duration
	demoteGen   uint64
	ackDue      bool
	state       election.State
	lastTerm    uint64
	// candidateAt records when this node became candidate for each term, for
	// the linearizability history.
	candidateAt map[uint64]time.Duration
	// wonWrite is the history's pending write for each term this node won
	// the vote in and is not yet master of; masterSince is when it became
	// master of each term it was master of.
	wonWrite    map[uint64]int
	masterSince map[uint64]time.Duration
	timeline    ring
}

// local is the node's monotonic clock at real time t.
func (s *Sim) local(n *node, t time.Duration) time.Duration {
	if n.rate == 1 {
		return t
	}
	return time.Duration(math.Floor(float64(t) * n.rate))
}

// real is the earliest real time at which the node's clock reads at least l.
func (s *Sim) real(n *node, l time.Duration) time.Duration {
	if n.rate == 1 {
		return l
	}
	t := time.Duration(math.Ceil(float64(l) / n.rate))
	for s.local(n, t) < l {
		t++
	}
	for t > 0 && s.local(n, t-1) >= l {
		t--
	}
	return t
}

// Sim is a deterministic cluster simulation. Everything that happens is an
// event on one queue ordered by (time, sequence), and every random choice
// comes from one generator seeded by Options.Seed.
type Sim struct {
	opts  Options
	rnd   *rand.Rand
	now   time.Duration
	seq   uint64
	q     eventQueue
	nodes []*node
	// roles holds every role's replicas; roles[0].nodes is nodes, and its
	// history and figures are hist and stats.
	roles []*role
	// cut[i][j] drops messages from i to j.
	cut [][]bool
	net NetParams

	members []election.Member
	check   checker
	stats   Stats
	hist    *history
	stopped bool
	// swarm is what RunFaults drew, nil before it ran.
	swarm *Swarm
	// cleanWindow is set while a single fault is injected in calm weather.
	cleanWindow bool
}

// New builds a simulation; nodes start at time zero.
func New(opts Options) (*Sim, error) {
	if err := opts.Timing.Validate(); err != nil {
		return nil, fmt.Errorf("timing: %w", err)
	}
	members := opts.Members
	if len(members) == 0 {
		if opts.Nodes < 1 || opts.Nodes > 64 {
			return nil, fmt.Errorf("nodes: %d, need 1 to 64", opts.Nodes)
		}
		for i := 1; i <= opts.Nodes; i++ {
			members = append(members, election.Member{ID: "n" + strconv.Itoa(i)})
		}
	}
	if opts.Roles == 0 {
		opts.Roles = 1
	}
	if opts.Roles < 1 || opts.Roles > MaxRoles {
		return nil, fmt.Errorf("roles: %d, need 1 to %d", opts.Roles, MaxRoles)
	}
	if opts.DemoteTimeout == 0 {
		opts.DemoteTimeout = DefaultDemoteTimeout
	}
	if opts.LivenessBound == 0 {
		// A hand-over whose drivers never confirm holds the cluster for
		// the demote timeout.
		opts.LivenessBound = DefaultLivenessBound(opts.Timing, len(members)) + opts.DemoteTimeout
	}
	s := &Sim{
		opts:    opts,
		rnd:     rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x636c75737464)),
		net:     opts.Net,
		members: members,
		stats:   newStats(),
	}
	if opts.Linearizability {
		s.hist = newHistory()
	}
	s.initRoles()
	s.check.init(s)
	s.cut = make([][]bool, len(members))
	for i, m := range members {
		s.cut[i] = make([]bool, len(members))
		n := newNode(m.ID, i, s.roles[0])
		if opts.Drift {
			eps := opts.Timing.MaxClockDrift
			switch s.rnd.IntN(3) {
			case 0: // at the bound, either way: where lease bugs live
				n.rate = 1 + eps*float64(1-2*s.rnd.IntN(2))
			default:
				n.rate = 1 + eps*(2*s.rnd.Float64()-1)
			}
			s.stats.Faults[FaultDrift]++
		}
		if i < len(opts.Rates) {
			n.rate = opts.Rates[i]
		}
		n.stopTime = s.drawBound(opts.DriverStop)
		n.lateness = s.drawBound(opts.DriverLateness)
		s.nodes = append(s.nodes, n)
		s.addReplicas(n)
	}
	for i := range s.nodes {
		for _, n := range s.replicas(i) {
			if err := s.start(n); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// drawBound draws a duration in [0, max], at max a third of the time:
// where the edge cases live.
func (s *Sim) drawBound(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	if s.rnd.IntN(3) == 0 {
		return max
	}
	return time.Duration(s.rnd.Int64N(int64(max) + 1))
}

// Now is the simulation's real (virtual) time.
func (s *Sim) Now() time.Duration { return s.now }

// Size is the number of nodes.
func (s *Sim) Size() int { return len(s.nodes) }

// ID returns node i's id.
func (s *Sim) ID(i int) string { return s.nodes[i].id }

// Index returns the index of the node with the given id, or -1.
func (s *Sim) Index(id string) int {
	for i, n := range s.nodes {
		if n.id == id {
			return i
		}
	}
	return -1
}

// Core returns node i's election core, nil while it is down.
func (s *Sim) Core(i int) *election.Node { return s.nodes[i].core }

// NodeState returns the last state node i published.
func (s *Sim) NodeState(i int) election.State { return s.nodes[i].state }

// Up reports whether node i's process is running (possibly paused).
func (s *Sim) Up(i int) bool { return s.nodes[i].up }

// Violations returns what the checkers found so far.
func (s *Sim) Violations() []Violation { return s.check.violations }

// Stats returns the figures gathered so far: the first role's, and the
// faults and traffic of every role (RoleStats has another role's).
func (s *Sim) Stats() *Stats { return &s.stats }

func (s *Sim) start(n *node) error {
	r := rand.New(rand.NewPCG(s.rnd.Uint64(), s.rnd.Uint64()))
	unsafe := s.opts.Unsafe
	if s.opts.unsafeRole > 0 && n.role != s.opts.unsafeRole-1 {
		unsafe = election.Unsafe{}
	}
	core, err := election.New(election.Config{
		ID:              n.id,
		Members:         s.roles[n.role].members,
		Timing:          s.opts.Timing,
		Preempt:         s.opts.Preempt,
		PreemptHoldDown: s.opts.PreemptHoldDown,
		DemoteTimeout:   s.opts.DemoteTimeout,
		Rand:            r,
		Unsafe:          unsafe,
	}, n.durable, s.local(n, s.now))
	if err != nil {
		return err
	}
	n.core = core
	n.up = true
	n.paused = false
	s.record(n, tlStart, "", n.durable.Term)
	s.drain(n, 0)
	return nil
}

func (s *Sim) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// At schedules fn at real time t (not before now).
func (s *Sim) At(t time.Duration, fn func()) {
	s.push(&event{at: max(t, s.now), kind: evFunc, fn: fn})
}

// RunUntil processes events up to and including real time t, then sets the
// clock to t. It stops early after a violation.
func (s *Sim) RunUntil(t time.Duration) {
	for len(s.q) > 0 && s.q[0].at <= t && !s.stopped {
		e := heap.Pop(&s.q).(*event)
		s.advanceTo(e.at)
		s.handle(e)
		s.check.afterEvent()
	}
	if !s.stopped && t > s.now {
		s.advanceTo(t)
		s.check.afterEvent()
	}
}

// RunFor runs for d of real time.
func (s *Sim) RunFor(d time.Duration) { s.RunUntil(s.now + d) }

func (s *Sim) advanceTo(t time.Duration) {
	if t > s.now {
		s.check.elapse(t)
		s.now = t
	}
}

func (s *Sim) handle(e *event) {
	switch e.kind {
	case evFunc:
		e.fn()
	case evTimer:
		n := s.roles[e.role].nodes[e.node]
		if !n.up || e.gen != n.timerGen {
			return
		}
		if n.paused {
			return // resumed later with a Tick of its own
		}
		n.core.Tick(s.local(n, s.now))
		s.drain(n, 0)
	case evDeliver:
		n := s.roles[e.role].nodes[e.node]
		if !n.up {
			return
		}
		if n.paused {
			n.inbox = append(n.inbox, *e)
			return
		}
		s.deliver(n, e)
	}
}

func (s *Sim) deliver(n *node, e *event) {
	if s.opts.Verbose != nil {
		s.record(n, tlRecv, election.Describe(e.msg), 0)
	}
	n.core.Step(s.local(n, s.now), e.msg)
	s.drain(n, e.sent)
}

// drain acts on a core's Ready: persist, then send, then observe, then
// re-arm the timer. sentAt is the real send time of the message that caused
// it (for the history), zero for timers and commands.
func (s *Sim) drain(n *node, sentAt time.Duration) {
	rd := n.core.Ready()
	if rd.HardState != nil {
		if rd.HardState.Term < n.durable.Term {
			s.check.violateIn(n, fmt.Sprintf("persisted term went back from %d to %d", n.durable.Term, rd.HardState.Term))
		}
		if rd.HardState.Term == n.durable.Term && n.durable.Vote != "" && rd.HardState.Vote != n.durable.Vote {
			s.check.violateIn(n, fmt.Sprintf("changed its vote in term %d from %s to %s", n.durable.Term, n.durable.Vote, rd.HardState.Vote))
		}
		n.durable = *rd.HardState
	}
	for _, m := range rd.Messages {
		s.check.sent(n, m)
		s.send(n, m)
	}
	for _, st := range rd.States {
		s.observe(n, st, sentAt)
	}
	s.driversFallBack(n)
	s.arm(n)
}

func (s *Sim) arm(n *node) {
	if !n.up {
		return
	}
	at := s.real(n, n.core.NextDeadline())
	if at < s.now {
		at = s.now
	}
	if at == n.timerAt && n.timerGen != 0 {
		return
	}
	n.timerGen++
	n.timerAt = at
	s.push(&event{at: at, kind: evTimer, node: n.idx, role: n.role, gen: n.timerGen})
}

func (s *Sim) send(from *node, m election.Message) {
	to := s.Index(m.To)
	if to < 0 || s.cut[from.idx][to] {
		s.stats.Dropped++
		return
	}
	if s.net.Loss > 0 && s.rnd.Float64() < s.net.Loss {
		s.stats.Dropped++
		return
	}
	copies := 1
	if s.net.Dup > 0 && s.rnd.Float64() < s.net.Dup {
		copies = 2
		s.stats.Duplicated++
	}
	for range copies {
		d := s.net.Delay
		if s.net.Jitter > 0 {
			d += time.Duration(s.rnd.Int64N(int64(s.net.Jitter)))
			if s.net.Reorder > 0 && s.rnd.Float64() < s.net.Reorder {
				d += time.Duration(s.rnd.Int64N(10 * int64(s.net.Jitter)))
			}
		}
		s.push(&event{at: s.now + d, kind: evDeliver, node: to, role: from.role, msg: m, sent: s.now})
	}
	s.stats.Messages++
}

// observe records a published state change.
func (s *Sim) observe(n *node, st election.State, sentAt time.Duration) {
	prev := n.state
	n.state = st
	rl := s.roles[n.role]
	if s.opts.OnState != nil && n.role == 0 {
		s.opts.OnState(s.now, n.idx, st)
	}
	s.record(n, tlState, st.Reason.String(), 0)
	if st.Term < n.lastTerm {
		s.check.violateIn(n, fmt.Sprintf("term went back from %d to %d", n.lastTerm, st.Term))
	}
	n.lastTerm = max(n.lastTerm, st.Term)
	if st.Role == election.Candidate && st.Term != prev.Term {
		n.candidateAt[st.Term] = s.now
		rl.stats.Elections++
	}
	if st.Reason == election.ReasonWon {
		// Winning the vote does not make a master: a majority must yet
		// acknowledge the first round, and may never do so if a higher
		// term wins meanwhile. The write stays pending until then.
		n.wonWrite[st.Term] = rl.hist.write(n.idx, st.Term, n.id, n.candidateAt[st.Term])
		delete(n.candidateAt, st.Term)
	}
	if st.Role == election.Master && prev.Role != election.Master {
		if i, ok := n.wonWrite[st.Term]; ok {
			rl.hist.complete(i, s.now)
			delete(n.wonWrite, st.Term)
		}
		n.masterSince[st.Term] = s.now
	}
	switch {
	case st.Role == election.Master && prev.Role != election.Master:
		s.check.becameMaster(n, st)
		rl.stats.masterAcquired(s.now, n.idx)
	case prev.Role == election.Master && st.Role != election.Master:
		// The drivers keep acting until they confirm the demote or their
		// stop deadline passes.
		acting := n.acting
		n.acting = false
		s.demoted(n, n.driverLease, acting)
	}
	switch {
	case st.Role == election.Master:
		if st.Act && !n.acting {
			if n.holdUntil > s.local(n, s.now) {
				s.check.violateIn(n, fmt.Sprintf("told its drivers to act as master of term %d while they were still stopping", st.Term))
			}
			n.acting = true
		}
		n.driverLease, n.leaseOpen = st.LeaseUntil, true
	case st.Draining:
		// A planned hand-over renews the stop deadline of drivers that
		// are still stopping.
		n.driverLease = st.LeaseUntil
	}
	if st.Role == election.Master {
		round := s.real(n, st.LeaseUntil-n.core.LeaseDuration())
		rl.hist.read(n.idx, st.Term, n.id, min(round, s.now), s.now)
	} else if st.Role == election.Follower && st.Master != "" && (st.Master != prev.Master || st.Term != prev.Term) && sentAt > 0 && s.wasMaster(rl, st.Master, st.Term, sentAt) {
		rl.hist.read(n.idx, st.Term, st.Master, sentAt, s.now)
	}
}

// wasMaster reports whether node id was master of term of role rl at
// instant at. A
// winner's first heartbeat round leaves before it is master (a majority
// must acknowledge it first, and may never do so if a higher term wins
// meanwhile): a follower that accepts it has heard from a candidate, not
// observed a master, and the history records no read for it.
func (s *Sim) wasMaster(rl *role, id string, term uint64, at time.Duration) bool {
	for _, m := range rl.nodes {
		if m.id == id {
			since, ok := m.masterSince[term]
			return ok && since <= at
		}
	}
	return false
}

// demoted starts the drivers' hold after a master stops being one, and
// schedules their acknowledgement after a short delay — or, now and then,
// never, so the core must wait out the lease.
//
// A planned hand-over (the core drains: it keeps the cluster's lease while
// its drivers stop) holds the drivers until they acknowledge, however long
// they take — the drain must cover that. Any other demote holds them until
// they acknowledge or their lease runs out, as the contract asks of them.
func (s *Sim) demoted(n *node, leaseUntil time.Duration, acting bool) {
	l := s.local(n, s.now)
	n.demoteGen++
	gen := n.demoteGen
	n.driverLease = leaseUntil
	var delay time.Duration
	switch {
	case n.up && n.core.Draining() && !acting:
		// No driver was told to act: the daemon confirms at once.
		delay = s.dur(0, 5*time.Millisecond)
	case !acting:
		// Nothing to confirm; the lease runs out by itself.
		return
	case n.up && n.core.Draining():
		n.driverLease = n.core.State().LeaseUntil
		n.holdUntil = forever
		switch s.rnd.IntN(16) {
		case 0: // a wedged driver never answers
			return
		case 1: // a slow one answers after its lease would have run out
			delay = s.dur(s.opts.Timing.ElectionMin, 3*s.opts.Timing.ElectionMin)
		default:
			delay = s.dur(0, 20*time.Millisecond)
		}
	default:
		n.holdUntil = max(n.holdUntil, s.stopBy(n, leaseUntil, l))
		if n.holdUntil <= l || s.rnd.IntN(8) == 0 {
			return
		}
		delay = n.holdUntil - l
	}
	s.At(s.now+delay, func() {
		if gen != n.demoteGen {
			return
		}
		n.holdUntil = 0
		n.leaseOpen = false
		switch {
		case !n.up:
		case n.paused:
			n.ackDue = true
		default:
			n.core.DemoteDone(s.local(n, s.now))
			s.drain(n, 0)
		}
	})
}

// forever is a hold that only an acknowledgement ends.
const forever = time.Duration(1<<63 - 1)

// driversFallBack ends a hold that waited for an acknowledgement once the
// daemon no longer keeps the cluster's lease for them (it stopped draining,
// crashed or froze): from then on the stop deadline of the lease they were
// last given is what stops them.
func (s *Sim) driversFallBack(n *node) {
	if n.holdUntil == forever && (!n.up || n.paused || !n.core.Draining()) {
		n.holdUntil = s.stopDeadline(n, n.driverLease)
	}
}

// stopBy is when drivers whose master's lease was lease have stopped if
// they begin their demote at local time start, or at their own lease
// deadline if that comes first (both late by their lateness): once they
// have taken their stop time, or at their stop deadline when whatever
// still runs is killed.
func (s *Sim) stopBy(n *node, lease, start time.Duration) time.Duration {
	t := s.opts.Timing
	start = min(start, t.DriverLease(lease)+n.lateness)
	done := start + n.stopTime
	if s.opts.DriversOverrun {
		return done
	}
	return min(done, s.stopDeadline(n, lease))
}

// stopDeadline is when the drivers' stop deadline for lease kills what
// still runs, as late as their timers fire.
func (s *Sim) stopDeadline(n *node, lease time.Duration) time.Duration {
	return s.opts.Timing.StopDeadline(lease) + n.lateness
}

// leaseHeld reports whether node n's drivers hold a lease that has not run
// out and have not confirmed a demote.
func (s *Sim) leaseHeld(n *node) bool {
	l := s.local(n, s.now)
	return n.leaseOpen && n.driverLease > l
}

// driversAct reports whether node n's drivers act as master at this
// instant: told to and not yet out of lease, or still stopping.
func (s *Sim) driversAct(n *node) bool {
	l := s.local(n, s.now)
	if n.holdUntil > l {
		return true
	}
	return n.acting && s.stopBy(n, n.driverLease, l) > l
}
