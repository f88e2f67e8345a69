package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// TestThreeNodesElectOneMaster starts a fresh three-node cluster and checks
// that one master appears, that every node names it in the same term, that
// nobody else claims the role, and that the nodes see each other.
func TestThreeNodesElectOneMaster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	c.startAll()

	var sts []api.Status
	d := c.waitFor(10*time.Second, "one master that all three nodes agree on", func() bool {
		sts = sts[:0]
		for i := range c.ids {
			st, err := c.status(i)
			if err != nil {
				return false
			}
			sts = append(sts, st)
		}
		masters := 0
		for _, st := range sts {
			if st.Role == "master" {
				masters++
			}
			if st.Master == "" || st.Master != sts[0].Master || st.Term != sts[0].Term {
				return false
			}
		}
		return masters == 1 && sts[c.index(sts[0].Master)].Role == "master"
	})
	m := c.index(sts[0].Master)
	t.Logf("master %s in term %d, %v after start; its lease has %d ms left", c.ids[m], sts[m].Term, d, sts[m].LeaseMS)
	if sts[m].Term < 1 {
		t.Errorf("master %s reports term %d; a master is elected in term 1 or later", c.ids[m], sts[m].Term)
	}
	if sts[m].LeaseMS <= 0 {
		t.Errorf("master %s reports lease_ms %d; a master that agrees with its followers holds a lease", c.ids[m], sts[m].LeaseMS)
	}

	// Every node should hear from both others, or the agreement above came
	// from a cluster that is only partly connected.
	c.waitFor(10*time.Second, "every node to see both others as reachable", func() bool {
		for i := range c.ids {
			st, err := c.status(i)
			if err != nil || len(st.Members) != 3 {
				return false
			}
			for _, ms := range st.Members {
				if !ms.Reachable {
					return false
				}
			}
		}
		return true
	})
}

// TestKillMasterFailsOver kills the master with SIGKILL and checks that one
// of the other two takes over in a higher term.
func TestKillMasterFailsOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	c.kill(m)
	// Measured from the moment the process is gone to the first poll that
	// finds the new master, so it includes up to one poll interval.
	m2, st2, d := c.waitMaster(10*time.Second, c.others(m)...)
	t.Logf("fast profile: kill -9 of master %s (term %d) -> master %s in term %d after %v (polled every %v)",
		c.ids[m], st.Term, c.ids[m2], st2.Term, d.Round(time.Millisecond), pollEvery)
	if m2 == m {
		t.Fatalf("the killed node %s is still named master", c.ids[m])
	}
	if st2.Term <= st.Term {
		t.Errorf("new master %s has term %d, not above the old master's term %d", c.ids[m2], st2.Term, st.Term)
	}
}

// TestRestartedNodeRejoinsAsFollower kills the master, lets the other two
// elect a new one, restarts the killed node and checks that it comes back as
// a follower of the new master without disturbing it: pre-vote and
// stickiness must keep a returning node from raising the term.
func TestRestartedNodeRejoinsAsFollower(t *testing.T) {
	t.Parallel()
	// The default profile: the check below is that nothing changes for
	// seconds, which a loaded machine could break with fast timing alone.
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	c.kill(m)
	m2, st2, d := c.waitMaster(10*time.Second, c.others(m)...)
	t.Logf("default profile: kill -9 of master %s (term %d) -> master %s in term %d after %v",
		c.ids[m], st.Term, c.ids[m2], st2.Term, d.Round(time.Millisecond))
	if st2.Term <= st.Term {
		t.Fatalf("new master %s has term %d, not above %d", c.ids[m2], st2.Term, st.Term)
	}

	restarted := time.Now()
	c.start(m)
	d = c.waitFor(10*time.Second, fmt.Sprintf("restarted %s to follow %s in term %d", c.ids[m], c.ids[m2], st2.Term), func() bool {
		s, err := c.status(m)
		return err == nil && s.Role == "follower" && s.Master == c.ids[m2] && s.Term == st2.Term
	})
	t.Logf("restarted %s follows %s %v after its restart", c.ids[m], c.ids[m2], d)

	// For a few seconds after the node is back, every node must keep
	// naming the same master in the same term.
	rounds, elections := c.steady(3*time.Second, c.others(), m2, st2.Term,
		fmt.Sprintf("the returning node %s must not disturb the cluster (%v after its restart)", c.ids[m], time.Since(restarted).Round(time.Millisecond)), nil)
	t.Logf("master %s in term %d after the restart: %s over 3 s", c.ids[m2], st2.Term, c.describeSteady(rounds, elections))
}

