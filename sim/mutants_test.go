package sim

import (
	"bytes"
	"container/heap"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// mutant is one safety rule of the election core, removed by a knob of
// election.Unsafe, and how the simulator catches its removal.
type mutant struct {
	// knob is the election.Unsafe field that removes the rule.
	knob string
	rule string
	// want lists the violations the catcher may report, as substrings
	// of the first one: what the rule prevents, as each checker sees it.
	// Any other violation means the catcher found something else, and
	// proves nothing about this rule.
	want []string
	// catch looks for the violation with the rule removed (unsafe set) or
	// in place (unsafe zero). It returns what it found and the effort it
	// took ("3 seeds").
	catch func(t *testing.T, unsafe election.Unsafe) ([]Violation, string)
	// defensive, when set, is why no schedule can make the rule matter:
	// the rule is kept for defence in depth, and there is nothing to catch.
	defensive string
}

// mutants lists every rule. TestMutantsCaught checks that the list covers
// every field of election.Unsafe, so a new rule cannot go without a
// catcher. docs/safety-rules.md is this table for readers.
var mutants = []mutant{
	{knob: "VoteTwice", rule: "one vote per term", want: []string{"changed its vote in term"},
		catch: sweepCatcher(election.ProfileFast, 5, 20)},
	// Two winners of one term: the per-term checkers or the instant-wise
	// one, whichever sees it first.
	{knob: "VoteMinority", rule: "a vote majority", want: []string{"sent heartbeats for term", "already won", "two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 20)},
	{knob: "LeaseMinority", rule: "a lease majority", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 30)},
	{knob: "MasterOnWin", rule: "mastership only after a majority acknowledged", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 80)},
	{knob: "LeaseFromAck", rule: "the lease counts from the round's send time", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 20)},
	{knob: "NoStaleFilter", rule: "a stale heartbeat keeps no follower loyal", want: []string{"no master within"},
		catch: staleHeartbeatsScenario},
	{knob: "NoDrainWait", rule: "an unconfirmed drain waits out the drivers' lease", want: []string{"two masters at once"},
		catch: shortDrainScenario},
	{knob: "NoStickyTerm", rule: "a sticky follower keeps its term",
		defensive: "A real (not forced) vote request of a higher term needs a won pre-vote, that is a majority " +
			"of nodes not loyal to any master. A master's lease needs a majority that acknowledged a round " +
			"less than a lease ago, and every one of them is loyal for longer than that lease (the drift " +
			"margin). The two majorities share a node, so by the time a sticky follower sees such a request " +
			"no master holds a lease: raising its term deposes no one. The rule is Raft's (thesis §9.6) for " +
			"clusters without pre-vote; it is kept so that a fault in pre-vote cannot turn into disruption."},
	{knob: "NoLeaseMargin", rule: "the lease margin",
		defensive: "The lease already ends when the most loyal voter's stickiness could end at the drift bound; " +
			"the 1% margin absorbs what the simulator does not model: the truncation of the lease's float " +
			"arithmetic, and the gap between a clock read and the act it dates on a real machine. Simulated " +
			"clocks are exact and acts take no time, so no simulated schedule can make it matter; the drivers' " +
			"timer lateness, which the lease reserve covers, is modelled separately."},
	{knob: "NoTimeoutNowHoldoff", rule: "no campaign on TimeoutNow in the start-up hold-off",
		defensive: "A TimeoutNow is obeyed only in the term of its sender, the master that has just drained and " +
			"stepped down, and votes it asks for are forced: voters skip stickiness for them anyway. A node " +
			"that forgot which master it acknowledged can only have acknowledged that sender in that term " +
			"(acknowledging a later master would have raised its persisted term, and a TimeoutNow of an " +
			"older term is dropped). So its own vote for itself cannot complete a majority under someone " +
			"else's lease. The hold-off keeps the start-up rule whole (a node that forgot what it " +
			"acknowledged takes part in no election for ElectionMin), and a node in it says it is not a " +
			"hand-over target."},
	{knob: "NoMasterDefence", rule: "a master defends its lease", want: []string{"deposed"},
		catch: lostHeartbeatsScenario},
	{knob: "MasterWhileDraining", rule: "no mastership while draining", want: []string{"waited out the demote timeout"},
		catch: handOverScenario},
	{knob: "NoSelfLoyalty", rule: "a deposed master stays loyal to itself", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 300)},
	{knob: "NoRestartHoldoff", rule: "no vote in the start-up hold-off", want: []string{"two masters at once"},
		catch: restartHoldoffScenario},
	{knob: "NoStickiness", rule: "stickiness", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileFast, 5, 30)},
	{knob: "NoDriftMargin", rule: "the drift margin", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileDefault, 5, 50)},
	{knob: "NoStopBudget", rule: "a new master's drivers act only once the stop budget has passed", want: []string{"two masters at once"},
		catch: sweepCatcher(election.ProfileDefault, 5, 50)},
}

