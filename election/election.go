package election

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Role is a node's role as the rest of the system sees it. The zero value is
// not a valid role.
type Role uint8

// Roles.
const (
	Follower Role = iota + 1
	// PreCandidate asks for pre-votes; its term is not yet raised.
	PreCandidate
	// Candidate has raised its term and asks for votes. A node that has won
	// its election but holds no lease yet also reports Candidate: it may not
	// act as master until a majority has acknowledged it.
	Candidate
	// Master holds a lease; it is the master until the lease runs out.
	Master
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Master:
		return "master"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Member is one node of the cluster as the configuration lists it.
type Member struct {
	ID string
	// Witness members vote and acknowledge heartbeats but never become master.
	Witness bool
	// Priority ranks candidates (higher first) and, with preemption on,
	// lets a higher-priority node take over from a lower one.
	Priority int
}

// HardState is what must survive a crash: persist it before sending the
// messages of the same Ready.
type HardState struct {
	Term uint64
	Vote string
}

// Unsafe removes safety rules. It exists so that tests can prove the
// simulator's checkers notice when a rule is missing; nothing else sets it.
//
// Each field removes one rule; docs/safety-rules.md lists the test that
// catches each, and sim's TestMutantsCaught demands that it does.
type Unsafe struct {
	// NoRestartHoldoff lets a node vote as soon as it starts.
	NoRestartHoldoff bool
	// NoStickiness lets a follower vote while it hears from a live master.
	NoStickiness bool
	// NoDriftMargin stretches the lease to the full ElectionMin, ignoring
	// clock drift.
	NoDriftMargin bool
	// NoStopBudget lets a new master's drivers act as soon as it becomes
	// master, while the old master's drivers may still be stopping.
	NoStopBudget bool
	// VoteTwice lets a node grant its vote to any candidate of its term,
	// not only to the one it voted for.
	VoteTwice bool
	// VoteMinority declares a campaign won one vote short of a majority.
	VoteMinority bool
	// LeaseMinority extends the lease on one acknowledgement short of a
	// majority.
	LeaseMinority bool
	// MasterOnWin makes a winner master when it wins the vote, without
	// waiting for a majority to acknowledge its first round.
	MasterOnWin bool
	// LeaseFromAck counts the lease from when the acknowledgement arrived
	// instead of from when the acknowledged round was sent.
	LeaseFromAck bool
	// NoStaleFilter lets a follower take a delayed or duplicated heartbeat,
	// older than one it already had, as news of a live master.
	NoStaleFilter bool
	// NoDrainWait sends TimeoutNow as soon as an unconfirmed drain times
	// out, without waiting for the lease the drivers were last given.
	NoDrainWait bool
	// NoStickyTerm lets a follower that refuses a vote for stickiness raise
	// its term to the candidate's all the same.
	NoStickyTerm bool
	// NoLeaseMargin drops the small margin that makes the lease end
	// strictly before the voters' stickiness.
	NoLeaseMargin bool
	// NoTimeoutNowHoldoff lets a node in its start-up hold-off campaign
	// when told to by TimeoutNow.
	NoTimeoutNowHoldoff bool
	// NoMasterDefence lets a master grant (pre-)votes, and raise its term
	// for a candidate, while it holds its lease.
	NoMasterDefence bool
	// MasterWhileDraining keeps a draining master master, for the lease
	// check and for its drivers, until the drain is over.
	MasterWhileDraining bool
	// NoSelfLoyalty lets a master that steps down while its lease runs
	// vote at once.
	NoSelfLoyalty bool
}

// Config sets up one election core.
type Config struct {
	// ID is this node's id; it must be among Members.
	ID      string
	Members []Member
	Timing  Timing
	// Preempt lets a master hand over to a reachable, eligible node of
	// higher priority once it has been master for PreemptHoldDown.
	Preempt         bool
	PreemptHoldDown time.Duration
	// DemoteTimeout bounds how long a master handing over waits for its
	// drivers to confirm their demote; zero means DefaultDemoteTimeout.
	DemoteTimeout time.Duration
	// Rand supplies the election timeout jitter. A seeded source makes a run
	// reproducible.
	Rand   *rand.Rand
	Unsafe Unsafe
}

// DefaultDemoteTimeout is Config.DemoteTimeout's default.
const DefaultDemoteTimeout = 10 * time.Second

// maxMembers bounds the cluster so a member set fits a uint64 mask.
const maxMembers = 64

// Errors returned by local commands.
var (
	ErrNotMaster   = errors.New("this node is not the master")
	ErrNoTarget    = errors.New("no eligible, reachable node to hand over to")
	ErrBadTarget   = errors.New("transfer target cannot become master")
	ErrUnknownNode = errors.New("unknown node id")
)

// State is the externally visible state of a core. Ready reports every change
// of it, including each extension of the lease.
type State struct {
	Role   Role
	Term   uint64
	Master string
	// LeaseUntil is, on a master, the local monotonic time at which it stops
	// being master unless the lease is renewed. Zero otherwise.
	LeaseUntil time.Duration
	// Reason says why the state changed.
	Reason Reason
	// At is the local time of the change.
	At time.Duration
	// Act, on a master, says its drivers may act as master: the stop
	// budget has passed since it became master, so the drivers of any
	// master before it have stopped. A master reports a state with Act
	// false first, then the same with Act true.
	Act bool
	// Draining is set while a hand-over waits for the drivers to stop: the
	// node reports itself a follower to them but still holds the
	// cluster's lease, and LeaseUntil is that lease, renewed as usual:
	// the drivers' stop deadline follows it.
	Draining bool
}

// sameAs compares everything but the time. The reason counts: winning an
// election changes nothing else that is visible, and still matters.
func (s State) sameAs(o State) bool {
	return s.Role == o.Role && s.Term == o.Term && s.Master == o.Master && s.LeaseUntil == o.LeaseUntil &&
		s.Reason == o.Reason && s.Act == o.Act && s.Draining == o.Draining
}

// Ready is a batch of work for the caller. Persist HardState (if not nil)
// durably first, then send Messages; States is informational (drivers, logs,
// metrics). The slices are reused by the next input: copy what must outlive it.
type Ready struct {
	HardState *HardState
	Messages  []Message
	States    []State
}

// Empty reports whether the batch holds nothing.
func (r Ready) Empty() bool {
	return r.HardState == nil && len(r.Messages) == 0 && len(r.States) == 0
}

// Node is the election core of one cluster member. It is not safe for
// concurrent use; every input carries the current local monotonic time, which
// must never go back.
//
// Its state comes in layers. Configuration and the hard state are fixed or
// persisted. What the node knows of the master (lead, lastHeard, leadSent…)
// holds in every role. What only a candidate or only a master needs lives in
// campaign and master, each reset by one assignment when the role is left,
// so no field of an old role can leak into the next.
type Node struct {
	id       string
	self     int
	members  []Member // sorted by id
	index    map[string]int
	quorum   int
	timing   Timing
	leaseDur time.Duration
	rnd      *rand.Rand
	unsafe   Unsafe
	preempt  bool
	holdDown time.Duration
	// demoteWait bounds a drain.
	demoteWait time.Duration
	// ringLen is the length of a master's ring of sent rounds.
	ringLen int

	hs      HardState
	hsDirty bool

	role   Role
	lead   string
	now    time.Duration
	reason Reason

	// startedAt: a node grants no vote for ElectionMin after it starts, since
	// it has forgotten which master it last acknowledged.
	startedAt time.Duration
	// lastHeard is when this node last heard from a live master (or, on a
	// demoted master, when it stopped being one); heard says it is set.
	// Neither is reset when the term changes: the master this node last
	// acknowledged may still count on it for its lease, whatever term this
	// node has since learned of.
	lastHeard time.Duration
	heard     bool
	// skip is the current master's mask of members to leave out of the
	// ranking: witnesses, and nodes it cannot reach or that are not eligible.
	skip uint64
	// leadSent is the newest round stamp heard from the current master: an
	// older one is a delayed or duplicated heartbeat and must not keep this
	// follower loyal to a master that may have given up.
	leadSent time.Duration
	// lastMaster is the last master this node knew of, itself included; it
	// ranks last when candidates rank themselves, being the silent one.
	lastMaster string

	// electionAt is when a follower or candidate campaigns next, and when a
	// master that won but holds no lease yet gives up.
	electionAt time.Duration

	campaign campaignState
	master   masterState
	// pending is a hand-over in its second stage: this node was master,
	// has stepped down, and TimeoutNow waits for pending.sendAt. It
	// outlives the master role on purpose, so it is not in masterState.
	pending *transfer

	maintenance bool
	unhealthy   bool

	msgs      []Message
	states    []State
	published State
	ready     Ready
}

// New returns a core that starts as a follower at local time now, with the
// hard state recovered from storage.
func New(cfg Config, hs HardState, now time.Duration) (*Node, error) {
	members, index, err := checkConfig(&cfg, hs)
	if err != nil {
		return nil, err
	}
	leaseDur := cfg.Timing.leaseDuration(cfg.Unsafe.NoDriftMargin, cfg.Unsafe.NoLeaseMargin)
	n := &Node{
		id:         cfg.ID,
		self:       index[cfg.ID],
		members:    members,
		index:      index,
		quorum:     len(members)/2 + 1,
		timing:     cfg.Timing,
		leaseDur:   leaseDur,
		rnd:        cfg.Rand,
		unsafe:     cfg.Unsafe,
		preempt:    cfg.Preempt,
		holdDown:   cfg.PreemptHoldDown,
		demoteWait: cfg.DemoteTimeout,
		ringLen:    min(int(leaseDur/max(cfg.Timing.Heartbeat, 1))+2, maxSentRounds),
		hs:         hs,
		now:        now,
		startedAt:  now,
		leadSent:   -1,
	}
	n.becomeFollower(hs.Term, "", ReasonStart)
	n.publish()
	return n, nil
}

// checkConfig validates cfg and the recovered hard state, fills in
// defaults, and returns the members sorted by id with their index.
func checkConfig(cfg *Config, hs HardState) ([]Member, map[string]int, error) {
	if err := cfg.Timing.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Rand == nil {
		return nil, nil, errors.New("election: Config.Rand is required")
	}
	if cfg.PreemptHoldDown < 0 || cfg.PreemptHoldDown > 365*24*time.Hour {
		return nil, nil, fmt.Errorf("election: preemption hold-down %v: must be between 0 and a year", cfg.PreemptHoldDown)
	}
	if cfg.DemoteTimeout < 0 || cfg.DemoteTimeout > 24*time.Hour {
		return nil, nil, fmt.Errorf("election: demote timeout %v: must be between 0 and a day", cfg.DemoteTimeout)
	}
	if cfg.DemoteTimeout == 0 {
		cfg.DemoteTimeout = DefaultDemoteTimeout
	}
	if len(cfg.Members) == 0 || len(cfg.Members) > maxMembers {
		return nil, nil, fmt.Errorf("election: %d members: need 1 to %d", len(cfg.Members), maxMembers)
	}
	members := slices.Clone(cfg.Members)
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	index := make(map[string]int, len(members))
	for i, m := range members {
		if m.ID == "" {
			return nil, nil, errors.New("election: member with empty id")
		}
		if _, dup := index[m.ID]; dup {
			return nil, nil, fmt.Errorf("election: duplicate member id %q", m.ID)
		}
		index[m.ID] = i
	}
	if _, ok := index[cfg.ID]; !ok {
		return nil, nil, fmt.Errorf("election: node %q is not among the members", cfg.ID)
	}
	if hs.Vote != "" {
		if _, ok := index[hs.Vote]; !ok {
			return nil, nil, fmt.Errorf("election: stored vote for %q, who is not a member", hs.Vote)
		}
	}
	return members, index, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// HardState returns the current hard state.
func (n *Node) HardState() HardState { return n.hs }

// Term returns the current term.
func (n *Node) Term() uint64 { return n.hs.Term }

// LeaseDuration is how far an acknowledged heartbeat round extends the
// lease, counted from the round's send time.
func (n *Node) LeaseDuration() time.Duration { return n.leaseDur }

// Eligible reports whether this node may become master.
func (n *Node) Eligible() bool {
	return !n.members[n.self].Witness && !n.maintenance && !n.unhealthy
}

// Maintenance reports whether maintenance mode is on.
func (n *Node) Maintenance() bool { return n.maintenance }

// Healthy reports the last health the node was given.
func (n *Node) Healthy() bool { return !n.unhealthy }

// IsMaster is the lease check: whether this node is the master at local time
// now. It answers without changing the core, so a checker may call it at any
// instant.
func (n *Node) IsMaster(now time.Duration) bool {
	return n.role == Master && n.master.leaseHeld && (n.master.draining == nil || n.unsafe.MasterWhileDraining) && now < n.master.leaseUntil
}

// Draining reports whether a hand-over waits for the drivers to confirm
// their demote.
func (n *Node) Draining() bool { return n.master.draining != nil }

// State returns the externally visible state.
func (n *Node) State() State { return n.published }

// Ready returns the work accumulated since the last call and clears it.
func (n *Node) Ready() Ready {
	n.ready.HardState = nil
	if n.hsDirty {
		hs := n.hs
		n.ready.HardState = &hs
		n.hsDirty = false
	}
	n.ready.Messages, n.msgs = n.msgs, n.ready.Messages[:0]
	n.ready.States, n.states = n.states, n.ready.States[:0]
	return n.ready
}

// HasReady reports whether Ready would return anything.
func (n *Node) HasReady() bool {
	return n.hsDirty || len(n.msgs) > 0 || len(n.states) > 0
}

func (n *Node) send(m Message) {
	m.From = n.id
	n.msgs = append(n.msgs, m)
}

// setRole changes the role and publishes it at once, so that a transition
// passed through within one input (a lone node wins as it campaigns) is
// still reported.
func (n *Node) setRole(r Role, reason Reason) {
	n.role = r
	n.reason = reason
	n.publish()
}

// publish records a state change, if there was one.
func (n *Node) publish() {
	s := State{Role: n.role, Term: n.hs.Term, Reason: n.reason, At: n.now}
	switch n.role {
	case Master:
		n.masterView(&s)
	case Follower:
		s.Master = n.lead
	}
	if n.published.Role != 0 && s.sameAs(n.published) {
		return
	}
	n.published = s
	n.states = append(n.states, s)
}