// TestPausedMasterNeverOverlaps freezes the master with SIGSTOP for longer
// than its lease, lets the others elect a new master, resumes it, and checks
// that at no instant two nodes claimed the role, that the old master steps
// down, and that it never acted as master after its lease ran out.
func TestPausedMasterNeverOverlaps(t *testing.T) {
	t.Parallel()
	// Default timing: a 3 s pause is six election timeouts, and a loaded
	// machine does not cause spurious elections that would blur the picture.
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)
	p := c.startPoller()
	// Some claims of the first master before the pause give the overlap
	// check something to compare the new master's claims with.
	c.waitFor(10*time.Second, "the poller to see the first master", func() bool {
		return p.count(func(s sample) bool { return s.node == m && s.st.Role == "master" && s.st.LeaseMS > 0 }) >= 5
	})

	const pause = 3 * time.Second
	stopped := time.Now()
	c.signal(m, syscall.SIGSTOP)
	m2, st2, _ := c.waitMaster(10*time.Second, c.others(m)...)
	t.Logf("SIGSTOP of master %s (term %d) -> master %s in term %d after %v",
		c.ids[m], st.Term, c.ids[m2], st2.Term, time.Since(stopped).Round(time.Millisecond))
	if st2.Term <= st.Term {
		t.Errorf("new master %s has term %d, not above %d", c.ids[m2], st2.Term, st.Term)
	}
	// A deliberate pause: the old master stays frozen well past its lease.
	time.Sleep(time.Until(stopped.Add(pause)))

	mark := c.logSize(m)
	resumed := time.Now()
	c.signal(m, syscall.SIGCONT)
	d := c.waitFor(10*time.Second, fmt.Sprintf("resumed %s to report follower", c.ids[m]), func() bool {
		s, err := c.status(m)
		return err == nil && s.Role == "follower" && s.Term >= st2.Term
	})
	t.Logf("resumed %s reports follower %v after SIGCONT", c.ids[m], d)
	// A deliberate second of observation: a node that wrongly believed
	// itself master would show it now.
	time.Sleep(time.Until(resumed.Add(d + time.Second)))
	samples := p.close()
	checkNoOverlap(t, c, samples)

	// The old master's own account after the pause: its first role change
	// is a step-down for a reason that proves it noticed, and it never
	// claims the role again.
	changes := c.logLines(m, mark, `msg="role changed"`)
	if len(changes) == 0 {
		t.Fatalf("resumed %s logged no role change after SIGCONT", c.ids[m])
	}
	first := changes[0]
	if !strings.Contains(first, "role=follower") ||
		!(strings.Contains(first, `reason="lease expired`) || strings.Contains(first, `reason="saw a higher term"`)) {
		t.Errorf("resumed %s's first role change is not a step-down for an expired lease or a higher term:\n%s", c.ids[m], first)
	}
	for _, l := range changes {
		if strings.Contains(l, "role=master") {
			t.Errorf("resumed %s acted as master after its lease:\n%s", c.ids[m], l)
		}
	}
	t.Logf("resumed %s's role changes after SIGCONT:\n%s", c.ids[m], strings.Join(changes, "\n"))
}

// checkNoOverlap asserts that no two nodes held the master role at the same
// instant, judging only from what the poller saw.
//
// A node answering role=master with lease_ms=L computed L from its reading
// of CLOCK_BOOTTIME at some instant s between the moment the request was
// sent and the moment the answer arrived; it claims the role over [s, s+L].
// Nothing outside tells s, but whatever s was, the claim certainly covers
// [received, sent+L]. The test's time.Now and the daemon read the same
// monotonic clock of this machine, so no drift allowance is needed, and
// lease_ms is rounded down, which only shrinks the interval. If two nodes'
// certain intervals intersect, there was a real instant at which both said
// master: a violation, however slow the responses were. The converse does not
// hold (an overlap hidden inside the uncertainty of the polls goes unseen),
// so the check never fails wrongly and catches every overlap longer than the
// polls' own latency. A node answering master with lease_ms=0 has not yet
// noticed its lease expired and does not act on the role: it is not a claim.
func checkNoOverlap(t *testing.T, c *testCluster, samples []sample) {
	t.Helper()
	found, claims, masters := overlaps(samples)
	byNode := map[string]int{}
	for i, n := range masters {
		byNode[c.ids[i]] = n
	}
	for k, o := range found {
		if k == 5 {
			t.Errorf("… and %d more overlaps", len(found)-k)
			break
		}
		t.Errorf("two masters at once: %s (term %d) certainly held the role until %v after %s (term %d) certainly took it",
			c.ids[o.a.node], o.a.term, o.a.till.Sub(o.b.from), c.ids[o.b.node], o.b.term)
	}
	t.Logf("overlap check: %d status answers, %d certain master claims (%v by node), %d overlaps", len(samples), claims, byNode, len(found))
	if len(masters) < 2 {
		t.Errorf("the poller saw only %d node(s) as master; the check needs the old and the new master to mean anything", len(masters))
	}
}

