package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// sampleResults is a Results with every section filled in.
func sampleResults() *Results {
	ms := time.Millisecond
	timing := timingOf(election.MustProfile("default"))
	r := &Results{
		Machine: Machine{Cores: 2, CPUModel: "Example CPU", Kernel: "6.1", GoVersion: "go1.26.0", Date: "2026-01-02T03:04:05Z", Commit: "abc", PressurePct: ptr(3)},
		Failover: []FailoverResult{{
			Nodes: 3, Profile: "default", Timing: timing, Trials: 3, FailureNotes: []string{},
			Failover: summarize([]time.Duration{500 * ms, 520 * ms, 610 * ms}),
			Daemon:   summarize([]time.Duration{499 * ms, 519 * ms, 609 * ms}),
			LeaseGap: summarize([]time.Duration{40 * ms, 50 * ms, 60 * ms}),
			Samples:  []Sample{{MS: 500, DaemonMS: 499, PressurePct: ptr(20)}, {MS: 520, DaemonMS: 519, PressurePct: ptr(25)}, {MS: 610, DaemonMS: 609, PressurePct: ptr(90)}},
		}},
		Transfer: []TransferResult{{
			Nodes: 3, Profile: "default", Timing: timing, Trials: 2, FailureNotes: []string{},
			Gap:     summarize([]time.Duration{5 * ms, 9 * ms}),
			Total:   summarize([]time.Duration{6 * ms, 10 * ms}),
			Samples: []Sample{{MS: 5, PressurePct: ptr(10)}, {MS: 9, PressurePct: ptr(12)}},
		}},
		Idle: []IdleResult{{
			Nodes: 5, Profile: "default", Timing: timing, Drivers: true, WindowS: 60, Stable: true,
			Daemons:       []DaemonIdle{{Node: "n1", Role: "master", CPUPct: 1.2, RSSMB: 17}},
			Links:         []LinkIdle{{From: "n1", To: "n2", Kind: "master_to_follower", BytesPerS: 1100, SegmentsPerS: 31, MessagesPerS: 31}},
			MaxCPUPct:     1.2,
			MasterCPUPct:  1.2,
			MaxRSSMB:      17,
			LinkBytesPerS: map[string]float64{"master_to_follower": 1100},
		}},
		DriverIdle: []DriverIdleResult{{
			Nodes: 3, Profile: "default", Timing: timing, WindowS: 60, Stable: true, MasterCPUPct: 0.05, MaxFollowerCPUPct: 0.03,
			Drivers: []DriverIdle{{Node: "n1", Master: true, CPUPct: 0.05, CtxSwitchesPS: 9, RSSMB: 12}},
		}},
		Sim:        &SimResult{Nodes: 5, Profile: "default", Faults: true, SimulatedS: 3600, Seeds: []uint64{1}, WallS: []float64{0.5}, CPUS: []float64{0.6}, MedianWallS: 0.5, SimPerWallS: 7200, SimPerCPUS: 6000},
		Micro:      []MicroResult{{Package: "github.com/clustd/clustd/election", Name: "BenchmarkStepHeartbeat", Runs: 5, NsPerOp: 290, AllocsPerOp: 0}},
		Errors:     []string{},
		Experiment: []string{},
	}
	r.Targets = EvaluateTargets(r)
	return r
}

