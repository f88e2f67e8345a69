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

type voteResult uint8

const (
	votePending voteResult = iota + 1
	voteLost
	voteWon
)

// transfer tracks a hand-over. It has two stages. While draining, the
// node has told its drivers to stop but is still master for the cluster:
// it keeps its lease by heartbeats, so no one else can be elected while its
// drivers are stopping, however long that takes. When every driver has
// confirmed (DemoteDone), or the demote timeout passes, it steps down and
// sends TimeoutNow — at once if confirmed, else not before the lease the
// drivers were last given has run out, since an unconfirmed driver stops
// only then.
type transfer struct {
	target string
	term   uint64
	reason Reason
	// drainUntil ends the draining stage without confirmation.
	drainUntil time.Duration
	// driverLease is the lease the drivers were last given.
	driverLease time.Duration
	// sendAt, once draining is over, is when TimeoutNow may go.
	sendAt time.Duration
	// acting says the drivers were acting when the hand-over began, so
	// the drivers of every earlier master had stopped; confirmed says
	// every driver confirmed its demote. Together they let the target's
	// drivers start without waiting out the stop budget.
	acting, confirmed bool
}

// Node is the election core of one cluster member. It is not safe for
// concurrent use; every input carries the current local monotonic time, which
// must never go back.
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
	skip      uint64
	// leadSent is the newest round stamp heard from the current master: an
	// older one is a delayed or duplicated heartbeat and must not keep this
	// follower loyal to a master that may have given up.
	leadSent time.Duration
	// lastMaster is the last master this node knew of, itself included; it
	// ranks last when candidates rank themselves, being the silent one.
	lastMaster string

	electionAt time.Duration

	// campaign
	campaignAt time.Duration
	force      bool
	votes      []int8 // per member: 0 unknown, 1 granted, -1 rejected

	// master
	leaseHeld   bool
	leaseUntil  time.Duration
	masterSince time.Duration
	// actFrom is when the drivers may act: StopBudget after masterSince,
	// or masterSince itself for a hand-over whose old drivers confirmed.
	actFrom time.Duration
	// confirmedTerm is the term this node campaigns in because a master
	// whose drivers all confirmed their demote told it to.
	confirmedTerm uint64
	lastRound     time.Duration
	nextHeartbeat time.Duration
	acked         []time.Duration // per member: newest round acknowledged, -1 none
	ackAt         []time.Duration // per member: local time of that acknowledgement
	ackEligible   []bool
	// sentRounds holds the stamps of the latest rounds sent (a ring, next
	// at nextRound; noRound where empty): an acknowledgement counts only
	// if it names one of them, so a peer cannot extend the lease by naming
	// a round that never went out. Rounds are at least a heartbeat apart,
	// so the ring covers every round younger than the lease.
	sentRounds []time.Duration
	nextRound  int

	// draining is a hand-over in its first stage (the node is still
	// master); pending is one in its second (the node has stepped down
	// and TimeoutNow waits for sendAt).
	draining *transfer
	pending  *transfer

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
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rand == nil {
		return nil, errors.New("election: Config.Rand is required")
	}
	if cfg.PreemptHoldDown < 0 || cfg.PreemptHoldDown > 365*24*time.Hour {
		return nil, fmt.Errorf("election: preemption hold-down %v: must be between 0 and a year", cfg.PreemptHoldDown)
	}
	if cfg.DemoteTimeout < 0 || cfg.DemoteTimeout > 24*time.Hour {
		return nil, fmt.Errorf("election: demote timeout %v: must be between 0 and a day", cfg.DemoteTimeout)
	}
	if cfg.DemoteTimeout == 0 {
		cfg.DemoteTimeout = DefaultDemoteTimeout
	}
	if len(cfg.Members) == 0 || len(cfg.Members) > maxMembers {
		return nil, fmt.Errorf("election: %d members: need 1 to %d", len(cfg.Members), maxMembers)
	}
	members := slices.Clone(cfg.Members)
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	index := make(map[string]int, len(members))
	for i, m := range members {
		if m.ID == "" {
			return nil, errors.New("election: member with empty id")
		}
		if _, dup := index[m.ID]; dup {
			return nil, fmt.Errorf("election: duplicate member id %q", m.ID)
		}
		index[m.ID] = i
	}
	self, ok := index[cfg.ID]
	if !ok {
		return nil, fmt.Errorf("election: node %q is not among the members", cfg.ID)
	}
	if hs.Vote != "" {
		if _, ok := index[hs.Vote]; !ok {
			return nil, fmt.Errorf("election: stored vote for %q, who is not a member", hs.Vote)
		}
	}
	n := &Node{
		id:          cfg.ID,
		self:        self,
		members:     members,
		index:       index,
		quorum:      len(members)/2 + 1,
		timing:      cfg.Timing,
		leaseDur:    cfg.Timing.leaseDuration(cfg.Unsafe.NoDriftMargin, cfg.Unsafe.NoLeaseMargin),
		rnd:         cfg.Rand,
		unsafe:      cfg.Unsafe,
		preempt:     cfg.Preempt,
		holdDown:    cfg.PreemptHoldDown,
		demoteWait:  cfg.DemoteTimeout,
		hs:          hs,
		now:         now,
		startedAt:   now,
		votes:       make([]int8, len(members)),
		acked:       make([]time.Duration, len(members)),
		ackAt:       make([]time.Duration, len(members)),
		ackEligible: make([]bool, len(members)),
	}
	for i := range n.acked {
		n.acked[i] = -1
	}
	n.sentRounds = make([]time.Duration, min(int(n.leaseDur/max(cfg.Timing.Heartbeat, 1))+2, maxSentRounds))
	for i := range n.sentRounds {
		n.sentRounds[i] = noRound
	}
	n.leadSent = -1
	n.becomeFollower(hs.Term, "", ReasonStart)
	n.publish()
	return n, nil
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
	return n.role == Master && n.leaseHeld && (n.draining == nil || n.unsafe.MasterWhileDraining) && now < n.leaseUntil
}

