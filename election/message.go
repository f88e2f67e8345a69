package election

import (
	"fmt"
	"strings"
	"time"
)

// MsgType is the kind of a Message. The zero value is not a valid type.
type MsgType uint8

// Message types.
const (
	// MsgPreVote asks whether the sender could win an election for Term
	// without anyone raising their term (Raft thesis §9.6).
	MsgPreVote MsgType = iota + 1
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgVote asks for the receiver's vote in Term.
	MsgVote
	// MsgVoteResp answers MsgVote.
	MsgVoteResp
	// MsgHeartbeat is the master's heartbeat round; Sent stamps the round.
	MsgHeartbeat
	// MsgHeartbeatResp acknowledges a heartbeat and echoes its Sent stamp.
	MsgHeartbeatResp
	// MsgTimeoutNow tells the receiver to campaign at once: the sender, the
	// master of Term, has demoted itself to hand over (Raft thesis §3.10).
	MsgTimeoutNow
	msgTypeEnd
)

var msgTypeNames = [...]string{
	MsgPreVote:       "PreVote",
	MsgPreVoteResp:   "PreVoteResp",
	MsgVote:          "Vote",
	MsgVoteResp:      "VoteResp",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgTimeoutNow:    "TimeoutNow",
}

func (t MsgType) String() string {
	if t > 0 && t < msgTypeEnd {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t MsgType) Valid() bool { return t > 0 && t < msgTypeEnd }

// Message is what election cores send each other. Messages are values: once
// handed out by Ready they are never changed by the core.
type Message struct {
	Type MsgType
	From string
	To   string
	Term uint64
	// Reject marks a negative response.
	Reject bool
	// Force lets a vote skip the voter's stickiness; only a candidate told to
	// campaign by MsgTimeoutNow sets it.
	Force bool
	// Sent is a stamp on the sender's clock: the send time of a heartbeat
	// round or the start of a campaign. Responses echo it, so the sender can
	// tell which round they answer. No other node interprets it as a time.
	Sent time.Duration
	// RetryAfter, on a rejected (pre-)vote, says how long until the voter's
	// stickiness or start-up hold-off ends, so the candidate can retry then
	// instead of after a whole new timeout.
	RetryAfter time.Duration
	// Skip, on a heartbeat, marks members (by index in the sorted member
	// list) that the master did not see as eligible and reachable; followers
	// leave them out when they rank themselves.
	Skip uint64
	// Eligible, on a heartbeat response, says whether the sender could
	// become master.
	Eligible bool
	// Confirmed, on TimeoutNow, says every driver of the sender confirmed
	// its demote: the target's drivers need not wait out the stop budget.
	Confirmed bool
}

// Describe renders m for traces and logs.
func Describe(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s term=%d", m.From, m.To, m.Type, m.Term)
	if m.Reject {
		b.WriteString(" reject")
	}
	if m.Force {
		b.WriteString(" force")
	}
	if m.Confirmed {
		b.WriteString(" confirmed")
	}
	switch m.Type {
	case MsgHeartbeat, MsgHeartbeatResp, MsgPreVote, MsgVote, MsgPreVoteResp, MsgVoteResp:
		fmt.Fprintf(&b, " sent=%v", m.Sent)
	}
	if m.RetryAfter > 0 {
		fmt.Fprintf(&b, " retry=%v", m.RetryAfter)
	}
	if m.Skip != 0 {
		fmt.Fprintf(&b, " skip=%#x", m.Skip)
	}
	if m.Type == MsgHeartbeatResp && !m.Eligible {
		b.WriteString(" ineligible")
	}
	return b.String()
}
