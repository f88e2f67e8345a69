package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// transition is one published state change, at real time.
type transition struct {
	at   time.Duration
	node int
	st   election.State
}

// scenario is a simulation with a recorder of every state change.
type scenario struct {
	*Sim
	t     *testing.T
	trail []transition
}

func newScenario(t *testing.T, opts Options) *scenario {
	t.Helper()
	sc := &scenario{t: t}
	if opts.Timing == (election.Timing{}) {
		opts.Timing = defaultTiming()
	}
	if opts.Net == (NetParams{}) {
		opts.Net = NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}
	}
	opts.Linearizability = true
	opts.OnState = func(at time.Duration, node int, st election.State) {
		sc.trail = append(sc.trail, transition{at, node, st})
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sc.Sim = s
	t.Cleanup(sc.verify)
	return sc
}

// verify runs when the test ends: no invariant broken, history linearizable.
func (sc *scenario) verify() {
	sc.t.Helper()
	if v := sc.Violations(); len(v) > 0 {
		var b bytes.Buffer
		sc.WriteTimeline(&b)
		sc.t.Fatalf("violations: %v\n%s", v, b.String())
	}
	res, err := sc.Linearizable(10*time.Second, "")
	if err != nil || res != "Ok" {
		sc.t.Fatalf("leadership history: %s %v", res, err)
	}
}

// waitMaster runs until some node holds a lease, at most within.
func (sc *scenario) waitMaster(within time.Duration) int {
	sc.t.Helper()
	end := sc.Now() + within
	for sc.Now() < end {
		if m := sc.Master(); m >= 0 {
			return m
		}
		sc.RunFor(time.Millisecond)
	}
	var b bytes.Buffer
	sc.WriteTimeline(&b)
	sc.t.Fatalf("no master within %v\n%s", within, b.String())
	return -1
}

// waitNewMaster runs until a node other than old holds a lease.
func (sc *scenario) waitNewMaster(old int, within time.Duration) int {
	sc.t.Helper()
	end := sc.Now() + within
	for sc.Now() < end {
		if m := sc.Master(); m >= 0 && m != old {
			return m
		}
		sc.RunFor(time.Millisecond)
	}
	var b bytes.Buffer
	sc.WriteTimeline(&b)
	sc.t.Fatalf("no new master within %v\n%s", within, b.String())
	return -1
}

// lastStepDown is when node last stopped being master.
func (sc *scenario) lastStepDown(node int) (time.Duration, election.Reason) {
	wasMaster := false
	var at time.Duration
	var why election.Reason
	for _, tr := range sc.trail {
		if tr.node != node {
			continue
		}
		if tr.st.Role == election.Master {
			wasMaster = true
		} else if wasMaster {
			wasMaster = false
			at, why = tr.at, tr.st.Reason
		}
	}
	return at, why
}

// becameMaster is when node acquired the lease of term.
func (sc *scenario) becameMaster(node int, term uint64) time.Duration {
	for _, tr := range sc.trail {
		if tr.node == node && tr.st.Term == term && tr.st.Role == election.Master {
			return tr.at
		}
	}
	sc.t.Fatalf("%s never became master of term %d", sc.ID(node), term)
	return 0
}

func TestScenarioMasterCrash(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 5, Seed: 1})
	m := sc.waitMaster(3 * time.Second)
	term := sc.NodeState(m).Term
	sc.RunFor(2 * time.Second)
	crashed := sc.Now()
	sc.Crash(m)
	n := sc.waitNewMaster(m, 3*time.Second)
	if got := sc.NodeState(n).Term; got <= term {
		t.Fatalf("new master %s has term %d, not above %d", sc.ID(n), got, term)
	}
	// Ranked candidacy: the new master within ElectionMin plus a few steps
	// and round trips, well under plain Raft's random 2×ElectionMin.
	if took := sc.Now() - crashed; took > 700*time.Millisecond {
		t.Errorf("failover took %v", took)
	}
	sc.Restart(m)
	sc.RunFor(5 * time.Second)
	if sc.Master() != n {
		t.Fatalf("restarted old master deposed %s", sc.ID(n))
	}
}

// The master cut off from the majority must step down before anyone else
// is elected.
func TestScenarioMasterIsolated(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 5, Seed: 2})
	m := sc.waitMaster(3 * time.Second)
	sc.RunFor(time.Second)
	sc.Isolate(m)
	n := sc.waitNewMaster(m, 3*time.Second)
	down, why := sc.lastStepDown(m)
	if down == 0 || why != election.ReasonLeaseExpired {
		t.Fatalf("isolated master did not step down for its lease (at %v: %q)", down, why)
	}
	up := sc.becameMaster(n, sc.NodeState(n).Term)
	if down >= up {
		t.Fatalf("old master stepped down at %v, after the new one took over at %v", down, up)
	}
	sc.Heal()
	sc.RunFor(3 * time.Second)
	if sc.Master() != n {
		t.Fatalf("healed old master disturbed the new one")
	}
}

