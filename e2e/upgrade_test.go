package e2e

import (
	"bytes"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// TestRollingUpgrade upgrades a three-node cluster one node at a time, as
// README.md describes: a node that is master is drained first (clustd
// transfer), then each is stopped with SIGTERM and started again, and the
// next one waits until the cluster is whole. The binary is the same one: the
// test proves the procedure, not compatibility between versions. The master
// must move exactly once per upgraded master, and never two at once.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	// whole: one master, and every member reachable from it.
	whole := func() bool {
		_, ms, ok := c.master()
		if !ok {
			return false
		}
		for _, member := range ms.Members {
			if !member.Self && !member.Reachable {
				return false
			}
		}
		return true
	}
	c.waitFor(15*time.Second, "the cluster to be whole", whole)
	first, st, _ := c.waitMaster(10 * time.Second)
	p := c.startPoller()
	c.waitFor(10*time.Second, "the poller to see the first master", func() bool {
		return p.count(func(s sample) bool { return s.node == first && s.st.Role == "master" && s.st.LeaseMS > 0 }) >= 3
	})

	// The followers first, then the master, which hands over to a node
	// already upgraded: the master moves once. The loop checks whoever is
	// master when each node's turn comes, whatever the order.
	order := append(c.others(first), first)
	moves := 0
	for n, i := range order {
		m, _, _ := c.waitMaster(10 * time.Second)
		if m == i {
			// An operator retries a transfer the master refuses because
			// no node has yet acknowledged it as eligible.
			var out []byte
			c.waitFor(10*time.Second, "clustd transfer to be accepted by "+c.ids[i], func() bool {
				var err error
				args := []string{"transfer", "--config", c.cfgPath[i]}
				if n > 0 {
					args = append(args, "--to", c.ids[order[0]])
				}
				out, err = exec.Command(clustdBin, args...).CombinedOutput()
				return err == nil
			})
			m2, _, d := c.waitMaster(10*time.Second, c.others(i)...)
			t.Logf("drained master %s (%s): %s took over in %v", c.ids[i], bytes.TrimSpace(out), c.ids[m2], d)
			moves++
		}
		c.signal(i, syscall.SIGTERM)
		if ps := c.waitExit(i, 30*time.Second); ps.ExitCode() != 0 {
			t.Fatalf("%s exited with %v after SIGTERM", c.ids[i], ps)
		}
		c.start(i)
		c.waitFor(15*time.Second, "the upgraded "+c.ids[i]+" to follow and the cluster to be whole", func() bool {
			_, ms, ok := c.master()
			s, err := c.status(i)
			return ok && err == nil && s.Role == "follower" && s.Master == ms.Master && whole()
		})
	}
	samples := p.close()
	checkNoOverlapHandOver(t, c, samples)

	// The order in which nodes certainly held the role.
	slices.SortFunc(samples, func(a, b sample) int { return a.received.Compare(b.received) })
	var seq []string
	for _, s := range samples {
		if s.st.Role == "master" && s.st.LeaseMS > 0 && (len(seq) == 0 || seq[len(seq)-1] != c.ids[s.node]) {
			seq = append(seq, c.ids[s.node])
		}
	}
	t.Logf("masters in order: %v (first %s in term %d); %d upgraded while master", seq, c.ids[first], st.Term, moves)
	if moves == 0 {
		t.Fatal("no node was master when its turn came")
	}
	if len(seq)-1 != moves {
		t.Errorf("the master moved %d times for %d upgraded masters: %v", len(seq)-1, moves, seq)
	}
	_, last, _ := c.master()
	if last.Term != st.Term+uint64(moves) {
		t.Errorf("term %d at the end, want %d: %d hand-overs and no other election", last.Term, st.Term+uint64(moves), moves)
	}
}

// checkNoOverlapHandOver asserts that no two nodes held the master role at
// the same instant in a run with planned hand-overs. checkNoOverlap counts
// each answer's lease as a claim to the end of it, which is right for a
// master that is cut off or paused but not for one that hands over: it
// steps down (its drivers demoted) before its lease ends, and the target is
// told to take over at once. What is certain instead: a node that answered
// master in term T at two instants was master throughout between them,
// since a node is master at most once per term. So each node's stretch in
// term T runs from the receipt of its first master answer to the sending of
// its last, and no two nodes' stretches may intersect.
func checkNoOverlapHandOver(t *testing.T, c *testCluster, samples []sample) {
	t.Helper()
	found, stretches := handOverOverlaps(samples)
	for k, o := range found {
		if k == 5 {
			t.Errorf("… and %d more overlaps", len(found)-k)
			break
		}
		t.Errorf("two masters at once: %s (term %d) answered master until %v after %s (term %d) had",
			c.ids[o.a.node], o.a.term, o.a.till.Sub(o.b.from), c.ids[o.b.node], o.b.term)
	}
	t.Logf("hand-over overlap check: %d status answers, %d master stretches, %d overlaps", len(samples), stretches, len(found))
}

// handOverOverlaps returns the intersecting stretches (see
// checkNoOverlapHandOver) and how many stretches there were.
func handOverOverlaps(samples []sample) ([]overlap, int) {
	type key struct {
		node int
		term uint64
	}
	spans := map[key]*claim{}
	for _, s := range samples {
		if s.st.Role != "master" || s.st.LeaseMS <= 0 {
			continue
		}
		k := key{s.node, s.st.Term}
		cl := spans[k]
		if cl == nil {
			cl = &claim{node: s.node, term: s.st.Term, from: s.received, till: s.sent}
			spans[k] = cl
		}
		if s.received.Before(cl.from) {
			cl.from = s.received
		}
		if s.sent.After(cl.till) {
			cl.till = s.sent
		}
	}
	var cs []claim
	for _, cl := range spans {
		if cl.till.After(cl.from) {
			cs = append(cs, *cl)
		}
	}
	slices.SortFunc(cs, func(a, b claim) int { return a.from.Compare(b.from) })
	var found []overlap
	for i, a := range cs {
		for _, b := range cs[i+1:] {
			if b.from.Before(a.till) && a.node != b.node {
				found = append(found, overlap{a, b})
			}
		}
	}
	return found, len(cs)
}

// TestHandOverOverlapCheck makes sure the hand-over check can fail.
func TestHandOverOverlapCheck(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	master := func(node int, term uint64, sent, received int) sample {
		return sample{node: node, sent: at(sent), received: at(received), st: api.Status{Role: "master", Term: term, LeaseMS: 400}}
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    int
	}{
		{"hand-over inside a lease", []sample{master(0, 1, 0, 1), master(0, 1, 20, 21), master(1, 2, 40, 41), master(1, 2, 60, 61)}, 0},
		{"both answering master over the same time", []sample{master(0, 1, 0, 1), master(1, 2, 10, 11), master(0, 1, 30, 31), master(1, 2, 40, 41)}, 1},
		{"slow answers, overlap not certain", []sample{master(0, 1, 0, 1), master(0, 1, 20, 50), master(1, 2, 30, 31), master(1, 2, 60, 61)}, 0},
	} {
		if found, _ := handOverOverlaps(tc.samples); len(found) != tc.want {
			t.Errorf("%s: %d overlaps, want %d", tc.name, len(found), tc.want)
		}
	}
}
