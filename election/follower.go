package election

import "time"

// becomeFollower makes the node a follower of lead (empty for none known)
// in term, clearing whatever a candidate or master kept.
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
		if n.master.leaseUntil > n.now && !n.unsafe.NoSelfLoyalty {
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
	n.master = masterState{}
	n.campaign = campaignState{}
	n.setRole(Follower, reason)
	n.electionAt = n.now + n.rankedTimeout()
	if n.startedAt+n.timing.ElectionMin > n.electionAt {
		n.electionAt = n.startedAt + n.timing.ElectionMin
	}
}

// stepFollower handles a message of the current term on a follower.
func (n *Node) stepFollower(_ int, m Message) {
	switch m.Type {
	case MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgTimeoutNow:
		n.timeoutNow(m)
	}
}

// tickElection fires the timers of a node that is not master: a
// hand-over's TimeoutNow, and the election timeout.
func (n *Node) tickElection() {
	if n.pending != nil && n.now >= n.pending.sendAt {
		// Only the master of the term may send it: a TimeoutNow carrying a
		// newer term would let the target's voters skip their stickiness
		// towards a master that still holds a lease.
		if n.pending.term == n.hs.Term {
			confirmed := n.pending.acting && n.pending.confirmed
			n.send(Message{Type: MsgTimeoutNow, To: n.pending.target, Term: n.hs.Term, Confirmed: confirmed})
		}
		n.pending = nil
	}
	if n.now >= n.electionAt {
		if n.Eligible() {
			n.startCampaign(false, false)
		} else {
			n.electionAt = n.now + n.timing.ElectionMin
		}
	}
}

// handleHeartbeat takes a heartbeat of the current term on a follower or
// candidate: the sender is the master of the term.
func (n *Node) handleHeartbeat(m Message) {
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

// handleVoteRequest answers a pre-vote or a vote request, in any role.
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
		n.handlePreVote(from, m)
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

// handlePreVote answers a pre-vote that stickiness and the hold-off let
// through. A pre-vote changes no term or vote: it only says "you could
// win".
func (n *Node) handlePreVote(from int, m Message) {
	if m.Term <= n.hs.Term {
		n.reply(m, MsgPreVoteResp, true, 0)
		return
	}
	if n.role == PreCandidate && n.now-n.campaign.at < n.yieldWait() {
		// Two campaigns started together would split the vote: the
		// better-ranked one goes on, the other steps back.
		if n.ranksBefore(n.self, from) {
			n.reply(m, MsgPreVoteResp, true, 0)
			return
		}
		n.becomeFollower(n.hs.Term, "", ReasonYielded)
	}
	// Give the candidate time to win before competing with it.
	n.electionAt = max(n.electionAt, n.now+n.yieldWait())
	n.reply(m, MsgPreVoteResp, false, 0)
}

func (n *Node) reply(m Message, t MsgType, reject bool, retry time.Duration) {
	term := n.hs.Term
	if !reject && t == MsgPreVoteResp {
		term = m.Term
	}
	n.send(Message{Type: t, To: m.From, Term: term, Reject: reject, Sent: m.Sent, RetryAfter: retry})
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