// A node back from a partition does not depose a healthy master: pre-vote
// kept its term from growing while it was away.
func TestScenarioReturningNodeDoesNotDepose(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 5, Seed: 3})
	m := sc.waitMaster(3 * time.Second)
	term := sc.NodeState(m).Term
	x := (m + 1) % sc.Size()
	sc.Isolate(x)
	sc.RunFor(20 * time.Second)
	if got := sc.Core(x).Term(); got != term {
		t.Fatalf("isolated node's term grew from %d to %d", term, got)
	}
	sc.Heal()
	sc.RunFor(5 * time.Second)
	if sc.Master() != m || sc.NodeState(m).Term != term {
		t.Fatalf("master changed after the node returned: now %d at term %d", sc.Master(), sc.NodeState(m).Term)
	}
}

// A master paused past its lease: another takes over only after the lease
// ran out, and the old one, resumed, finds its lease expired.
func TestScenarioMasterPaused(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 3, Seed: 4})
	m := sc.waitMaster(3 * time.Second)
	sc.RunFor(time.Second)
	lease := sc.NodeState(m).LeaseUntil
	sc.Pause(m)
	n := sc.waitNewMaster(m, 3*time.Second)
	up := sc.becameMaster(n, sc.NodeState(n).Term)
	if up < lease {
		t.Fatalf("new master at %v, before the paused master's lease ended at %v", up, lease)
	}
	sc.RunFor(2 * time.Second)
	sc.Resume(m)
	if sc.Core(m).IsMaster(sc.Now()) {
		t.Fatal("resumed master still believes it holds a lease")
	}
	sc.RunFor(time.Second)
	if sc.Master() != n {
		t.Fatal("resumed master disturbed the new one")
	}
}

// Clock rates at the bound, the worst way round: the master's clock slow,
// everyone else's fast. The lease must still end before anyone votes; and
// without the drift factor, the same run must overlap.
func TestScenarioDriftAtBound(t *testing.T) {
	timing := defaultTiming()
	eps := timing.MaxClockDrift
	run := func(t *testing.T, unsafe election.Unsafe) *Sim {
		s, err := New(Options{Nodes: 3, Seed: 5, Timing: timing, Unsafe: unsafe,
			Rates: []float64{1 - eps, 1 + eps, 1 + eps},
			Net:   NetParams{Delay: 100 * time.Microsecond}})
		if err != nil {
			t.Fatal(err)
		}
		// n1, the slow clock, becomes master (the others wait in
		// maintenance); then it is cut off.
		s.SetMaintenance(1, true)
		s.SetMaintenance(2, true)
		for s.Master() < 0 && s.Now() < 5*time.Second {
			s.RunFor(time.Millisecond)
		}
		s.SetMaintenance(1, false)
		s.SetMaintenance(2, false)
		if s.Master() != 0 {
			t.Fatalf("expected n1 to win first, got %d", s.Master())
		}
		s.RunFor(time.Second)
		s.Isolate(0)
		s.RunFor(3 * time.Second)
		return s
	}
	t.Run("safe", func(t *testing.T) {
		s := run(t, election.Unsafe{})
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("violation with drift at the bound: %v", v)
		}
		if m := s.Master(); m <= 0 {
			t.Fatalf("no new master after isolating n1 (master %d)", m)
		}
	})
	t.Run("without drift factor", func(t *testing.T) {
		v := run(t, election.Unsafe{NoDriftMargin: true}).Violations()
		if len(v) == 0 || !strings.Contains(v[0].What, "two masters") {
			t.Fatalf("a lease of the full ElectionMin under drifting clocks went unnoticed: %v", v)
		}
		t.Log(v[0])
	})
}

// Two machines and a witness: the witness votes, never leads, and either
// machine can fail over to the other.
func TestScenarioTwoNodesAndWitness(t *testing.T) {
	sc := newScenario(t, Options{Seed: 6, Members: []election.Member{{ID: "a"}, {ID: "b"}, {ID: "w", Witness: true}}})
	w := sc.Index("w")
	for round := range 3 {
		m := sc.waitMaster(3 * time.Second)
		if m == w {
			t.Fatal("the witness became master")
		}
		sc.RunFor(time.Second)
		sc.Crash(m)
		n := sc.waitNewMaster(m, 3*time.Second)
		if n == w {
			t.Fatal("the witness became master")
		}
		sc.Restart(m)
		sc.RunFor(2 * time.Second)
		_ = round
	}
	// Losing the witness costs nothing while both machines are up.
	m := sc.Master()
	sc.Crash(w)
	sc.RunFor(5 * time.Second)
	if sc.Master() != m {
		t.Fatal("master lost when the witness went down")
	}
}