// Draining reports whether a hand-over waits for the drivers to confirm
// their demote.
func (n *Node) Draining() bool { return n.draining != nil }

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

// NextDeadline is the local time by which Tick must be called next.
func (n *Node) NextDeadline() time.Duration {
	if n.role == Master {
		d := n.nextHeartbeat
		if !n.leaseHeld {
			return min(d, n.electionAt)
		}
		d = min(d, n.leaseUntil)
		if n.preempt && n.masterSince+n.holdDown > n.now {
			d = min(d, n.masterSince+n.holdDown)
		}
		if n.draining != nil {
			d = min(d, n.draining.drainUntil)
		}
		if n.actFrom > n.now {
			d = min(d, n.actFrom)
		}
		return d
	}
	d := n.electionAt
	if n.pending != nil {
		d = min(d, n.pending.sendAt)
	}
	return d
}

// Tick tells the core that local time is now and lets timers fire.
func (n *Node) Tick(now time.Duration) {
	n.advance(now)
	n.publish()
}

// Step hands the core a message from a peer. Messages from strangers or of
// unknown types are dropped: a core never trusts its input to be well formed.
func (n *Node) Step(now time.Duration, m Message) {
	n.advance(now)
	if m.To == n.id && m.From != n.id && m.Type.Valid() {
		if from, ok := n.index[m.From]; ok {
			n.step(from, m)
		}
	}
	n.publish()
}

