package election_test

import (
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestForgedHeartbeatAckExtendsNothing cuts the master off so no genuine
// acknowledgement arrives, then hands it acknowledgements naming rounds it
// never sent: in the future, just after its last round, and between
// rounds. None may extend the lease.
func TestForgedHeartbeatAckExtendsNothing(t *testing.T) {
	c := newCluster(t, clusterOpts{members: members("a", "b", "c")})
	m := c.electDefault()
	c.isolate(m)
	c.run(3 * defaultTiming.Heartbeat)
	c.advance(7 * time.Millisecond) // off the heartbeat grid: now is no round
	c.tick(m)
	st := c.node(m).State()
	if st.Role != election.Master {
		t.Fatalf("%s is %v before the forged acknowledgements, want master", m, st.Role)
	}
	before := st.LeaseUntil
	now := c.local(m)
	for _, sent := range []time.Duration{now, now + time.Hour, now - time.Millisecond, before} {
		for _, from := range c.ids {
			if from == m {
				continue
			}
			c.stepTo(m, election.Message{Type: election.MsgHeartbeatResp, From: from, To: m, Term: st.Term, Sent: sent})
		}
		if after := c.node(m).State().LeaseUntil; after > before {
			t.Fatalf("an acknowledgement of round %v, never sent, extended the lease from %v to %v", sent, before, after)
		}
	}
}
