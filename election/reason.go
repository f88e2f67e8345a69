package election

import "fmt"

// Reason says why a State changed. Code branches on it (the daemon's
// journal names a stepped-down master's cause by it, the simulator opens a
// linearizability write on ReasonWon); people read its String, which logs,
// the driver protocol, the journal and the admin API carry verbatim. The
// zero value is no reason and prints as "".
type Reason uint8

// Reasons for state changes.
const (
	ReasonStart Reason = iota + 1
	ReasonHeartbeat
	ReasonHigherTerm
	ReasonPreVote
	ReasonCampaign
	ReasonTransferIn
	ReasonWon
	ReasonLeaseAcquired
	ReasonLeaseRenewed
	ReasonLeaseExpired
	ReasonNoQuorum
	ReasonCampaignLost
	ReasonTransferOut
	ReasonMaintenance
	ReasonUnhealthy
	ReasonPreempted
	ReasonBecameEligible
	ReasonYielded
	ReasonActing
	reasonEnd
)

// reasonText is each Reason's String. These words are part of the
// interface: e2e tests, golden scenarios and operators' log searches read
// them, so they change only together with those.
var reasonText = [...]string{
	ReasonStart:          "started",
	ReasonHeartbeat:      "heartbeat from master",
	ReasonHigherTerm:     "saw a higher term",
	ReasonPreVote:        "election timeout: asking for pre-votes",
	ReasonCampaign:       "pre-vote won: campaigning",
	ReasonTransferIn:     "told to take over (TimeoutNow)",
	ReasonWon:            "won election: waiting for a majority to acknowledge",
	ReasonLeaseAcquired:  "became master: majority acknowledged",
	ReasonLeaseRenewed:   "lease renewed",
	ReasonLeaseExpired:   "lease expired: no majority acknowledged in time",
	ReasonNoQuorum:       "won election but no majority acknowledged",
	ReasonCampaignLost:   "lost campaign",
	ReasonTransferOut:    "handing over leadership",
	ReasonMaintenance:    "maintenance",
	ReasonUnhealthy:      "unhealthy",
	ReasonPreempted:      "preempted by a higher-priority node",
	ReasonBecameEligible: "eligible again",
	ReasonYielded:        "yielded to a better-ranked candidate",
	ReasonActing:         "stop budget passed: drivers may act",
}

// String returns the reason in words.
func (r Reason) String() string {
	if r < reasonEnd {
		return reasonText[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}