// Transfer hands leadership to target, or to the best eligible reachable node
// when target is empty. The master demotes itself at once; call DemoteDone
// when every driver has confirmed the demote, or the core waits out the lease
// it gave them before telling the target to campaign.
func (n *Node) Transfer(now time.Duration, target string) error {
	n.advance(now)
	defer n.publish()
	if !n.IsMaster(n.now) {
		return ErrNotMaster
	}
	if target == "" {
		target = n.bestTarget(false)
		if target == "" {
			return ErrNoTarget
		}
	} else {
		i, ok := n.index[target]
		switch {
		case !ok:
			return fmt.Errorf("%w: %q", ErrUnknownNode, target)
		case i == n.self:
			return fmt.Errorf("%w: %q is already master", ErrBadTarget, target)
		case n.members[i].Witness:
			return fmt.Errorf("%w: %q is a witness", ErrBadTarget, target)
		case !n.reachable(i) || !n.ackEligible[i]:
			return fmt.Errorf("%w: %q is not reachable or not eligible", ErrBadTarget, target)
		}
	}
	n.handOver(target, ReasonTransferOut)
	return nil
}

// DemoteDone tells the core that every driver confirmed its demote: a
// hand-over goes ahead at once.
func (n *Node) DemoteDone(now time.Duration) {
	n.advance(now)
	if n.draining != nil {
		n.finishDrain(true)
	} else if n.pending != nil {
		n.pending.sendAt = min(n.pending.sendAt, n.now)
		n.pending.confirmed = true
	}
	n.advance(now)
	n.publish()
}

// DemoteUnconfirmed tells the core that the drivers have done what they
// will: some did not confirm their demote in the time they declared, or
// went away. A hand-over goes ahead as if its drain had timed out: the
// target is told once the drivers' last lease has run out, and its own
// drivers wait out the stop budget.
func (n *Node) DemoteUnconfirmed(now time.Duration) {
	n.advance(now)
	if n.draining != nil {
		n.finishDrain(false)
	}
	n.advance(now)
	n.publish()
}

// SetMaintenance turns maintenance mode on or off. A master entering
// maintenance hands over to the best eligible node.
func (n *Node) SetMaintenance(now time.Duration, on bool) {
	n.advance(now)
	n.maintenance = on
	n.eligibilityChanged(ReasonMaintenance)
	n.publish()
}

// SetHealthy reports the node's health. An unhealthy node behaves as if in
// maintenance.
func (n *Node) SetHealthy(now time.Duration, ok bool) {
	n.advance(now)
	n.unhealthy = !ok
	n.eligibilityChanged(ReasonUnhealthy)
	n.publish()
}

func (n *Node) eligibilityChanged(reason Reason) {
	if n.Eligible() {
		if n.role == Follower && n.reason != ReasonBecameEligible {
			n.setRole(Follower, ReasonBecameEligible)
		}
		return
	}
	switch n.role {
	case Master:
		switch target := n.bestTarget(false); {
		case n.draining != nil:
		case target != "" && n.leaseHeld:
			n.handOver(target, reason)
		default:
			n.demote(reason)
		}
	case PreCandidate, Candidate:
		n.becomeFollower(n.hs.Term, "", reason)
	}
}

// advance moves local time forward and fires every timer that is due.
func (n *Node) advance(now time.Duration) {
	if now > n.now {
		n.now = now
	}
	now = n.now
	if n.role == Master {
		if n.leaseHeld && now >= n.leaseUntil {
			n.becomeFollower(n.hs.Term, "", ReasonLeaseExpired)
		} else if !n.leaseHeld && now >= n.electionAt {
			n.becomeFollower(n.hs.Term, "", ReasonNoQuorum)
		}
	}
	if n.role == Master && n.draining != nil && now >= n.draining.drainUntil {
		n.finishDrain(false)
	}
	if n.role == Master {
		if now >= n.nextHeartbeat {
			n.heartbeat()
		}
		if n.preempt && n.leaseHeld && n.draining == nil && now >= n.masterSince+n.holdDown {
			if target := n.bestTarget(true); target != "" {
				n.handOver(target, ReasonPreempted)
			}
		}
		return
	}
	if n.pending != nil && now >= n.pending.sendAt {
		// Only the master of the term may send it: a TimeoutNow carrying a
		// newer term would let the target's voters skip their stickiness
		// towards a master that still holds a lease.
		if n.pending.term == n.hs.Term {
			confirmed := n.pending.acting && n.pending.confirmed
			n.send(Message{Type: MsgTimeoutNow, To: n.pending.target, Term: n.hs.Term, Confirmed: confirmed})
		}
		n.pending = nil
	}
	if now >= n.electionAt {
		if n.Eligible() {
			n.campaign(false)
		} else {
			n.electionAt = now + n.timing.ElectionMin
		}
	}
}