// claim is the interval over which a status answer proves its node master.
type claim struct {
	node       int
	term       uint64
	from, till time.Time
}

// overlap is a pair of claims by different nodes that share an instant.
type overlap struct{ a, b claim }

// overlaps finds every pair of overlapping claims in samples (see
// checkNoOverlap), and also returns how many claims there were and how many
// master answers each node gave.
func overlaps(samples []sample) (found []overlap, claims int, masters map[int]int) {
	masters = map[int]int{}
	var cs []claim
	for _, s := range samples {
		if s.st.Role != "master" || s.st.LeaseMS <= 0 {
			continue
		}
		masters[s.node]++
		till := s.sent.Add(time.Duration(s.st.LeaseMS) * time.Millisecond)
		if till.After(s.received) {
			cs = append(cs, claim{s.node, s.st.Term, s.received, till})
		}
	}
	slices.SortFunc(cs, func(a, b claim) int { return a.from.Compare(b.from) })
	for i, a := range cs {
		for _, b := range cs[i+1:] {
			if !b.from.Before(a.till) {
				break // sorted by start: no later claim starts before a ends
			}
			if a.node != b.node {
				found = append(found, overlap{a, b})
			}
		}
	}
	return found, len(cs), masters
}

// TestOverlapCheck makes sure that the overlap check used on real clusters
// can fail: it must flag two claims that certainly share an instant, and
// must not flag claims that only might, given how long the polls took.
func TestOverlapCheck(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	master := func(node int, sent, received, lease int) sample {
		return sample{node: node, sent: at(sent), received: at(received),
			st: api.Status{Role: "master", Term: uint64(node + 1), LeaseMS: int64(lease)}}
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    int
	}{
		{"one master renewing", []sample{master(0, 0, 1, 400), master(0, 20, 21, 400)}, 0},
		{"hand-over after the lease", []sample{master(0, 0, 1, 400), master(1, 420, 421, 400)}, 0},
		{"both certainly master", []sample{master(0, 0, 1, 400), master(1, 100, 101, 400)}, 1},
		// Node 0's answer took 300 ms: it may have been computed at 0 ms,
		// so its lease is only certain up to 50 ms, before node 1's claim.
		{"slow answer, overlap not certain", []sample{master(0, 0, 300, 50), master(1, 200, 201, 400)}, 0},
		{"not a claim without a lease", []sample{master(0, 0, 1, 0), master(1, 0, 1, 400)}, 0},
		{"follower", []sample{master(0, 0, 1, 400), {node: 1, sent: at(0), received: at(1), st: api.Status{Role: "follower"}}}, 0},
	} {
		if found, _, _ := overlaps(tc.samples); len(found) != tc.want {
			t.Errorf("%s: %d overlaps, want %d", tc.name, len(found), tc.want)
		}
	}
}

// TestSigtermHandsOver stops the master with SIGTERM and checks that it
// hands leadership over: another node is master quickly, and the stopped
// process exits with status 0.
func TestSigtermHandsOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	termed := time.Now()
	c.signal(m, syscall.SIGTERM)
	m2, st2, d := c.waitMaster(10*time.Second, c.others(m)...)
	t.Logf("SIGTERM of master %s (term %d) -> master %s in term %d after %v",
		c.ids[m], st.Term, c.ids[m2], st2.Term, d)
	if d >= 5*time.Second {
		t.Errorf("hand-over took %v; want under 5 s", d)
	}
	if st2.Term <= st.Term {
		t.Errorf("new master %s has term %d, not above %d", c.ids[m2], st2.Term, st.Term)
	}
	ps := c.waitExit(m, 10*time.Second)
	t.Logf("%s exited %v after SIGTERM: %v", c.ids[m], time.Since(termed).Round(time.Millisecond), ps)
	if ps.ExitCode() != 0 {
		t.Errorf("%s exited with %v after SIGTERM; want status 0", c.ids[m], ps)
	}
	if len(c.logLines(m, 0, "handing leadership over first")) == 0 {
		t.Errorf("%s did not log that it handed leadership over", c.ids[m])
	}
	if l := c.logLines(m, 0, "without handing over"); len(l) > 0 {
		t.Errorf("%s stopped without handing over: %s", c.ids[m], l[0])
	}
}