// TestMutantsCaught removes each safety rule of the core in turn: the
// simulator's checkers must report the violation the rule prevents, within
// a bounded number of seeds or in the scripted schedule that makes the rule
// matter. The same catcher with the rule in place must find nothing, and a
// scripted schedule must show that it reached the situation it is about.
func TestMutantsCaught(t *testing.T) {
	if raceEnabled {
		// The simulator is deterministic and single-threaded: the race
		// detector finds nothing here that the sweep under it does not,
		// and makes the catchers' sweeps ten times slower.
		t.Skip("skipped under the race detector: make test runs it without, after the race run (make sweep)")
	}
	covered := map[string]bool{}
	for _, m := range mutants {
		covered[m.knob] = true
	}
	for f := range reflect.TypeFor[election.Unsafe]().Fields() {
		if !covered[f.Name] {
			t.Errorf("election.Unsafe.%s has no entry in mutants: a rule nobody shows to matter", f.Name)
		}
	}
	for _, m := range mutants {
		t.Run(m.knob, func(t *testing.T) {
			t.Parallel()
			if m.defensive != "" {
				t.Logf("%s: kept for defence in depth: %s", m.rule, m.defensive)
				return
			}
			unsafe := knob(t, m.knob)
			v, effort := m.catch(t, unsafe)
			if len(v) == 0 {
				t.Fatalf("%s removed (Unsafe.%s): nothing caught in %s", m.rule, m.knob, effort)
			}
			if !slices.ContainsFunc(m.want, func(w string) bool { return strings.Contains(v[0].What, w) }) {
				t.Fatalf("%s removed (Unsafe.%s): caught %q in %s, want a violation containing one of %q", m.rule, m.knob, v[0], effort, m.want)
			}
			t.Logf("%s removed: caught in %s: %s", m.rule, effort, v[0])
		})
	}
}

// knob returns election.Unsafe with the named field set.
func knob(t *testing.T, name string) election.Unsafe {
	t.Helper()
	var u election.Unsafe
	f := reflect.ValueOf(&u).Elem().FieldByName(name)
	if !f.IsValid() {
		t.Fatalf("election.Unsafe has no field %s", name)
	}
	f.SetBool(true)
	return u
}

// sweepCatcher runs the seed sweep's runs (the default fault mix, one
// simulated minute, porcupine at the end) from seed 1 until one fails, up to
// max seeds. The first failing seed is deterministic: the bound only has to
// cover it with room for changes to the simulator.
func sweepCatcher(profile string, nodes, max int) func(*testing.T, election.Unsafe) ([]Violation, string) {
	return func(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
		for seed := uint64(1); seed <= uint64(max); seed++ {
			r, err := Run(RunConfig{Nodes: nodes, Seed: seed, Duration: time.Minute, Faults: true, Mix: DefaultMix(), Profile: profile, Unsafe: unsafe, Linearizability: true})
			if err != nil {
				t.Fatal(err)
			}
			effort := fmt.Sprintf("seeds 1-%d of at most %d (%s, %d nodes, 1 simulated minute each)", seed, max, profile, nodes)
			if v := r.Sim().Violations(); len(v) > 0 {
				return v, effort
			}
			if !r.OK() {
				return []Violation{{What: r.Violations[0]}}, effort
			}
		}
		return nil, fmt.Sprintf("%d seeds (%s, %d nodes)", max, profile, nodes)
	}
}

// TestMutantScenariosSafe runs each scripted schedule with every rule in
// place: it must break nothing, so what it catches without a rule is that
// rule's doing. (Each scenario also fails the test if it did not reach the
// situation it is about.)
func TestMutantScenariosSafe(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, election.Unsafe) ([]Violation, string)
	}{
		{"stale heartbeats", staleHeartbeatsScenario},
		{"short drain", shortDrainScenario},
		{"lost heartbeats", lostHeartbeatsScenario},
		{"restart hold-off", restartHoldoffScenario},
		{"hand-overs", handOverScenario},
	} {
		t.Run(c.name, func(t *testing.T) {
			if v, _ := c.run(t, election.Unsafe{}); len(v) > 0 {
				t.Fatalf("violation with every rule in place: %v", v)
			}
		})
	}
}

