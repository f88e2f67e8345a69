package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// sweepSeeds is how many seeds a sweep runs: SIM_SEEDS, or a small sample
// under the race detector.
func sweepSeeds(t *testing.T, def int) int {
	if v := os.Getenv("SIM_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SIM_SEEDS=%q: want a positive number", v)
		}
		return n
	}
	if raceEnabled || testing.Short() {
		return def / 10
	}
	return def
}

// sweep runs seeds 1..n in parallel and returns the failing results.
func sweep(t *testing.T, n int, rc func(seed uint64) RunConfig) (failed []*Result, all []*Result) {
	return sweepUntil(t, n, false, rc)
}

// sweepUntil is sweep that, with untilFailure, stops handing out seeds once
// one has failed.
func sweepUntil(t *testing.T, n int, untilFailure bool, rc func(seed uint64) RunConfig) (failed []*Result, all []*Result) {
	t.Helper()
	results := make([]*Result, n)
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || untilFailure && failures.Load() > 0 {
					return
				}
				r, err := Run(rc(uint64(i + 1)))
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				results[i] = r
				if !r.OK() {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, r := range results {
		if r == nil {
			continue
		}
		all = append(all, r)
		if !r.OK() {
			failed = append(failed, r)
		}
	}
	return failed, all
}

func report(t *testing.T, r *Result) {
	t.Helper()
	var b bytes.Buffer
	r.WriteSummary(&b)
	t.Errorf("seed %d failed:\n%s", r.Seed, b.String())
}

// TestSeedSweep is the main safety net: many seeds, 5 nodes, the default
// fault mix, every invariant after every event, porcupine on every history.
// Both profiles: the fast one packs five times the elections into a
// simulated minute, and it found a two-masters bug the default sweep had
// not (regression seed 82).
func TestSeedSweep(t *testing.T) {
	n := sweepSeeds(t, 500)
	durations := map[string]time.Duration{election.ProfileDefault: 3 * time.Minute, election.ProfileFast: time.Minute}
	if os.Getenv("SIM_SOAK") != "" {
		durations = map[string]time.Duration{election.ProfileDefault: 10 * time.Minute, election.ProfileFast: 10 * time.Minute}
	}
	for _, p := range []string{election.ProfileDefault, election.ProfileFast} {
		d := durations[p]
		t.Run(p, func(t *testing.T) {
			timing := election.MustProfile(p)
			failed, all := sweep(t, n, func(seed uint64) RunConfig {
				html := filepath.Join(t.TempDir(), fmt.Sprintf("seed-%d.html", seed))
				return RunConfig{Nodes: 5, Seed: seed, Duration: d, Faults: true, Mix: DefaultMix(), Profile: p, Linearizability: true, HTMLPath: html}
			})
			for i, r := range failed {
				if i == 3 {
					t.Errorf("… and %d more failing seeds", len(failed)-3)
					break
				}
				report(t, r)
			}
			var fo, clean []time.Duration
			elections := 0
			for _, r := range all {
				fo = append(fo, r.sim.stats.Failovers...)
				clean = append(clean, r.sim.stats.CleanFailovers...)
				elections += r.Elections
			}
			f, c := Summarize(fo), Summarize(clean)
			t.Logf("%d seeds × %v (election timeout %v): %d elections; failover p50 %v p99 %v max %v (n=%d); master crash in calm weather p50 %v p99 %v max %v (n=%d)",
				n, d, timing.ElectionMin, elections, f.P50, f.P99, f.Max, f.N, c.P50, c.P99, c.Max, c.N)
		})
	}
}

// TestSweepSmallClusters covers the sizes a majority is tightest in.
func TestSweepSmallClusters(t *testing.T) {
	n := sweepSeeds(t, 100)
	for _, nodes := range []int{1, 2, 3, 4} {
		t.Run(strconv.Itoa(nodes), func(t *testing.T) {
			n := n
			if nodes == 1 {
				n = max(1, n/5) // little can go wrong alone
			}
			failed, _ := sweep(t, n, func(seed uint64) RunConfig {
				return RunConfig{Nodes: nodes, Seed: seed, Duration: 60 * time.Second, Faults: true, Mix: DefaultMix(), Profile: election.ProfileFast, Linearizability: true}
			})
			for _, r := range failed {
				report(t, r)
			}
		})
	}
}

// TestCheckersCanFail removes one safety rule at a time: the sweep must
// notice, and with the violation the rule prevents: some other failure
// would prove nothing about this one. A checker that never fails proves
// nothing. (TestMutantsCaught does the same for every rule.)
func TestCheckersCanFail(t *testing.T) {
	cases := []struct {
		name   string
		unsafe election.Unsafe
		nodes  int
		// overrun: drivers that take longer than the stop budget and
		// ignore their stop deadline.
		overrun bool
		want    string
	}{
		{"no stickiness", election.Unsafe{NoStickiness: true}, 5, false, "two masters at once"},
		{"no drift margin", election.Unsafe{NoDriftMargin: true}, 5, false, "two masters at once"},
		{"no stickiness 3", election.Unsafe{NoStickiness: true}, 3, false, "two masters at once"},
		{"no stop budget", election.Unsafe{NoStopBudget: true}, 5, false, "two masters at once"},
		{"drivers overrun the stop budget", election.Unsafe{}, 5, true, "two masters at once"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := 400
			failed, all := sweepUntil(t, n, true, func(seed uint64) RunConfig {
				return RunConfig{Nodes: c.nodes, Seed: seed, Duration: 60 * time.Second, Faults: true, Mix: DefaultMix(), Unsafe: c.unsafe, DriversOverrun: c.overrun}
			})
			if len(failed) == 0 {
				t.Fatalf("%d seeds found no violation with %s", n, c.name)
			}
			if v := failed[0].Violations[0]; !strings.Contains(v, c.want) {
				t.Fatalf("seed %d with %s: %s; want a violation containing %q", failed[0].Seed, c.name, v, c.want)
			}
			t.Logf("found after %d seeds: seed %d: %s", len(all), failed[0].Seed, failed[0].Violations[0])
		})
	}
}

// TestDeterministic: the same seed gives byte-identical output.
func TestDeterministic(t *testing.T) {
	run := func() []byte {
		var b bytes.Buffer
		r, err := Run(RunConfig{Nodes: 5, Seed: 42, Duration: 30 * time.Second, Faults: true, Mix: DefaultMix(), Verbose: &b, Linearizability: true})
		if err != nil {
			t.Fatal(err)
		}
		r.WriteSummary(&b)
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := run(), run()
	if len(a) < 10000 {
		t.Fatalf("timeline suspiciously short: %d bytes", len(a))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of seed 42 differ")
	}
	var c bytes.Buffer
	r, err := Run(RunConfig{Nodes: 5, Seed: 43, Duration: 30 * time.Second, Faults: true, Mix: DefaultMix(), Verbose: &c})
	if err != nil {
		t.Fatal(err)
	}
	r.WriteSummary(&c)
	if bytes.Equal(a, c.Bytes()) {
		t.Fatal("seeds 42 and 43 gave the same run")
	}
}

// BenchmarkSimHour measures simulator speed: one hour of 5-node cluster time
// with the default fault mix per iteration.
func BenchmarkSimHour(b *testing.B) {
	seed := uint64(0)
	for b.Loop() {
		seed++
		r, err := Run(RunConfig{Nodes: 5, Seed: seed, Duration: time.Hour, Faults: true, Mix: DefaultMix()})
		if err != nil {
			b.Fatal(err)
		}
		if !r.OK() {
			b.Fatalf("seed %d: %v", seed, r.Violations)
		}
	}
}
