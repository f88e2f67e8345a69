package election

import (
	"math/bits"
	"time"
)

// campaignState is what only a pre-candidate or candidate needs. Each
// round of vote requests sets it afresh, and leaving the role clears it,
// each with one assignment.
type campaignState struct {
	// at stamps the round of requests; an answer counts only if it echoes
	// it, so a late answer to an earlier round is not counted twice.
	at time.Duration
	// force says TimeoutNow started the campaign: the voters are to skip
	// their stickiness. confirmed says the master that sent it had its
	// drivers' confirmation, so this node's drivers need not wait out the
	// stop budget if it wins.
	force, confirmed bool
	// granted and rejected are member masks of the answers so far.
	granted, rejected uint64
}

// vote records member i's answer, replacing any earlier one.
func (c *campaignState) vote(i int, granted bool) {
	bit := uint64(1) << i
	if granted {
		c.granted |= bit
		c.rejected &^= bit
	} else {
		c.rejected |= bit
		c.granted &^= bit
	}
}

type voteResult uint8

const (
	votePending voteResult = iota + 1
	voteLost
	voteWon
)

// startCampaign starts a pre-vote, or with force (told by TimeoutNow) a
// real vote.
func (n *Node) startCampaign(force, confirmed bool) {
	n.campaign = campaignState{at: n.now, force: force, confirmed: confirmed}
	n.electionAt = n.now + n.randomTimeout()
	t := MsgPreVote
	term := n.hs.Term + 1
	if force {
		n.becomeCandidate(ReasonTransferIn)
		t, term = MsgVote, n.hs.Term
	} else {
		n.setRole(PreCandidate, ReasonPreVote)
	}
	n.campaign.vote(n.self, true)
	for i, m := range n.members {
		if i != n.self {
			n.send(Message{Type: t, To: m.ID, Term: term, Force: force, Sent: n.campaign.at})
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

// stepCandidate handles a message of the current term on a pre-candidate
// or candidate.
func (n *Node) stepCandidate(from int, m Message) {
	switch m.Type {
	case MsgPreVoteResp:
		// A granted pre-vote names the term the campaign would raise.
		if n.role == PreCandidate && m.Sent == n.campaign.at && (m.Reject || m.Term == n.hs.Term+1) {
			n.tally(from, m)
		}
	case MsgVoteResp:
		if n.role == Candidate && m.Sent == n.campaign.at {
			n.tally(from, m)
		}
	case MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgTimeoutNow:
		n.timeoutNow(m)
	}
}

// timeoutNow is a non-master told to take over by the master of its term.
func (n *Node) timeoutNow(m Message) {
	// A node in its start-up hold-off may not even vote for itself.
	holdoff := !n.unsafe.NoTimeoutNowHoldoff && n.now < n.startedAt+n.timing.ElectionMin
	if n.Eligible() && !holdoff {
		n.lead = ""
		n.startCampaign(true, m.Confirmed)
	}
}

func (n *Node) tally(from int, m Message) {
	if m.Reject && m.RetryAfter > 0 {
		// The voter will be free soon: retry then rather than after a
		// whole new timeout.
		n.electionAt = min(n.electionAt, n.now+m.RetryAfter+time.Millisecond)
	}
	n.campaign.vote(from, !m.Reject)
	n.checkVotes()
}

func (n *Node) checkVotes() {
	switch n.voteResult() {
	case voteWon:
		if n.role == PreCandidate {
			c := n.campaign
			n.campaign = campaignState{at: n.now, force: c.force, confirmed: c.confirmed}
			n.campaign.vote(n.self, true)
			n.becomeCandidate(ReasonCampaign)
			for i, m := range n.members {
				if i != n.self {
					n.send(Message{Type: MsgVote, To: m.ID, Term: n.hs.Term, Force: n.campaign.force, Sent: n.campaign.at})
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
	granted := bits.OnesCount64(n.campaign.granted)
	rejected := bits.OnesCount64(n.campaign.rejected)
	switch {
	case granted >= n.quorum, n.unsafe.VoteMinority && granted >= n.quorum-1 && granted > 0:
		return voteWon
	case rejected > len(n.members)-n.quorum:
		return voteLost
	}
	return votePending
}

// randomTimeout is the timeout after an unsettled campaign: plain Raft's
// random draw from [ElectionMin, ElectionMax).
func (n *Node) randomTimeout() time.Duration {
	span := n.timing.ElectionMax - n.timing.ElectionMin
	return n.timing.ElectionMin + time.Duration(n.rnd.Int64N(int64(span)))
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
