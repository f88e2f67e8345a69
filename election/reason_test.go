package election_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/clustd/clustd/election"
)

// TestReasonWords pins each reason's words: logs, the driver protocol, the
// journal and the status API carry them, and e2e tests and operators
// search for them, so a change must be deliberate.
func TestReasonWords(t *testing.T) {
	want := map[election.Reason]string{
		election.ReasonStart:          "started",
		election.ReasonHeartbeat:      "heartbeat from master",
		election.ReasonHigherTerm:     "saw a higher term",
		election.ReasonPreVote:        "election timeout: asking for pre-votes",
		election.ReasonCampaign:       "pre-vote won: campaigning",
		election.ReasonTransferIn:     "told to take over (TimeoutNow)",
		election.ReasonWon:            "won election: waiting for a majority to acknowledge",
		election.ReasonLeaseAcquired:  "became master: majority acknowledged",
		election.ReasonLeaseRenewed:   "lease renewed",
		election.ReasonLeaseExpired:   "lease expired: no majority acknowledged in time",
		election.ReasonNoQuorum:       "won election but no majority acknowledged",
		election.ReasonCampaignLost:   "lost campaign",
		election.ReasonTransferOut:    "handing over leadership",
		election.ReasonMaintenance:    "maintenance",
		election.ReasonUnhealthy:      "unhealthy",
		election.ReasonPreempted:      "preempted by a higher-priority node",
		election.ReasonBecameEligible: "eligible again",
		election.ReasonYielded:        "yielded to a better-ranked candidate",
		election.ReasonActing:         "stop budget passed: drivers may act",
	}
	for r, w := range want {
		if got := r.String(); got != w {
			t.Errorf("Reason %d says %q, want %q", uint8(r), got, w)
		}
		if got := fmt.Sprintf("%s|%v", r, r); got != w+"|"+w {
			t.Errorf("Reason %d formats as %q, want its words", uint8(r), got)
		}
	}
	// Every value up to the first unknown one is pinned above, so a reason
	// added without a test entry fails here.
	n := 0
	for r := election.Reason(1); !strings.HasPrefix(r.String(), "Reason("); r++ {
		if _, ok := want[r]; !ok {
			t.Errorf("Reason %d (%q) is not pinned by this test", uint8(r), r)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d reasons before the first unknown value, want %d", n, len(want))
	}
	if got := election.Reason(0).String(); got != "" {
		t.Errorf("the zero Reason says %q, want nothing", got)
	}
}
