package chaos

import (
	"github.com/clustd/clustd/internal/fault"
	"reflect"
	"slices"
	"testing"

	"github.com/clustd/clustd/election"
)

func draw(seed uint64, nodes int, kinds []fault.Kind, n int) (weather, []plannedFault) {
	s := newSchedule(seed, nodes, election.MustProfile(election.ProfileDefault), kinds)
	out := make([]plannedFault, n)
	for i := range out {
		out[i] = s.Next()
	}
	return s.Weather, out
}

// TestScheduleIsDeterministic: a printed seed must replay the same faults.
func TestScheduleIsDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 2, 12345, 1 << 62} {
		w1, a := draw(seed, 5, nil, 200)
		w2, b := draw(seed, 5, nil, 200)
		if w1 != w2 || !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d drew two different schedules", seed)
		}
	}
	_, a := draw(1, 5, nil, 50)
	_, b := draw(2, 5, nil, 50)
	if reflect.DeepEqual(a, b) {
		t.Fatal("seeds 1 and 2 drew the same schedule")
	}
}

func TestScheduleDrawsEveryKindAndOnlyThoseAsked(t *testing.T) {
	_, all := draw(7, 5, nil, 2000)
	seen := map[fault.Kind]bool{}
	for _, f := range all {
		seen[f.Kind] = true
	}
	for _, k := range fault.ChaosDefaults() {
		if !seen[k] {
			t.Errorf("2000 faults without a %s", k)
		}
	}
	_, every := draw(7, 5, fault.ChaosKinds(), 2000)
	for _, f := range every {
		seen[f.Kind] = true
	}
	for _, k := range fault.ChaosKinds() {
		if !seen[k] {
			t.Errorf("2000 faults of every kind without a %s", k)
		}
	}
	_, some := draw(7, 3, []fault.Kind{fault.Partial, fault.Crash}, 500)
	for _, f := range some {
		if f.Kind != fault.Partial && f.Kind != fault.Crash {
			t.Fatalf("drew %s from {partial, kill}", f.Kind)
		}
	}
}

// TestFaultTargets checks how faults resolve their targets: a split never
// leaves the majority side short, a partial partition keeps the master on
// the connected side with a majority, and nothing names the same node on
// both sides.
func TestFaultTargets(t *testing.T) {
	timing := election.MustProfile(election.ProfileDefault)
	for _, nodes := range []int{3, 4, 5, 7, 9} {
		_, faults := draw(uint64(nodes), nodes, nil, 3000)
		for _, f := range faults {
			for master := -1; master < nodes; master++ {
				if len(f.Pick) != nodes {
					t.Fatalf("pick %v for %d nodes", f.Pick, nodes)
				}
				tgt := f.Target(master)
				if f.OnMaster && master >= 0 && tgt != master {
					t.Fatalf("%s aimed at the master hits %d, not %d", f.Kind, tgt, master)
				}
				switch f.Kind {
				case fault.Split, fault.Partial:
					side, rest := f.Sides(master)
					if len(side) != f.Size || len(side)+len(rest) != nodes || 2*len(side) >= nodes {
						t.Fatalf("%s of %d nodes: %v | %v", f.Kind, nodes, side, rest)
					}
					all := append(slices.Clone(side), rest...)
					slices.Sort(all)
					if !isPerm(all, nodes) {
						t.Fatalf("%s: sides %v | %v are not a partition", f.Kind, side, rest)
					}
					if f.Kind == fault.Partial && (rest[0] != tgt || slices.Contains(side, tgt)) {
						t.Fatalf("partial: target %d not first on the connected side %v", tgt, rest)
					}
					if f.Kind == fault.Split && master >= 0 && slices.Contains(side, master) != f.OnMaster {
						t.Fatalf("split aimed at master=%v puts master %d in %v", f.OnMaster, master, side)
					}
				case fault.OneWay:
					from, to := f.OneWay(master)
					if from == to || (from != tgt && to != tgt) {
						t.Fatalf("one-way %d→%d for target %d", from, to, tgt)
					}
					if f.LossPct <= 0 || f.LossPct > 100 {
						t.Fatalf("loss %d%%", f.LossPct)
					}
				case fault.Transfer:
					if f.Size > 0 && f.TransferTo(master) == tgt {
						t.Fatalf("transfer to itself")
					}
				case fault.Pause, fault.Freeze:
					if f.For <= timing.LeaseDuration() {
						t.Fatalf("pause of %v is not longer than the lease %v", f.For, timing.LeaseDuration())
					}
				}
				if f.Describe([]string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}[:nodes], master) == "" {
					t.Fatal("empty description")
				}
			}
		}
	}
}

// isPerm reports whether the sorted s is 0, 1, …, n-1.
func isPerm(s []int, n int) bool {
	if len(s) != n {
		return false
	}
	for i, v := range s {
		if v != i {
			return false
		}
	}
	return true
}

func TestParseKinds(t *testing.T) {
	ks, err := fault.ParseChaos(" partial, kill ,")
	if err != nil || !slices.Equal(ks, []fault.Kind{fault.Partial, fault.Crash}) {
		t.Fatalf("%v %v", ks, err)
	}
	if _, err := fault.ParseChaos("partial,meteor"); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
	if _, err := fault.ParseChaos(" , "); err == nil {
		t.Fatal("an empty list was accepted")
	}
}

func TestReplayCommand(t *testing.T) {
	got := replayCommand(Config{Nodes: 5, Duration: 90e9, Seed: 42, Profile: "fast", Kinds: []fault.Kind{fault.Partial, fault.Crash}, Unsafe: true})
	want := "go run ./chaos/cmd/chaos --nodes 5 --duration 1m30s --seed 42 --profile fast --faults partial,crash --unsafe"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestSwarmNamesWeatherAndKinds(t *testing.T) {
	s := newSchedule(9, 3, election.MustProfile(election.ProfileDefault), []fault.Kind{fault.Partial, fault.Crash})
	got := s.Swarm()
	want := "weather " + s.Weather.Name + " {" + s.Weather.Link.String() + "}, faults crash×4 partial×2"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// The drivers' lateness is the seed's, never beyond the reserve the
// drivers' lease keeps for it, and the bound itself is drawn often.
func TestDriverLateness(t *testing.T) {
	tm, err := election.ProfileTiming(election.ProfileFast)
	if err != nil {
		t.Fatal(err)
	}
	atBound := 0
	for seed := uint64(1); seed <= 300; seed++ {
		l := driverLateness(seed, tm)
		if l != driverLateness(seed, tm) {
			t.Fatalf("seed %d drew two latenesses", seed)
		}
		if l < 0 || l > tm.DriverReserve() {
			t.Fatalf("seed %d: lateness %v beyond the reserve %v", seed, l, tm.DriverReserve())
		}
		if l == tm.DriverReserve() {
			atBound++
		}
	}
	if atBound < 60 {
		t.Errorf("%d of 300 seeds at the bound, want about a third", atBound)
	}
}
