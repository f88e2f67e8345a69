package election_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// These benchmarks drive the cores through the public API only, with
// messages handed over at once and the same clock on every node, so that
// they measure the core and nothing else. clustd-bench (make bench) reports
// their ns/op and allocs/op.

// benchNet is five cores wired back to back.
type benchNet struct {
	now   time.Duration
	ids   []string
	nodes map[string]*election.Node
}

func newBenchNet(b *testing.B) *benchNet {
	b.Helper()
	n := &benchNet{now: time.Second, ids: []string{"a", "b", "c", "d", "e"}, nodes: map[string]*election.Node{}}
	var ms []election.Member
	for _, id := range n.ids {
		ms = append(ms, election.Member{ID: id})
	}
	for i, id := range n.ids {
		core, err := election.New(election.Config{
			ID: id, Members: ms, Timing: election.MustProfile(election.ProfileDefault),
			Rand: rand.New(rand.NewPCG(uint64(i), 1)),
		}, election.HardState{}, n.now)
		if err != nil {
			b.Fatal(err)
		}
		n.nodes[id] = core
	}
	// Run until a master holds its lease: every due timer fires, and
	// every message is delivered at once, breadth first.
	for step := 0; step < 100000; step++ {
		for _, id := range n.ids {
			if n.nodes[id].IsMaster(n.now) {
				n.run(2 * time.Second)
				return n
			}
		}
		n.now = n.nextDeadline()
		n.tickAll()
	}
	b.Fatal("no master elected")
	return nil
}

func (n *benchNet) nextDeadline() time.Duration {
	d := time.Duration(1<<63 - 1)
	for _, core := range n.nodes {
		d = min(d, core.NextDeadline())
	}
	return max(d, n.now)
}

// tickAll ticks every core and delivers what follows.
func (n *benchNet) tickAll() {
	var queue []election.Message
	for _, id := range n.ids {
		n.nodes[id].Tick(n.now)
		queue = append(queue, n.nodes[id].Ready().Messages...)
	}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		to := n.nodes[m.To]
		to.Step(n.now, m)
		queue = append(queue, to.Ready().Messages...)
	}
}

// run advances time by d, firing timers and delivering everything.
func (n *benchNet) run(d time.Duration) {
	end := n.now + d
	for n.nextDeadline() <= end {
		n.now = n.nextDeadline()
		n.tickAll()
	}
	n.now = end
}

func (n *benchNet) master(b *testing.B) (string, *election.Node) {
	for _, id := range n.ids {
		if n.nodes[id].IsMaster(n.now) {
			return id, n.nodes[id]
		}
	}
	b.Fatal("no master")
	return "", nil
}

// BenchmarkHeartbeatRound measures one whole heartbeat round of a 5-node
// cluster as the cores see it: the master's timer fires and it sends four
// heartbeats, each follower takes one and answers, and the master takes
// the four answers and extends its lease. That is nine inputs per round;
// ns/input reports the average.
func BenchmarkHeartbeatRound(b *testing.B) {
	n := newBenchNet(b)
	_, m := n.master(b)
	hb := election.MustProfile(election.ProfileDefault).Heartbeat
	var out, resps [8]election.Message
	b.ReportAllocs()
	for b.Loop() {
		n.now += hb
		m.Tick(n.now)
		// Ready's slices are reused by the core's next input: copy.
		k := copy(out[:], m.Ready().Messages)
		r := 0
		for _, msg := range out[:k] {
			f := n.nodes[msg.To]
			f.Step(n.now, msg)
			r += copy(resps[r:], f.Ready().Messages)
		}
		for _, msg := range resps[:r] {
			m.Step(n.now, msg)
			m.Ready()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/9, "ns/input")
	if !m.IsMaster(n.now) {
		b.Fatal("the master lost its lease during the benchmark")
	}
}

// BenchmarkStepPreVoteRefused measures a follower refusing a pre-vote
// because it hears from a live master: the load a node that keeps losing
// contact with the master puts on the others.
func BenchmarkStepPreVoteRefused(b *testing.B) {
	n := newBenchNet(b)
	mid, _ := n.master(b)
	var voter, asker string
	for _, id := range n.ids {
		switch {
		case id == mid:
		case voter == "":
			voter = id
		case asker == "":
			asker = id
		}
	}
	f := n.nodes[voter]
	req := election.Message{Type: election.MsgPreVote, From: asker, To: voter, Term: f.Term() + 1, Sent: n.now}
	b.ReportAllocs()
	for b.Loop() {
		f.Step(n.now, req)
		rd := f.Ready()
		if len(rd.Messages) != 1 || !rd.Messages[0].Reject {
			b.Fatalf("want one refusal, got %v", rd.Messages)
		}
	}
}
