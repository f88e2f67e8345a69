package election

import (
	"fmt"
	"slices"
	"time"
)

// masterState is what only a master needs: its lease, what it knows of
// each peer, the rounds it sent and a hand-over in its draining stage.
// becomeMaster sets it afresh and becomeFollower clears it, each with one
// assignment, so nothing of one term's mastership survives into the next.
type masterState struct {
	leaseHeld  bool
	leaseUntil time.Duration
	// since is when the lease was first acquired.
	since time.Duration
	// actFrom is when the drivers may act: StopBudget after since, or
	// since itself for a hand-over whose old drivers confirmed.
	actFrom time.Duration
	// confirmed says this node campaigned because a master whose drivers
	// all confirmed their demote told it to.
	confirmed     bool
	lastRound     time.Duration
	nextHeartbeat time.Duration
	peers         []progress // per member, indexed as Node.members
	// rounds holds the stamps of the latest rounds sent (a ring, next at
	// nextRound; noRound where empty): an acknowledgement counts only if
	// it names one of them, so a peer cannot extend the lease by naming a
	// round that never went out. Rounds are at least a heartbeat apart,
	// so the ring covers every round younger than the lease.
	rounds    []time.Duration
	nextRound int
	// draining is a hand-over in its first stage: the node is still
	// master, its drivers are stopping.
	draining *transfer
}

// progress is what a master knows of one peer, after etcd raft's
// tracker.Progress.
type progress struct {
	// acked is the newest round the peer acknowledged, -1 for none, and
	// ackAt the local time that acknowledgement arrived.
	acked, ackAt time.Duration
	// eligible is what the peer said with that acknowledgement: whether
	// it could take over.
	eligible bool
}

// noRound marks an empty place in masterState.rounds, and maxSentRounds
// bounds its length.
const (
	noRound       = time.Duration(-1 << 63)
	maxSentRounds = 256
)

func (n *Node) newMasterState(confirmed bool) masterState {
	ms := masterState{
		confirmed: confirmed,
		peers:     make([]progress, len(n.members)),
		rounds:    make([]time.Duration, n.ringLen),
	}
	for i := range ms.peers {
		ms.peers[i].acked = -1
	}
	for i := range ms.rounds {
		ms.rounds[i] = noRound
	}
	return ms
}

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

// becomeMaster is the candidate's win. It is not yet a master for anyone:
// a majority must acknowledge its first round before it holds a lease.
func (n *Node) becomeMaster() {
	n.lead = n.id
	n.pending = nil
	n.master = n.newMasterState(n.campaign.confirmed)
	n.campaign = campaignState{}
	n.setRole(Master, ReasonWon)
	// Without a majority's acknowledgement within ElectionMin the win is
	// worthless: step down and let another election run.
	n.electionAt = n.now + n.timing.ElectionMin
	n.heartbeat()
	if n.unsafe.MasterOnWin && !n.master.leaseHeld {
		n.master.leaseHeld = true
		n.master.leaseUntil = n.now + n.leaseDur
		n.master.since = n.now
		n.master.actFrom = n.now + n.timing.StopBudget
		if n.unsafe.NoStopBudget {
			n.master.actFrom = n.now
		}
		n.reason = ReasonLeaseAcquired
	}
}

// stepMaster handles a message of the current term on a master. A
// heartbeat of this very term from another node is dropped: two masters in
// one term cannot happen, so it is not to be trusted. A master does not
// campaign when told to by TimeoutNow.
func (n *Node) stepMaster(from int, m Message) {
	if m.Type == MsgHeartbeatResp && !m.Reject {
		n.handleHeartbeatResp(from, m)
	}
}

// tickMaster fires a master's timers: the lease, the wait for a first
// majority, the drain, the next heartbeat round and preemption.
func (n *Node) tickMaster() {
	ms := &n.master
	switch {
	case ms.leaseHeld && n.now >= ms.leaseUntil:
		n.becomeFollower(n.hs.Term, "", ReasonLeaseExpired)
		return
	case !ms.leaseHeld && n.now >= n.electionAt:
		n.becomeFollower(n.hs.Term, "", ReasonNoQuorum)
		return
	}
	if ms.draining != nil && n.now >= ms.draining.drainUntil {
		n.finishDrain(false)
		return
	}
	if n.now >= ms.nextHeartbeat {
		n.heartbeat()
	}
	if n.preempt && ms.leaseHeld && ms.draining == nil && n.now >= ms.since+n.holdDown {
		if target := n.bestTarget(true); target != "" {
			n.handOver(target, ReasonPreempted)
		}
	}
}

// masterDeadline is NextDeadline on a master.
func (n *Node) masterDeadline() time.Duration {
	ms := &n.master
	d := ms.nextHeartbeat
	if !ms.leaseHeld {
		return min(d, n.electionAt)
	}
	d = min(d, ms.leaseUntil)
	if n.preempt && ms.since+n.holdDown > n.now {
		d = min(d, ms.since+n.holdDown)
	}
	if ms.draining != nil {
		d = min(d, ms.draining.drainUntil)
	}
	if ms.actFrom > n.now {
		d = min(d, ms.actFrom)
	}
	return d
}

