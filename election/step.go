package election

import "time"

// NextDeadline is the local time by which Tick must be called next.
func (n *Node) NextDeadline() time.Duration {
	if n.role == Master {
		return n.masterDeadline()
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
		case n.master.draining != nil:
		case target != "" && n.master.leaseHeld:
			n.handOver(target, reason)
		default:
			n.demote(reason)
		}
	case PreCandidate, Candidate:
		n.becomeFollower(n.hs.Term, "", reason)
	}
}

// advance moves local time forward and fires every timer that is due. A
// master that steps down on a timer goes on to a follower's timers at the
// same instant: a hand-over's TimeoutNow may be due at once.
func (n *Node) advance(now time.Duration) {
	if now > n.now {
		n.now = now
	}
	if n.role == Master {
		n.tickMaster()
		if n.role == Master {
			return
		}
	}
	n.tickElection()
}

// step applies the rules common to every role, then hands the message to
// the role's own step function.
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
		// A pre-vote raises no term, so its answers skip the term rules
		// below, but a refusal from a newer term is news all the same.
		if m.Reject && m.Term > n.hs.Term {
			n.becomeFollower(m.Term, "", ReasonHigherTerm)
		} else if n.role == PreCandidate {
			n.stepCandidate(from, m)
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
		n.stepStale(from, m)
		return
	}

	if m.Type == MsgVote {
		n.handleVoteRequest(from, m, false)
		return
	}
	switch n.role {
	case Master:
		n.stepMaster(from, m)
	case PreCandidate, Candidate:
		n.stepCandidate(from, m)
	default:
		n.stepFollower(from, m)
	}
}

// stepStale handles a message of an older term. A stale master or
// candidate is told about the newer term so it steps down; stale responses
// are ignored, but for a refusal of this candidate's own round.
func (n *Node) stepStale(from int, m Message) {
	switch m.Type {
	case MsgHeartbeat:
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, Term: n.hs.Term, Reject: true, Sent: m.Sent})
	case MsgVote:
		n.reply(m, MsgVoteResp, true, 0)
	case MsgVoteResp:
		if n.role == Candidate && m.Reject && m.Sent == n.campaign.at {
			n.tally(from, m)
		}
	}
}