// TestJSONShape pins the keys of bench/results.json: scripts and the
// figures in BENCHMARKS.md are read from them.
func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResults().writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, buf.String())
	}
	wantKeys(t, "top level", doc, "machine", "quick", "failover", "transfer", "idle", "driver_idle", "sim", "micro", "targets", "errors", "experiment")
	wantKeys(t, "machine", obj(t, doc["machine"]), "cores", "cpu_model", "kernel", "go_version", "date",
		"load_start", "load_end", "busy_pct", "steal_pct", "cpu_pressure_pct", "commit", "wall_s")

	summary := []string{"n", "min_ms", "p50_ms", "p99_ms", "max_ms", "mean_ms"}
	timing := []string{"heartbeat_ms", "election_min_ms", "election_max_ms", "step_ms", "lease_ms", "stop_budget_ms"}
	f := obj(t, first(t, doc["failover"]))
	wantKeys(t, "failover", f, "nodes", "profile", "timing", "trials", "failures", "failure_notes",
		"failover_ms", "daemon_ms", "lease_gap_ms", "overlaps", "samples")
	wantKeys(t, "failover.samples[0]", obj(t, first(t, f["samples"])), "ms", "daemon_ms", "cpu_pressure_pct")
	wantKeys(t, "failover.failover_ms", obj(t, f["failover_ms"]), summary...)
	wantKeys(t, "failover.timing", obj(t, f["timing"]), timing...)
	if got := obj(t, f["failover_ms"])["p99_ms"]; got != 610.0 {
		t.Errorf("failover p99_ms = %v, want 610", got)
	}

	tr := obj(t, first(t, doc["transfer"]))
	wantKeys(t, "transfer", tr, "nodes", "profile", "timing", "trials", "failures", "failure_notes",
		"gap_ms", "total_ms", "overlaps", "samples")
	wantKeys(t, "transfer.samples[0]", obj(t, first(t, tr["samples"])), "ms", "cpu_pressure_pct")
	wantKeys(t, "transfer.gap_ms", obj(t, tr["gap_ms"]), summary...)

	in := obj(t, first(t, doc["idle"]))
	wantKeys(t, "idle", in, "nodes", "profile", "timing", "drivers", "window_s", "stable", "daemons", "links",
		"max_cpu_pct", "master_cpu_pct", "max_follower_cpu_pct", "max_rss_mb", "link_bytes_per_s")
	wantKeys(t, "idle.daemons[0]", obj(t, first(t, in["daemons"])), "node", "role", "cpu_pct", "rss_mb", "peak_rss_mb", "anon_mb", "file_mb", "pss_mb",
		"threads", "ctx_switches_per_s", "rchar_per_s", "wchar_per_s", "gcs_per_s", "goroutines")
	wantKeys(t, "idle.links[0]", obj(t, first(t, in["links"])), "from", "to", "kind", "bytes_per_s", "segments_per_s", "messages_per_s")

	di := obj(t, first(t, doc["driver_idle"]))
	wantKeys(t, "driver_idle", di, "nodes", "profile", "timing", "window_s", "stable", "master_cpu_pct", "max_follower_cpu_pct",
		"master_ctx_switches_per_s", "max_follower_ctx_switches_per_s", "drivers")
	wantKeys(t, "driver_idle.drivers[0]", obj(t, first(t, di["drivers"])), "node", "master", "cpu_pct", "ctx_switches_per_s", "rss_mb")

	wantKeys(t, "sim", obj(t, doc["sim"]), "nodes", "profile", "faults", "simulated_s", "seeds", "wall_s", "cpu_s",
		"median_wall_s", "sim_s_per_wall_s", "sim_s_per_cpu_s", "violations")
	wantKeys(t, "micro[0]", obj(t, first(t, doc["micro"])), "package", "name", "runs", "ns_per_op", "bytes_per_op", "allocs_per_op")
	wantKeys(t, "targets[0]", obj(t, first(t, doc["targets"])), "what", "target", "measured", "met")
}

func wantKeys(t *testing.T, where string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: key %q missing", where, k)
		}
	}
	for k := range m {
		if !slices.Contains(keys, k) && !(where == "targets[0]" && strings.HasPrefix(k, "aim")) {
			t.Errorf("%s: unexpected key %q (add it to the test and to BENCHMARKS.md)", where, k)
		}
	}
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is %T, not an object", v, v)
	}
	return m
}

func first(t *testing.T, v any) any {
	t.Helper()
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		t.Fatalf("%v is not a non-empty array", v)
	}
	return a[0]
}