// step applies the rules common to every role, then the role's own.
func (n *Node) step(from int, m Message) {
	switch m.Type {
	case MsgPreVote:
		n.handleVoteRequest(from, m, true)
		return
	case MsgVote:
		if m.Term > n.hs.Term && n.refuseVote(m) != 0 && !n.unsafe.NoStickyTerm {
			// A sticky follower does not even raise its term for a
			// disruptive candidate (Raft thesis §9.6).
			n.reply(m, MsgVoteResp, true, n.refuseVote(m))
			return
		}
	case MsgPreVoteResp:
		if m.Reject && m.Term > n.hs.Term {
			n.becomeFollower(m.Term, "", ReasonHigherTerm)
			return
		}
		if n.role == PreCandidate && m.Sent == n.campaignAt && (m.Reject || m.Term == n.hs.Term+1) {
			n.tally(from, m)
		}
		return
	}

	switch {
	case m.Term > n.hs.Term:
		lead := ""
		if m.Type == MsgHeartbeat || m.Type == MsgTimeoutNow {
			lead = m.From
		}
		n.becomeFollower(m.Term, lead, ReasonHigherTerm)
	case m.Term < n.hs.Term:
		// Tell a stale master or candidate about the newer term so it steps
		// down; ignore stale responses.
		switch m.Type {
		case MsgHeartbeat:
			n.send(Message{Type: MsgHeartbeatResp, To: m.From, Term: n.hs.Term, Reject: true, Sent: m.Sent})
		case MsgVote:
			n.reply(m, MsgVoteResp, true, 0)
		case MsgVoteResp:
			if n.role == Candidate && m.Reject && m.Sent == n.campaignAt {
				n.tally(from, m)
			}
		}
		return
	}

	switch m.Type {
	case MsgVote:
		n.handleVoteRequest(from, m, false)
	case MsgVoteResp:
		if n.role == Candidate && m.Sent == n.campaignAt {
			n.tally(from, m)
		}
	case MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgHeartbeatResp:
		if n.role == Master && !m.Reject {
			n.handleHeartbeatResp(from, m)
		}
	case MsgTimeoutNow:
		// A node in its start-up hold-off may not even vote for itself.
		holdoff := !n.unsafe.NoTimeoutNowHoldoff && n.now < n.startedAt+n.timing.ElectionMin
		if n.role != Master && n.Eligible() && !holdoff {
			n.lead = ""
			n.campaign(true)
			if m.Confirmed {
				n.confirmedTerm = n.hs.Term
			}
		}
	}
}

// refuseVote returns how long until this node could grant a vote, or 0 if it
// may grant one now as far as stickiness and the start-up hold-off go.
func (n *Node) refuseVote(m Message) time.Duration {
	var wait time.Duration
	if !n.unsafe.NoRestartHoldoff {
		wait = max(wait, n.startedAt+n.timing.ElectionMin-n.now)
	}
	if !m.Force && !n.unsafe.NoStickiness {
		if n.role == Master && !n.unsafe.NoMasterDefence {
			// A live master defends its own lease.
			wait = max(wait, n.timing.ElectionMin)
		} else if n.heard {
			wait = max(wait, n.lastHeard+n.timing.ElectionMin-n.now)
		}
	}
	return max(wait, 0)
}

