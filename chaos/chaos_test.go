package chaos

import (
	"context"
	"github.com/clustd/clustd/internal/fault"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests here run real processes for minutes and need root for the
// namespaces (they fall back to loopback without), so they run only when
// CHAOS=1; `make chaos` is the usual front door. CHAOS_DURATION and
// CHAOS_SEED adjust them.

func chaosEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("CHAOS") != "1" {
		t.Skip("set CHAOS=1 to run real clustd processes under faults (see make chaos)")
	}
	if testing.Short() {
		t.Skip("not in -short mode")
	}
}

func envDuration(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CHAOS_DURATION=%q: %v", s, err)
		}
		return d
	}
	return def
}

func envSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		return v
	}
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func runAndReport(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Log = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	rep.Summary(&sb)
	t.Log("\n" + sb.String())
	return rep
}

// TestChaos runs 3 and 5 nodes under the full fault mix; the contract
// must hold.
func TestChaos(t *testing.T) {
	chaosEnabled(t)
	for _, nodes := range []int{3, 5} {
		t.Run(strconv.Itoa(nodes), func(t *testing.T) {
			rep := runAndReport(t, Config{Nodes: nodes, Duration: envDuration(t, time.Minute), Seed: envSeed(t)})
			if rep.Failed() {
				t.Fatalf("%d violations; everything is in %s", len(rep.Violations), rep.Dir)
			}
			if rep.Promotions < 2 || rep.Heals == 0 {
				t.Fatalf("the run proved little: %d promotions, %d heals", rep.Promotions, rep.Heals)
			}
		})
	}
}

// TestChaosLoopback runs the fallback for machines without namespaces.
func TestChaosLoopback(t *testing.T) {
	chaosEnabled(t)
	rep := runAndReport(t, Config{Nodes: 3, Duration: envDuration(t, 30*time.Second), Seed: envSeed(t), Loopback: true})
	if rep.Failed() {
		t.Fatalf("%d violations; everything is in %s", len(rep.Violations), rep.Dir)
	}
	if !strings.HasPrefix(rep.Network, "loopback") {
		t.Fatalf("network %q", rep.Network)
	}
}

// TestChaosCatchesUnsafeBuild proves that the suite can fail: clustd built
// without stickiness must be caught with two masters at once, by the
// interval check and by porcupine, within a few bounded runs.
func TestChaosCatchesUnsafeBuild(t *testing.T) {
	chaosEnabled(t)
	seed := envSeed(t)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) >> 1
	}
	for try := range 4 {
		rep := runAndReport(t, Config{Nodes: 3, Duration: 30 * time.Second, Seed: seed + uint64(try),
			Unsafe: true, Kinds: []fault.Kind{fault.Partial}, StopOnOverlap: true})
		if len(rep.Overlaps) == 0 {
			continue
		}
		if !rep.Failed() || !strings.HasPrefix(rep.Linearizable, "NOT") {
			t.Fatalf("overlaps found but the run did not fail on porcupine too: %s", rep.Linearizable)
		}
		if _, err := os.Stat(filepath.Join(rep.Dir, "history.html")); err != nil {
			t.Fatalf("no visualisation kept: %v", err)
		}
		for _, n := range []string{"a", "b", "c"} {
			if _, err := os.Stat(filepath.Join(rep.Dir, n, "clustd.log")); err != nil {
				t.Fatalf("node %s's log not kept: %v", n, err)
			}
		}
		t.Logf("caught on try %d: %d overlaps; evidence in %s", try+1, len(rep.Overlaps), rep.Dir)
		if os.Getenv("CHAOS_KEEP") == "" {
			os.RemoveAll(rep.Dir)
		}
		return
	}
	t.Fatal("four runs of a build without stickiness reported no overlap")
}