// masterView fills in what a master publishes: master for the drivers
// only with a lease and while not draining, and Act once the stop budget
// has passed.
func (n *Node) masterView(s *State) {
	ms := &n.master
	s.Master = n.id
	switch {
	case ms.draining != nil && !n.unsafe.MasterWhileDraining:
		// Still master for the cluster, no longer for the drivers.
		s.Role = Follower
		s.Master = ""
		s.Draining = true
		s.LeaseUntil = ms.leaseUntil
	case ms.leaseHeld:
		s.LeaseUntil = ms.leaseUntil
		s.Act = n.now >= ms.actFrom
		if s.Act && n.published.Role == Master && !n.published.Act && n.published.Term == s.Term {
			s.Reason = ReasonActing
			n.reason = ReasonActing
		}
	default:
		s.Role = Candidate
		s.Master = ""
	}
}

func (n *Node) heartbeat() {
	ms := &n.master
	ms.lastRound = n.now
	ms.rounds[ms.nextRound] = n.now
	ms.nextRound = (ms.nextRound + 1) % len(ms.rounds)
	ms.nextHeartbeat = n.now + n.timing.Heartbeat
	var skip uint64
	for i, m := range n.members {
		if i == n.self {
			continue
		}
		if m.Witness || !n.reachable(i) || !ms.peers[i].eligible {
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

func (n *Node) handleHeartbeatResp(from int, m Message) {
	ms := &n.master
	if m.Sent == noRound || !slices.Contains(ms.rounds, m.Sent) {
		// Not a round this master sent (or one too old to matter).
		return
	}
	p := &ms.peers[from]
	if m.Sent < p.acked {
		// A late answer to an old round says nothing about the peer now.
		return
	}
	p.acked = m.Sent
	p.ackAt = n.now
	p.eligible = m.Eligible
	n.updateLease()
}

// updateLease extends the lease to the newest round a majority acknowledged.
func (n *Node) updateLease() {
	ms := &n.master
	var buf [maxMembers]time.Duration
	rounds := buf[:0]
	for i, p := range ms.peers {
		if i == n.self {
			rounds = append(rounds, ms.lastRound)
		} else if p.acked >= 0 {
			rounds = append(rounds, p.acked)
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
	if until <= ms.leaseUntil || until <= n.now {
		return
	}
	ms.leaseUntil = until
	if ms.draining != nil {
		// The drivers' stop deadline follows the renewed lease.
		ms.draining.driverLease = until
	}
	if ms.leaseHeld {
		n.reason = ReasonLeaseRenewed
		return
	}
	ms.leaseHeld = true
	ms.since = n.now
	ms.actFrom = n.now + n.timing.StopBudget
	if n.unsafe.NoStopBudget || ms.confirmed {
		ms.actFrom = n.now
	}
	n.reason = ReasonLeaseAcquired
}

// reachable reports whether member i acknowledged this master within
// ElectionMin.
func (n *Node) reachable(i int) bool {
	p := n.master.peers[i]
	return p.acked >= 0 && n.now-p.ackAt < n.timing.ElectionMin
}

// bestTarget picks the hand-over target: reachable, eligible, highest
// priority, then lowest id. With higherOnly, only nodes of higher priority
// than this one qualify (preemption).
func (n *Node) bestTarget(higherOnly bool) string {
	best := -1
	for i, m := range n.members {
		if i == n.self || m.Witness || !n.master.peers[i].eligible || !n.reachable(i) {
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
		case !n.reachable(i) || !n.master.peers[i].eligible:
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
	if n.master.draining != nil {
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
	if n.master.draining != nil {
		n.finishDrain(false)
	}
	n.advance(now)
	n.publish()
}

// handOver starts a hand-over to target: the drivers are told to stop
// while the node keeps the cluster's lease.
func (n *Node) handOver(target string, reason Reason) {
	n.master.draining = &transfer{
		target:      target,
		term:        n.hs.Term,
		reason:      reason,
		drainUntil:  n.now + n.demoteWait,
		driverLease: n.master.leaseUntil,
		acting:      n.now >= n.master.actFrom,
	}
	n.reason = reason
	n.publish()
}

// finishDrain ends the draining stage: the node steps down and TimeoutNow
// is scheduled.
func (n *Node) finishDrain(confirmed bool) {
	t := n.master.draining
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

// demote gives up mastership without naming a successor. The node stays
// loyal to its own term for ElectionMin, like a follower that just heard a
// heartbeat, so its former followers' stickiness and its own agree.
func (n *Node) demote(reason Reason) {
	n.becomeFollower(n.hs.Term, "", reason)
	n.lastHeard = n.now
	n.heard = true
}