func (n *Node) handleVoteRequest(from int, m Message, pre bool) {
	respType := MsgVoteResp
	if pre {
		respType = MsgPreVoteResp
	}
	if wait := n.refuseVote(m); wait > 0 {
		n.reply(m, respType, true, wait)
		return
	}
	if pre {
		// A pre-vote changes no term or vote: it only says "you could win".
		if m.Term <= n.hs.Term {
			n.reply(m, respType, true, 0)
			return
		}
		if n.role == PreCandidate && n.now-n.campaignAt < n.yieldWait() {
			// Two campaigns started together would split the vote: the
			// better-ranked one goes on, the other steps back.
			if n.ranksBefore(n.self, from) {
				n.reply(m, respType, true, 0)
				return
			}
			n.becomeFollower(n.hs.Term, "", ReasonYielded)
		}
		// Give the candidate time to win before competing with it.
		n.electionAt = max(n.electionAt, n.now+n.yieldWait())
		n.reply(m, respType, false, 0)
		return
	}
	// m.Term == n.hs.Term here: step raised our term if it was lower.
	canVote := n.hs.Vote == m.From || (n.hs.Vote == "" && n.lead == "") || n.unsafe.VoteTwice
	if !canVote {
		n.reply(m, respType, true, 0)
		return
	}
	if n.hs.Vote != m.From {
		n.hs.Vote = m.From
		n.hsDirty = true
	}
	n.electionAt = n.now + n.randomTimeout()
	n.reply(m, respType, false, 0)
}

func (n *Node) reply(m Message, t MsgType, reject bool, retry time.Duration) {
	term := n.hs.Term
	if !reject && t == MsgPreVoteResp {
		term = m.Term
	}
	n.send(Message{Type: t, To: m.From, Term: term, Reject: reject, Sent: m.Sent, RetryAfter: retry})
}

func (n *Node) handleHeartbeat(m Message) {
	if n.role == Master {
		// Two masters in one term cannot happen; drop rather than trust it.
		return
	}
	if n.role != Follower || n.lead != m.From {
		n.becomeFollower(n.hs.Term, m.From, ReasonHeartbeat)
		n.leadSent = -1
	}
	if m.Sent <= n.leadSent && !n.unsafe.NoStaleFilter {
		return
	}
	n.leadSent = m.Sent
	n.lastHeard = n.now
	n.heard = true
	n.skip = m.Skip
	n.electionAt = n.now + n.rankedTimeout()
	// A node in its start-up hold-off cannot take over yet (it ignores
	// TimeoutNow): it must not be chosen as a hand-over target.
	eligible := n.Eligible() && (n.unsafe.NoTimeoutNowHoldoff || n.now >= n.startedAt+n.timing.ElectionMin)
	n.send(Message{Type: MsgHeartbeatResp, To: m.From, Term: n.hs.Term, Sent: m.Sent, Eligible: eligible})
}

func (n *Node) handleHeartbeatResp(from int, m Message) {
	if m.Sent == noRound || !slices.Contains(n.sentRounds, m.Sent) {
		// Not a round this master sent (or one too old to matter).
		return
	}
	if m.Sent < n.acked[from] {
		// A late answer to an old round says nothing about the peer now.
		return
	}
	n.acked[from] = m.Sent
	n.ackAt[from] = n.now
	n.ackEligible[from] = m.Eligible
	n.updateLease()
}

