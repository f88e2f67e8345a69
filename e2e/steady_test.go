package e2e

import (
	"fmt"
	"time"

	"github.com/clustd/clustd/node/api"
)

// steady watches nodes for d: each must name master m in term term,
// checked every pollEvery; check, if not nil, runs each round too. A stall
// of the shared machine past the lease may elect a master again, and
// legitimately: such a change is tolerated when the master it replaced
// logs that it stepped down because its lease expired, and the nodes then
// agree on a new master among them. Any other change fails the test, with
// why saying what must not have caused it. It returns the rounds watched
// and the elections tolerated.
func (c *testCluster) steady(d time.Duration, nodes []int, m int, term uint64, why string, check func()) (rounds, elections int) {
	c.t.Helper()
	mark := c.logSize(m)
	start := time.Now()
	for end := start.Add(d); time.Now().Before(end); time.Sleep(pollEvery) {
		rounds++
		if check != nil {
			check()
		}
		for _, i := range nodes {
			s, err := c.status(i)
			if err != nil {
				c.t.Fatalf("node %s stopped answering: %v", c.ids[i], err)
			}
			if s.Master == c.ids[m] && s.Term == term && (s.Role == "master") == (i == m) {
				continue
			}
			// A master frozen by the stall logs it on waking: the first
			// thing its core does is see that its lease ran out.
			lost := func() bool { return len(c.logLines(m, mark, `msg="role changed"`, `reason="lease expired`)) > 0 }
			if _, ok := poll(10*time.Second, lost); !ok {
				c.t.Fatalf("%v into the window, node %s reports %s, master %q in term %d, want %s master in term %d, and %s did not lose its lease: %s",
					time.Since(start).Round(time.Millisecond), c.ids[i], s.Role, s.Master, s.Term, c.ids[m], term, c.ids[m], why)
			}
			old, oldTerm := m, term
			var st api.Status
			m, st, _ = c.waitMaster(10*time.Second, nodes...)
			term = st.Term
			if term <= oldTerm {
				c.t.Fatalf("after %s lost its lease, %s is master in term %d, not above %d", c.ids[old], c.ids[m], term, oldTerm)
			}
			elections++
			c.t.Logf("%v into the window, %s lost its lease (a stall of the machine?) and %s became master in term %d: a legitimate election, tolerated",
				time.Since(start).Round(time.Millisecond), c.ids[old], c.ids[m], term)
			mark = c.logSize(m)
			break
		}
	}
	return rounds, elections
}

func (c *testCluster) describeSteady(rounds, elections int) string {
	if elections == 0 {
		return fmt.Sprintf("%d rounds, master unchanged", rounds)
	}
	return fmt.Sprintf("%d rounds, %d legitimate election(s) after a lost lease", rounds, elections)
}
