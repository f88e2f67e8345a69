package fault

import (
	"slices"
	"testing"
)

// chaosNamesBefore are the --faults values chaos accepted before the
// vocabulary was shared; each must still be accepted.
var chaosNamesBefore = []string{"kill", "pause", "stop", "isolate", "split", "partial", "oneway", "latency", "transfer", "maintenance", "freeze"}

func TestParseChaosAcceptsOldNames(t *testing.T) {
	for _, name := range chaosNamesBefore {
		ks, err := ParseChaos(name)
		if err != nil || len(ks) != 1 {
			t.Fatalf("%q: %v %v", name, ks, err)
		}
	}
	ks, err := ParseChaos(" kill, oneway ,crash")
	if err != nil || !slices.Equal(ks, []Kind{Crash, OneWay}) {
		t.Fatalf("aliases: %v %v", ks, err)
	}
	ks, err = ParseChaos("partition")
	if err != nil || !slices.Equal(ks, []Kind{Isolate, Split}) {
		t.Fatalf("partition: %v %v", ks, err)
	}
}

func TestParseChaosRejects(t *testing.T) {
	for _, list := range []string{"meteor", "partial,meteor", " , ", "restart", "drift"} {
		if ks, err := ParseChaos(list); err == nil {
			t.Fatalf("%q was accepted as %v", list, ks)
		}
	}
}

func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Table {
		for _, n := range append([]string{string(s.Kind)}, s.Aliases...) {
			if seen[n] {
				t.Fatalf("name %q is in the table twice", n)
			}
			seen[n] = true
		}
		if s.ChaosDefault && s.Chaos == 0 {
			t.Fatalf("%s is a chaos default with no chaos weight", s.Kind)
		}
		for _, k := range s.Means {
			if Weight(k) == 0 {
				t.Fatalf("%s means %s, which chaos does not inject", s.Kind, k)
			}
		}
	}
	if got, want := ChaosKinds(), []Kind{Crash, Pause, Stop, Isolate, Split, Partial, OneWay, Latency, Transfer, Maintenance, Freeze}; !slices.Equal(got, want) {
		t.Fatalf("chaos kinds %v, want %v (the drawing order fixes what a seed does)", got, want)
	}
	// Whole-node freezes are in the default mix: the drivers' lease
	// contract (docs/drivers.md) lets chaos check them like any fault.
	if got := ChaosDefaults(); !slices.Equal(got, ChaosKinds()) {
		t.Fatalf("chaos's default mix %v, want every kind chaos injects %v", got, ChaosKinds())
	}
}