// updateLease extends the lease to the newest round a majority acknowledged.
func (n *Node) updateLease() {
	var buf [maxMembers]time.Duration
	rounds := buf[:0]
	for i, a := range n.acked {
		if i == n.self {
			rounds = append(rounds, n.lastRound)
		} else if a >= 0 {
			rounds = append(rounds, a)
		}
	}
	need := n.quorum
	if n.unsafe.LeaseMinority && need > 1 {
		need--
	}
	if len(rounds) < need {
		return
	}
	slices.Sort(rounds)
	round := rounds[len(rounds)-need]
	if n.unsafe.LeaseFromAck {
		round = n.now
	}
	until := round + n.leaseDur
	if until <= n.leaseUntil || until <= n.now {
		return
	}
	n.leaseUntil = until
	if n.draining != nil {
		// The drivers' stop deadline follows the renewed lease.
		n.draining.driverLease = until
	}
	if !n.leaseHeld {
		n.leaseHeld = true
		n.masterSince = n.now
		n.actFrom = n.now + n.timing.StopBudget
		if n.unsafe.NoStopBudget || n.confirmedTerm == n.hs.Term {
			n.actFrom = n.now
		}
		n.reason = ReasonLeaseAcquired
	} else {
		n.reason = ReasonLeaseRenewed
	}
}

// noRound marks an empty place in sentRounds, and maxSentRounds bounds
// its length.
const (
	noRound       = time.Duration(-1 << 63)
	maxSentRounds = 256
)

func (n *Node) heartbeat() {
	n.lastRound = n.now
	n.sentRounds[n.nextRound] = n.now
	n.nextRound = (n.nextRound + 1) % len(n.sentRounds)
	n.nextHeartbeat = n.now + n.timing.Heartbeat
	var skip uint64
	for i, m := range n.members {
		if i == n.self {
			continue
		}
		if m.Witness || !n.reachable(i) || !n.ackEligible[i] {
			skip |= 1 << i
		}
	}
	for i, m := range n.members {
		if i != n.self {
			n.send(Message{Type: MsgHeartbeat, To: m.ID, Term: n.hs.Term, Sent: n.now, Skip: skip})
		}
	}
	n.updateLease()
}

// campaign starts a pre-vote, or with force (told by TimeoutNow) a real vote.
func (n *Node) campaign(force bool) {
	n.campaignAt = n.now
	n.force = force
	clear(n.votes)
	n.electionAt = n.now + n.randomTimeout()
	t := MsgPreVote
	term := n.hs.Term + 1
	if force {
		n.becomeCandidate(ReasonTransferIn)
		t, term = MsgVote, n.hs.Term
	} else {
		n.setRole(PreCandidate, ReasonPreVote)
	}
	n.votes[n.self] = 1
	for i, m := range n.members {
		if i != n.self {
			n.send(Message{Type: t, To: m.ID, Term: term, Force: force, Sent: n.campaignAt})
		}
	}
	n.checkVotes()
}

func (n *Node) becomeCandidate(reason Reason) {
	n.hs.Term++
	n.hs.Vote = n.id
	n.hsDirty = true
	n.lead = ""
	n.setRole(Candidate, reason)
}

func (n *Node) tally(from int, m Message) {
	if m.Reject {
		n.votes[from] = -1
		if m.RetryAfter > 0 {
			// The voter will be free soon: retry then rather than after a
			// whole new timeout.
			n.electionAt = min(n.electionAt, n.now+m.RetryAfter+time.Millisecond)
		}
	} else {
		n.votes[from] = 1
	}
	n.checkVotes()
}

func (n *Node) checkVotes() {
	switch n.voteResult() {
	case voteWon:
		if n.role == PreCandidate {
			n.campaignAt = n.now
			clear(n.votes)
			n.votes[n.self] = 1
			n.becomeCandidate(ReasonCampaign)
			for i, m := range n.members {
				if i != n.self {
					n.send(Message{Type: MsgVote, To: m.ID, Term: n.hs.Term, Force: n.force, Sent: n.campaignAt})
				}
			}
			n.checkVotes()
			return
		}
		n.becomeMaster()
	case voteLost:
		at := n.electionAt
		n.becomeFollower(n.hs.Term, "", ReasonCampaignLost)
		n.electionAt = at
	}
}