func TestScenarioTransferToNamedNode(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 5, Seed: 7})
	m := sc.waitMaster(3 * time.Second)
	sc.RunFor(time.Second)
	target := (m + 2) % sc.Size()
	start := sc.Now()
	if err := sc.Transfer(m, sc.ID(target)); err != nil {
		t.Fatal(err)
	}
	if sc.Core(m).IsMaster(sc.Now()) {
		t.Fatal("master did not demote itself at once")
	}
	n := sc.waitNewMaster(m, handOverBound)
	if n != target {
		t.Fatalf("transfer to %s elected %s", sc.ID(target), sc.ID(n))
	}
	t.Logf("hand-over took %v", sc.Now()-start)
	if err := sc.Transfer(n, "nobody"); err == nil {
		t.Fatal("transfer to an unknown node accepted")
	}
	if err := sc.Transfer(m, ""); err == nil {
		t.Fatal("transfer from a non-master accepted")
	}
}

func TestScenarioMaintenanceOnMaster(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 3, Seed: 8})
	m := sc.waitMaster(3 * time.Second)
	sc.RunFor(time.Second)
	sc.SetMaintenance(m, true)
	n := sc.waitNewMaster(m, handOverBound)
	handedOver := sc.becameMaster(n, sc.NodeState(n).Term)
	// The new master goes down too: the node in maintenance must not step in.
	sc.RunFor(time.Second)
	sc.Crash(n)
	sc.RunFor(5 * time.Second)
	for _, tr := range sc.trail {
		if tr.node == m && tr.at > handedOver && tr.st.Role != election.Follower {
			t.Fatalf("node in maintenance became %s at %v", tr.st.Role, tr.at)
		}
	}
	sc.SetMaintenance(m, false)
	sc.waitMaster(3 * time.Second)
}

// Health loss behaves like maintenance.
func TestScenarioUnhealthyMaster(t *testing.T) {
	sc := newScenario(t, Options{Nodes: 3, Seed: 9})
	m := sc.waitMaster(3 * time.Second)
	sc.RunFor(time.Second)
	sc.SetHealthy(m, false)
	sc.waitNewMaster(m, handOverBound)
}

// Preemption: a higher-priority node takes over, but only after the
// hold-down, and the cluster does not flap.
func TestScenarioPreemption(t *testing.T) {
	sc := newScenario(t, Options{Seed: 10, Preempt: true, PreemptHoldDown: 3 * time.Second,
		Members: []election.Member{{ID: "a", Priority: 1}, {ID: "b", Priority: 5}, {ID: "c", Priority: 1}}})
	b := sc.Index("b")
	m := sc.waitMaster(3 * time.Second)
	if m != b {
		t.Fatalf("the highest priority ranks first and should win the first election, got %s", sc.ID(m))
	}
	sc.Crash(b)
	n := sc.waitNewMaster(b, 3*time.Second)
	sc.Restart(b)
	sc.RunFor(2 * time.Second)
	if sc.Master() != n {
		t.Fatal("preempted before the hold-down")
	}
	sc.RunFor(3*time.Second + DefaultDemoteTimeout)
	if sc.Master() != b {
		t.Fatalf("higher-priority node did not take over after the hold-down (master %d)", sc.Master())
	}
	changes := sc.Stats().MasterChanges
	sc.RunFor(20 * time.Second)
	if sc.Stats().MasterChanges != changes {
		t.Fatal("mastership flapped after preemption")
	}
}

// A node restarted at once must not vote while an old lease may still count
// on it; removing the hold-off must let a test notice.
func TestScenarioRestartHoldoff(t *testing.T) {
	// The schedule is restartHoldoffScenario's (mutants_test.go): n1 is
	// master; n3 is cut off from n1 and keeps asking for votes; n2, the
	// only one that could give them, restarts and stops hearing n1.
	t.Run("safe", func(t *testing.T) {
		if v, _ := restartHoldoffScenario(t, election.Unsafe{}); len(v) > 0 {
			t.Fatalf("violation: %v", v)
		}
	})
	t.Run("without hold-off", func(t *testing.T) {
		v, _ := restartHoldoffScenario(t, election.Unsafe{NoRestartHoldoff: true})
		if len(v) == 0 || !strings.Contains(v[0].What, "two masters") {
			t.Fatalf("a restarted node voting at once went unnoticed: %v", v)
		}
		t.Log(v[0])
	})
}

// handOverBound is how long a planned hand-over may take: the drivers may
// never confirm their demote, and then the drain lasts the whole demote
// timeout before an election's round trips.
const handOverBound = DefaultDemoteTimeout + 2*time.Second
