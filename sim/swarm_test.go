package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/fault"
)

// The swarm a seed drew is printed beside the seed and holds only the
// kinds its mix switches on.
func TestSwarmPrintedBesideSeed(t *testing.T) {
	mix := DefaultMix()
	mix.Crash, mix.Restart = false, false
	r, err := Run(RunConfig{Nodes: 3, Seed: 5, Duration: 10 * time.Second, Faults: true, Mix: mix})
	if err != nil {
		t.Fatal(err)
	}
	if r.Swarm == nil || len(r.Swarm.Kinds) == 0 {
		t.Fatalf("no swarm recorded: %+v", r.Swarm)
	}
	if slices.Contains(r.Swarm.Kinds, fault.Crash) || slices.Contains(r.Swarm.Kinds, fault.Restart) {
		t.Fatalf("swarm %v holds a kind the mix switched off", r.Swarm)
	}
	if !slices.Contains(r.Swarm.Kinds, fault.Pause) {
		t.Fatalf("swarm %v lacks pause", r.Swarm)
	}
	var b strings.Builder
	r.WriteSummary(&b)
	if !strings.Contains(b.String(), "seed:           5\nswarm:          "+r.Swarm.String()+"\n") {
		t.Fatalf("summary does not print the swarm beside the seed:\n%s", b.String())
	}
	calm, err := Run(RunConfig{Nodes: 3, Seed: 5, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if calm.Swarm != nil {
		t.Fatalf("a run without faults drew a swarm: %v", calm.Swarm)
	}
}