func (n *Node) voteResult() voteResult {
	granted, rejected := 0, 0
	for _, v := range n.votes {
		switch v {
		case 1:
			granted++
		case -1:
			rejected++
		}
	}
	switch {
	case granted >= n.quorum, n.unsafe.VoteMinority && granted >= n.quorum-1 && granted > 0:
		return voteWon
	case rejected > len(n.members)-n.quorum:
		return voteLost
	}
	return votePending
}

func (n *Node) becomeMaster() {
	n.lead = n.id
	n.leaseHeld = false
	n.leaseUntil = 0
	n.pending = nil
	n.draining = nil
	n.setRole(Master, ReasonWon)
	for i := range n.acked {
		n.acked[i] = -1
		n.ackEligible[i] = false
	}
	for i := range n.sentRounds {
		n.sentRounds[i] = noRound
	}
	// Without a majority's acknowledgement within ElectionMin the win is
	// worthless: step down and let another election run.
	n.electionAt = n.now + n.timing.ElectionMin
	n.heartbeat()
	if n.unsafe.MasterOnWin && !n.leaseHeld {
		n.leaseHeld = true
		n.leaseUntil = n.now + n.leaseDur
		n.masterSince = n.now
		n.actFrom = n.now + n.timing.StopBudget
		if n.unsafe.NoStopBudget {
			n.actFrom = n.now
		}
		n.reason = ReasonLeaseAcquired
	}
}

func (n *Node) becomeFollower(term uint64, lead string, reason Reason) {
	if term > n.hs.Term {
		n.hs.Term = term
		n.hs.Vote = ""
		n.hsDirty = true
		n.pending = nil
		// Round stamps are only ordered within a term: a master that
		// rebooted starts its clock again.
		n.leadSent = -1
	}
	if n.role == Master {
		n.lastMaster = n.id
		if n.leaseUntil > n.now && !n.unsafe.NoSelfLoyalty {
			// The lease counted this node's own acknowledgement, and
			// its drivers may act on it until it runs out: whatever
			// made it step down (a higher term in any message), it
			// stays loyal to itself for ElectionMin, like a follower
			// that just heard from it, and votes for no one meanwhile.
			n.lastHeard = n.now
			n.heard = true
		}
	}
	if lead != "" {
		n.lastMaster = lead
	}
	if lead != n.lead {
		n.leadSent = -1
	}
	n.lead = lead
	n.leaseHeld = false
	n.leaseUntil = 0
	n.draining = nil
	n.setRole(Follower, reason)
	n.electionAt = n.now + n.rankedTimeout()
	if n.startedAt+n.timing.ElectionMin > n.electionAt {
		n.electionAt = n.startedAt + n.timing.ElectionMin
	}
}

// setRole changes the role and publishes it at once, so that a transition
// passed through within one input (a lone node wins as it campaigns) is
// still reported.
func (n *Node) setRole(r Role, reason Reason) {
	n.role = r
	n.reason = reason
	n.publish()
}

// demote gives up mastership without naming a successor. The node stays
// loyal to its own term for ElectionMin, like a follower that just heard a
// heartbeat, so its former followers' stickiness and its own agree.
func (n *Node) demote(reason Reason) {
	n.becomeFollower(n.hs.Term, "", reason)
	n.lastHeard = n.now
	n.heard = true
}

// handOver demotes the master and schedules TimeoutNow for target.
func (n *Node) handOver(target string, reason Reason) {
	n.draining = &transfer{
		target:      target,
		term:        n.hs.Term,
		reason:      reason,
		drainUntil:  n.now + n.demoteWait,
		driverLease: n.leaseUntil,
		acting:      n.now >= n.actFrom,
	}
	n.reason = reason
	n.publish()
}

// finishDrain ends the draining stage: the node steps down and TimeoutNow
// is scheduled.
func (n *Node) finishDrain(confirmed bool) {
	t := n.draining
	n.draining = nil
	n.demote(t.reason)
	t.sendAt = n.now
	t.confirmed = confirmed
	if !confirmed && !n.unsafe.NoDrainWait {
		t.sendAt = max(n.now, t.driverLease)
	}
	n.pending = t
	// Give the target its chance before this node competes again.
	n.electionAt = max(n.electionAt, t.sendAt+n.timing.ElectionMin)
}

