package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of the benchmark report")

// reportResults fills every branch of the report: a quick experimental
// run with errors, failed and overlapping trials, an unstable bare idle
// cluster with every kind of link, a fast profile and unknown CPU
// pressure. Its timing is literal, so that a change of the profiles does
// not move the golden files.
func reportResults() *Results {
	ms := time.Millisecond
	def := Timing{HeartbeatMS: 100, ElectionMinMS: 500, ElectionMaxMS: 1000, StepMS: 10, LeaseMS: 450, StopBudgetMS: 200}
	fast := Timing{HeartbeatMS: 20, ElectionMinMS: 100, ElectionMaxMS: 200, StepMS: 2, LeaseMS: 90, StopBudgetMS: 50}
	r := sampleResults()
	r.Quick = true
	r.Machine.LoadStart, r.Machine.LoadEnd = [3]float64{0.5, 0.25, 0.125}, [3]float64{1.5, 1.25, 1}
	r.Machine.BusyPct, r.Machine.StealPct, r.Machine.WallS = 42, 0.5, 93
	r.Experiment = []string{"env GOGC=50", "timing heartbeat=50ms"}
	r.Errors = []string{"idle fast: cluster not stable after 1m0s: no master"}
	r.Failover[0].Timing = def
	r.Failover = append(r.Failover, FailoverResult{
		Nodes: 5, Profile: "fast", Timing: fast, Trials: 4, Failures: 1, Overlaps: 1,
		FailureNotes: []string{"no driver promoted"},
		Failover:     summarize([]time.Duration{120 * ms, 140 * ms, 250 * ms}),
		Daemon:       summarize([]time.Duration{110 * ms, 130 * ms}),
		LeaseGap:     summarize([]time.Duration{-2 * ms, 10 * ms, 30 * ms}),
		Samples:      []Sample{{MS: 120}, {MS: 140, PressurePct: ptr(5)}},
	})
	r.Transfer[0].Timing = def
	r.Transfer = append(r.Transfer, TransferResult{
		Nodes: 5, Profile: "fast", Timing: fast, Trials: 3, Failures: 1, Overlaps: 1,
		Gap: summarize([]time.Duration{-1 * ms, 60 * ms}), Total: summarize([]time.Duration{3 * ms, 70 * ms}),
	})
	r.Idle[0].Timing = def
	r.Idle[0].Daemons = append(r.Idle[0].Daemons, DaemonIdle{Node: "n2", Role: "follower", CPUPct: 0.4, RSSMB: 16, AnonMB: 9, FileMB: 7, PSSMB: 11, PeakRSSMB: 18, Threads: 8,
		CtxSwitchesPerS: 41.5, ReadBytesPerS: 1200, WriteBytesPerS: 900, Goroutines: 21, GCsPerS: 0.05})
	r.Idle = append(r.Idle, IdleResult{
		Nodes: 5, Profile: "default", Timing: def, Drivers: false, WindowS: 15, Stable: false,
		Daemons: []DaemonIdle{{Node: "n1", Role: "follower", CPUPct: 0.2, RSSMB: 15}},
		Links: []LinkIdle{
			{From: "n1", To: "n2", Kind: "follower_to_master", BytesPerS: 300, SegmentsPerS: 10, MessagesPerS: 10},
			{From: "n2", To: "n1", Kind: "master_to_follower", BytesPerS: 900, SegmentsPerS: 30},
			{From: "n2", To: "n3", Kind: "master_to_follower", BytesPerS: 1100, SegmentsPerS: 32, MessagesPerS: 31},
			{From: "n3", To: "n1", Kind: "follower_to_follower", BytesPerS: 0},
		},
		MaxCPUPct: 0.2, MaxRSSMB: 15,
	})
	r.DriverIdle[0].Timing = def
	r.DriverIdle = append(r.DriverIdle, DriverIdleResult{Nodes: 3, Profile: "fast", Timing: fast, WindowS: 15,
		Drivers: []DriverIdle{{Node: "n2", CPUPct: 0.01, CtxSwitchesPS: 2, RSSMB: 11.5}}})
	r.Sim.Violations, r.Sim.Seeds, r.Sim.WallS, r.Sim.CPUS = 1, []uint64{1, 2}, []float64{0.5, 0.7}, []float64{0.6, 0.8}
	r.Micro = append(r.Micro, MicroResult{Package: "github.com/clustd/clustd/sim", Name: "BenchmarkRun", Runs: 1, NsPerOp: 1234.5, BytesPerOp: 512, AllocsPerOp: 3})
	r.Targets = EvaluateTargets(r)
	return r
}

// TestReportGolden pins the table, the targets and the JSON, word for
// word: the figures in BENCHMARKS.md are copied from them. Run with -update after a
// deliberate change and read the diff.
func TestReportGolden(t *testing.T) {
	var table bytes.Buffer
	r := reportResults()
	WriteTable(&table, r)
	golden(t, "report.txt", table.Bytes())

	targets, err := json.MarshalIndent(r.Targets, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "targets.json", append(targets, '\n'))

	var results bytes.Buffer
	if err := r.writeJSON(&results); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.json", results.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bench -run %s -update to write it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n--- got ---\n%s\n--- want ---\n%s", name, path, got, want)
	}
}