// staleHeartbeatsScenario: why a follower drops a heartbeat older than one
// it already has. The network may hold copies of a master's heartbeats for
// any time (duplication, reordering). After the master crashes, a follower
// that took such a copy as news of a live master would stay loyal, refuse
// its vote and never time out, for as long as the copies keep coming: no
// master for as long as the network likes. Here every follower gets one
// copy of an old heartbeat every 0.8 ElectionMin while it still follows the
// crashed master.
func staleHeartbeatsScenario(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
	t.Helper()
	timing := defaultTiming()
	s, err := New(Options{Nodes: 3, Seed: 21, Timing: timing, Unsafe: unsafe, Linearizability: true,
		Net: NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	m := runUntilMaster(t, s, 5*time.Second)
	old := s.ID(m)
	// Copies of the heartbeats as they leave, three seconds' worth.
	copies := map[int][]event{}
	seen := map[uint64]bool{}
	for end := s.Now() + 3*time.Second; s.Now() < end; s.RunFor(time.Millisecond) {
		for _, e := range s.q {
			if e.kind == evDeliver && e.msg.Type == election.MsgHeartbeat && e.msg.From == old && !seen[e.seq] {
				seen[e.seq] = true
				copies[e.node] = append(copies[e.node], *e)
			}
		}
	}
	s.Crash(m)
	s.check.expectMaster(0)
	stale := 0
	end := s.Now() + s.opts.LivenessBound + time.Second
	for s.Now() < end && !s.stopped {
		for i := range s.Size() {
			st := s.NodeState(i)
			if i == m || st.Role != election.Follower || st.Master != old || len(copies[i]) == 0 {
				continue
			}
			e := copies[i][0]
			copies[i] = copies[i][1:]
			s.push(&event{at: s.Now(), kind: evDeliver, node: i, msg: e.msg, sent: e.sent})
			stale++
		}
		s.RunFor(timing.ElectionMin * 8 / 10)
	}
	if stale == 0 {
		t.Fatalf("no follower of the crashed master was sent a stale heartbeat: the scenario proves nothing")
	}
	return s.Violations(), fmt.Sprintf("a scripted schedule (%d stale heartbeats delivered)", stale)
}

// shortDrainScenario: why a drain that times out unconfirmed waits for the
// lease the drivers were last given before sending TimeoutNow. A driver that
// never confirms its demote stops only when that lease runs out; a demote
// timeout shorter than the lease (demote_timeout may be set so) would
// otherwise let the target become master while it still acts. Hand-overs
// repeat until one ends unconfirmed.
func shortDrainScenario(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
	t.Helper()
	timing := defaultTiming()
	s, err := New(Options{Nodes: 3, Seed: 22, Timing: timing, Unsafe: unsafe, Linearizability: true,
		DemoteTimeout: timing.ElectionMin / 5,
		Net:           NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 100 && !s.stopped; k++ {
		m := runUntilMaster(t, s, 5*time.Second)
		s.RunFor(timing.ElectionMin)
		if err := s.Transfer(m, ""); err != nil {
			t.Fatalf("hand-over %d: %v", k, err)
		}
		n := s.nodes[m]
		for n.up && n.core.Draining() && !s.stopped {
			s.RunFor(time.Millisecond)
		}
		if n.holdUntil > s.local(n, s.Now()) {
			// The drain ended with the drivers still acting.
			s.RunFor(3 * time.Second)
			return s.Violations(), fmt.Sprintf("a scripted schedule (%d hand-overs, the last unconfirmed)", k)
		}
		s.RunFor(time.Second)
	}
	if len(s.Violations()) == 0 {
		t.Fatalf("100 hand-overs, none left unconfirmed by the drivers: the scenario proves nothing")
	}
	return s.Violations(), "a scripted schedule"
}

// lostHeartbeatsScenario: why a master refuses pre-votes and votes while
// it holds its lease. The network loses every heartbeat from the master to
// one node, and only those (loss is per message): that node asks for
// pre-votes; the other follower, loyal, refuses. If the master granted it,
// a majority (the master and the node) would let the campaign go on, and
// the master would step down for the higher term: a master that a majority
// hears, deposed by a node that cannot hear it. Safety holds (the deposed
// master stays loyal to itself), but the cluster loses its master for
// nothing, and again at every campaign.
func lostHeartbeatsScenario(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
	t.Helper()
	s, err := New(Options{Nodes: 3, Seed: 23, Timing: defaultTiming(), Unsafe: unsafe, Linearizability: true,
		Net: NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	m := runUntilMaster(t, s, 5*time.Second)
	term := s.NodeState(m).Term
	deaf := (m + 1) % s.Size()
	lost := 0
	for end := s.Now() + 10*time.Second; s.Now() < end && !s.stopped; s.RunFor(time.Millisecond) {
		for k := 0; k < len(s.q); k++ {
			if e := s.q[k]; e.kind == evDeliver && e.node == deaf && e.msg.Type == election.MsgHeartbeat && e.msg.From == s.ID(m) {
				heap.Remove(&s.q, k)
				lost++
				k = -1
			}
		}
	}
	if v := s.Violations(); len(v) > 0 {
		return v, "a scripted schedule"
	}
	effort := fmt.Sprintf("a scripted schedule (%d heartbeats lost)", lost)
	if st := s.NodeState(m); s.Master() != m || st.Term != term {
		return []Violation{{At: s.Now(), Node: s.ID(m), What: fmt.Sprintf("deposed: master of term %d, heard by a majority, is now %s of term %d after %s stopped hearing it",
			term, st.Role, st.Term, s.ID(deaf))}}, effort
	}
	if st := s.NodeState(deaf); st.Role == election.Follower && st.Master == s.ID(m) {
		t.Fatalf("%s still follows %s: losing its heartbeats did not make it campaign", s.ID(deaf), s.ID(m))
	}
	return nil, effort
}

// handOverScenario: why a draining master is master for no one but the
// cluster. It keeps the cluster's lease while its drivers stop, but tells
// them at once, as a demote, so that they confirm and the hand-over goes
// on within milliseconds. Still reported master to its drivers, they are
// never told to stop, never confirm, and every hand-over waits out the
// whole demote timeout. (Safety does not rest on this rule: TimeoutNow
// waits for the drivers' lease, which follows the renewed lease, when the
// drain ends unconfirmed. Without both rules, shortDrainScenario overlaps.)
func handOverScenario(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
	t.Helper()
	timing := defaultTiming()
	s, err := New(Options{Nodes: 3, Seed: 24, Timing: timing, Unsafe: unsafe, Linearizability: true,
		Net: NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	const handOvers = 5
	fast := 0
	var took []time.Duration
	for range handOvers {
		m := runUntilMaster(t, s, 5*time.Second)
		s.RunFor(timing.ElectionMin)
		start := s.Now()
		if err := s.Transfer(m, ""); err != nil {
			t.Fatalf("hand-over: %v", err)
		}
		for s.Core(m) != nil && s.Core(m).Draining() && !s.stopped {
			s.RunFor(time.Millisecond)
		}
		took = append(took, s.Now()-start)
		if s.Now()-start < s.opts.DemoteTimeout {
			fast++
		}
		s.RunFor(time.Second)
	}
	effort := fmt.Sprintf("a scripted schedule (%d hand-overs, drains %v)", handOvers, took)
	if v := s.Violations(); len(v) > 0 || fast > 0 {
		return v, effort
	}
	return []Violation{{At: s.Now(), What: fmt.Sprintf("every one of %d hand-overs waited out the demote timeout (%v): drains of %v", handOvers, s.opts.DemoteTimeout, took)}}, effort
}

// restartHoldoffScenario: why a node votes for no one for ElectionMin
// after it starts. n1 is master; n3 is cut off from n1 and keeps asking for
// votes; n2, the only one that could give them, restarts, forgetting that
// it acknowledged n1, and stops hearing n1. Voting at once, it elects n3
// under n1's lease.
func restartHoldoffScenario(t *testing.T, unsafe election.Unsafe) ([]Violation, string) {
	t.Helper()
	s, err := New(Options{Nodes: 3, Seed: 11, Timing: defaultTiming(), Unsafe: unsafe, Linearizability: true,
		Net: NetParams{Delay: 100 * time.Microsecond}})
	if err != nil {
		t.Fatal(err)
	}
	for s.Master() != 0 && s.Now() < 5*time.Second {
		s.RunFor(time.Millisecond)
	}
	if s.Master() != 0 {
		t.Fatalf("expected n1 to win first, got %d", s.Master())
	}
	s.RunFor(time.Second)
	s.CutOneWay(0, 2)
	s.CutOneWay(2, 0)
	s.RunFor(2 * time.Second)
	s.Crash(1)
	s.CutOneWay(0, 1)
	s.Restart(1)
	s.RunFor(2 * time.Second)
	return s.Violations(), "a scripted schedule"
}

// runUntilMaster runs s until some node holds a lease.
func runUntilMaster(t *testing.T, s *Sim, within time.Duration) int {
	t.Helper()
	for end := s.Now() + within; s.Now() < end && !s.stopped; s.RunFor(time.Millisecond) {
		if m := s.Master(); m >= 0 {
			return m
		}
	}
	var b bytes.Buffer
	s.WriteTimeline(&b)
	t.Fatalf("no master within %v (violations %v)\n%s", within, s.Violations(), b.String())
	return -1
}