// reachable reports whether member i acknowledged this master within
// ElectionMin.
func (n *Node) reachable(i int) bool {
	return n.acked[i] >= 0 && n.now-n.ackAt[i] < n.timing.ElectionMin
}

// bestTarget picks the hand-over target: reachable, eligible, highest
// priority, then lowest id. With higherOnly, only nodes of higher priority
// than this one qualify (preemption).
func (n *Node) bestTarget(higherOnly bool) string {
	best := -1
	for i, m := range n.members {
		if i == n.self || m.Witness || !n.ackEligible[i] || !n.reachable(i) {
			continue
		}
		if higherOnly && m.Priority <= n.members[n.self].Priority {
			continue
		}
		if best < 0 || m.Priority > n.members[best].Priority {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return n.members[best].ID
}

// rankedTimeout is the follower's election timeout: ElectionMin plus a step
// per better-ranked eligible follower plus jitter under half a step, so the
// best candidate goes first and split votes are rare.
func (n *Node) rankedTimeout() time.Duration {
	me := n.members[n.self]
	rank := 0
	for i, m := range n.members {
		if i == n.self || m.Witness || m.ID == n.lastMaster || n.skip&(1<<i) != 0 {
			continue
		}
		if n.lastMaster == n.id || m.Priority > me.Priority || (m.Priority == me.Priority && i < n.self) {
			rank++
		}
	}
	d := n.timing.ElectionMin + time.Duration(rank)*n.timing.Step
	if j := n.timing.Step / 2; j > 0 {
		d += time.Duration(n.rnd.Int64N(int64(j)))
	}
	return d
}

// yieldWait is how long a node that granted a pre-vote holds back its own
// campaign: long enough for the candidate's vote round.
func (n *Node) yieldWait() time.Duration {
	return n.timing.Step + n.timing.Heartbeat
}

// ranksBefore orders candidates as rankedTimeout does: higher priority
// first, then lower id; the last known master goes last.
func (n *Node) ranksBefore(i, j int) bool {
	a, b := n.members[i], n.members[j]
	if (a.ID == n.lastMaster) != (b.ID == n.lastMaster) {
		return b.ID == n.lastMaster
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return i < j
}

// randomTimeout is the timeout after an unsettled campaign: plain Raft's
// random draw from [ElectionMin, ElectionMax).
func (n *Node) randomTimeout() time.Duration {
	span := n.timing.ElectionMax - n.timing.ElectionMin
	return n.timing.ElectionMin + time.Duration(n.rnd.Int64N(int64(span)))
}

func (n *Node) send(m Message) {
	m.From = n.id
	n.msgs = append(n.msgs, m)
}

// publish records a state change, if there was one.
func (n *Node) publish() {
	s := State{Role: n.role, Term: n.hs.Term, Reason: n.reason, At: n.now}
	switch n.role {
	case Master:
		s.Master = n.id
		switch {
		case n.draining != nil && !n.unsafe.MasterWhileDraining:
			// Still master for the cluster, no longer for the drivers.
			s.Role = Follower
			s.Master = ""
			s.Draining = true
			s.LeaseUntil = n.leaseUntil
		case n.leaseHeld:
			s.LeaseUntil = n.leaseUntil
			s.Act = n.now >= n.actFrom
			if s.Act && n.published.Role == Master && !n.published.Act && n.published.Term == s.Term {
				s.Reason = ReasonActing
				n.reason = ReasonActing
			}
		default:
			s.Role = Candidate
			s.Master = ""
		}
	case Follower:
		s.Master = n.lead
	}
	if n.published.Role != 0 && s.sameAs(n.published) {
		return
	}
	n.published = s
	n.states = append(n.states, s)
}