// TestEmptyResultsJSON: a run that skipped a stage writes [] for it,
// not null, so that readers can iterate without checking.
func TestEmptyResultsJSON(t *testing.T) {
	var buf bytes.Buffer
	r := &Results{Failover: []FailoverResult{}, Transfer: []TransferResult{}, Idle: []IdleResult{}, Micro: []MicroResult{}, Errors: []string{}}
	r.Targets = EvaluateTargets(r)
	if err := r.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"failover", "transfer", "idle", "micro", "errors"} {
		if _, ok := doc[k].([]any); !ok {
			t.Errorf("%s = %v, want an empty array", k, doc[k])
		}
	}
	if doc["sim"] != nil {
		t.Errorf("sim = %v, want null when not measured", doc["sim"])
	}
}

func TestSaveWritesReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "results.json")
	r := sampleResults()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Failover[0].Failover != r.Failover[0].Failover || back.Machine.Cores != 2 {
		t.Errorf("round trip changed the figures: %+v", back.Failover[0].Failover)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".results-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestEvaluateTargets(t *testing.T) {
	r := sampleResults()
	byWhat := map[string]Target{}
	for _, tg := range r.Targets {
		byWhat[tg.What] = tg
	}
	if tg := byWhat["failover after kill -9, default, 3 nodes"]; !tg.Met || tg.AimMet == nil || !*tg.AimMet {
		t.Errorf("default failover p99 610 ms: want met (< 1000) and aim (≤ 650) met: %+v", tg)
	}
	if tg := byWhat["planned transfer gap, default, 3 nodes"]; !tg.Met {
		t.Errorf("transfer gap p99 9 ms: want met: %+v", tg)
	}
	if tg := byWhat["idle CPU per daemon, 5 nodes, default"]; tg.Met {
		t.Errorf("idle CPU 1.2%%: want missed: %+v", tg)
	}
	if tg := byWhat["idle RSS per daemon, 5 nodes, default"]; !tg.Met {
		t.Errorf("idle RSS 17 MB: want met: %+v", tg)
	}
	if tg := byWhat["overlapping masters"]; !tg.Met {
		t.Errorf("no overlaps: want met: %+v", tg)
	}

	// The fast profile has its own limits, and a failed trial misses the
	// target whatever the percentiles say.
	// The stop budget adds to both: 50 ms on fast.
	r.Failover[0].Profile = "fast"
	r.Failover[0].Timing = timingOf(election.MustProfile("fast"))
	r.Failover[0].Failover = summarize([]time.Duration{150 * time.Millisecond, 190 * time.Millisecond})
	r.Failover = append(r.Failover, r.Failover[0])
	r.Failover[1].Nodes, r.Failover[1].Failures = 5, 1
	r.Transfer[0].Overlaps = 1
	ts := EvaluateTargets(r)
	byWhat = map[string]Target{}
	for _, tg := range ts {
		byWhat[tg.What] = tg
	}
	if tg := byWhat["failover after kill -9, fast, 3 nodes"]; !tg.Met || *tg.AimMet {
		t.Errorf("fast p99 190 ms: want met (< 150+50) and aim (≤ 130+50) missed: %+v", tg)
	}
	if tg := byWhat["failover after kill -9, fast, 5 nodes"]; tg.Met || !strings.Contains(tg.Measured, "1 failed") {
		t.Errorf("a failed trial: want missed and said: %+v", tg)
	}
	if tg := byWhat["overlapping masters"]; tg.Met {
		t.Errorf("an overlap: want missed: %+v", tg)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	WriteTable(&buf, sampleResults())
	out := buf.String()
	for _, want := range []string{
		"2 cores, Example CPU, go1.26.0",
		"Failover after kill -9",
		"Planned transfer",
		"Idle 5-node cluster, default profile, a driver per daemon",
		"master to follower",
		"Simulator: 3600 s of 5-node time",
		"BenchmarkStepHeartbeat",
		"Targets",
		"25%, 90%", // CPU pressure of the median and the slowest failover
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func ptr(v float64) *float64 { return &v }
