package bench

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/clustd/clustd/election"
)

// Results is everything one run of clustd-bench measured. Its JSON form is
// bench/results.json.
type Results struct {
	Machine  Machine          `json:"machine"`
	Quick    bool             `json:"quick"`
	Failover []FailoverResult `json:"failover"`
	Transfer []TransferResult `json:"transfer"`
	Idle     []IdleResult     `json:"idle"`
	// DriverIdle is what a driver process costs on an idle master and
	// on a follower.
	DriverIdle []DriverIdleResult `json:"driver_idle"`
	Sim        *SimResult         `json:"sim"`
	Micro      []MicroResult      `json:"micro"`
	Targets    []Target           `json:"targets"`
	// Experiment lists what this run changed from a standard one (daemon
	// environment, timing overrides, an -overlay build); empty for a
	// standard run, whose figures are the ones to compare with the targets.
	Experiment []string `json:"experiment"`
	// Errors lists stages that could not finish, with why.
	Errors []string `json:"errors"`
}

// Machine describes where the figures came from.
type Machine struct {
	Cores     int    `json:"cores"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	// Date is when the run started, RFC 3339.
	Date string `json:"date"`
	// LoadStart and LoadEnd are the 1-, 5- and 15-minute load averages
	// when the run started and ended: other work on a shared machine
	// delays the daemons, and this says how much there was.
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
	// BusyPct is how busy the whole machine was during the run, this
	// program and its daemons included, in percent of all cores;
	// StealPct the share the hypervisor gave to other guests.
	BusyPct  float64 `json:"busy_pct"`
	StealPct float64 `json:"steal_pct"`
	// PressurePct is the share of the run during which some task waited
	// for a CPU (/proc/pressure/cpu), absent where unavailable.
	PressurePct *float64 `json:"cpu_pressure_pct,omitempty"`
	// Commit is the source revision measured, with "-dirty" when the
	// working tree had changes.
	Commit string `json:"commit"`
	// WallS is how long the whole run took.
	WallS float64 `json:"wall_s"`
}

// Timing is a profile's timing in milliseconds.
type Timing struct {
	HeartbeatMS   float64 `json:"heartbeat_ms"`
	ElectionMinMS float64 `json:"election_min_ms"`
	ElectionMaxMS float64 `json:"election_max_ms"`
	StepMS        float64 `json:"step_ms"`
	LeaseMS       float64 `json:"lease_ms"`
	StopBudgetMS  float64 `json:"stop_budget_ms"`
}

// timingOf converts t to milliseconds.
func timingOf(t election.Timing) Timing {
	return Timing{
		HeartbeatMS:   millis(t.Heartbeat),
		ElectionMinMS: millis(t.ElectionMin),
		StopBudgetMS:  millis(t.StopBudget),
		ElectionMaxMS: millis(t.ElectionMax),
		StepMS:        millis(t.Step),
		LeaseMS:       millis(t.LeaseDuration()),
	}
}

// FailoverResult is kill -9 of the master, repeated.
type FailoverResult struct {
	Nodes   int    `json:"nodes"`
	Profile string `json:"profile"`
	Timing  Timing `json:"timing"`
	// Trials counts kills; Failures those after which no other driver was
	// promoted within 10 s. Failed trials are not in the figures.
	Trials       int      `json:"trials"`
	Failures     int      `json:"failures"`
	FailureNotes []string `json:"failure_notes"`
	// Failover is from the boottime.Now() reading just before
	// kill(SIGKILL) to the new master's driver entering Trigger.
	Failover Summary `json:"failover_ms"`
	// Daemon is from the kill to the new master's daemon taking the role
	// with a lease, read from its status (since_ms) right after the
	// promote: the election alone, without the hop to the driver. It is
	// good to a millisecond or two.
	Daemon Summary `json:"daemon_ms"`
	// LeaseGap is from the killed master's driver finishing its own
	// demote when its lease ran out to the new master's driver being
	// promoted: the margin by which the two drivers did not overlap.
	LeaseGap Summary `json:"lease_gap_ms"`
	// Overlaps counts trials where the new master's driver was promoted
	// before the old one had demoted itself.
	Overlaps int `json:"overlaps"`
	// Samples are the successful trials in order: failover, the daemon's
	// share and how busy the machine was meanwhile.
	Samples []Sample `json:"samples"`
}

// Sample is one trial. PressurePct is the share of the trial (from the
// kill or request to the promote) during which some task on the machine
// waited for a CPU, from the kernel's pressure stall information
// (/proc/pressure/cpu, "some"): clustd, this program and whatever else
// runs there. On a shared machine it tells a trial that was slow because
// it waited for a CPU from one that was slow by itself. It is absent where
// the kernel does not provide it.
type Sample struct {
	MS          float64  `json:"ms"`
	DaemonMS    float64  `json:"daemon_ms,omitempty"`
	PressurePct *float64 `json:"cpu_pressure_pct,omitempty"`
}

// TransferResult is a planned hand-over through the admin API, repeated.
type TransferResult struct {
	Nodes        int      `json:"nodes"`
	Profile      string   `json:"profile"`
	Timing       Timing   `json:"timing"`
	Trials       int      `json:"trials"`
	Failures     int      `json:"failures"`
	FailureNotes []string `json:"failure_notes"`
	// Gap is from the old master's driver returning from its demote
	// Trigger (its acknowledgement) to the new master's driver entering
	// its promote Trigger.
	Gap Summary `json:"gap_ms"`
	// Total is from the transfer request being sent to the promote.
	Total Summary `json:"total_ms"`
	// Overlaps counts trials where the promote came before the demote was
	// acknowledged.
	Overlaps int `json:"overlaps"`
	// Samples are the successful trials' gaps in order, with how busy the
	// machine was from the request to the promote.
	Samples []Sample `json:"samples"`
}

// IdleResult is a cluster left alone for a while.
type IdleResult struct {
	Nodes   int    `json:"nodes"`
	Profile string `json:"profile"`
	Timing  Timing `json:"timing"`
	// Drivers says whether each daemon had a driver connected (it gets
	// a state message with every lease renewal).
	Drivers bool    `json:"drivers"`
	WindowS float64 `json:"window_s"`
	// Stable is false if the master changed during the window.
	Stable  bool         `json:"stable"`
	Daemons []DaemonIdle `json:"daemons"`
	Links   []LinkIdle   `json:"links"`
	// MaxCPUPct is the busiest daemon's CPU in percent of one core;
	// MasterCPUPct the master's and MaxFollowerCPUPct the busiest
	// follower's.
	MaxCPUPct         float64 `json:"max_cpu_pct"`
	MasterCPUPct      float64 `json:"master_cpu_pct"`
	MaxFollowerCPUPct float64 `json:"max_follower_cpu_pct"`
	MaxRSSMB          float64 `json:"max_rss_mb"`
	// LinkBytesPerS summarises the links by kind: master to follower,
	// follower to master, follower to follower.
	LinkBytesPerS map[string]float64 `json:"link_bytes_per_s"`
}

// DaemonIdle is one daemon's idle cost.
type DaemonIdle struct {
	Node string `json:"node"`
	Role string `json:"role"`
	// CPUPct is user plus system time over the window, in percent of one
	// core, from /proc/PID/stat (10 ms resolution).
	CPUPct float64 `json:"cpu_pct"`
	// RSSMB is the resident set at the end of the window and PeakRSSMB its
	// peak; AnonMB is the private (anonymous) part of RSSMB and FileMB the
	// executable's pages, which every daemon started from the same file
	// shares; PSSMB counts shared pages divided among their users.
	RSSMB     float64 `json:"rss_mb"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	AnonMB    float64 `json:"anon_mb"`
	FileMB    float64 `json:"file_mb"`
	PSSMB     float64 `json:"pss_mb"`
	Threads   int64   `json:"threads"`
	// CtxSwitchesPerS is context switches per second summed over threads:
	// roughly how often the daemon wakes up.
	CtxSwitchesPerS float64 `json:"ctx_switches_per_s"`
	// ReadBytesPerS and WriteBytesPerS are rchar and wchar per second from
	// /proc/PID/io: every read and write system call, peer sockets,
	// driver websocket and log alike.
	ReadBytesPerS  float64 `json:"rchar_per_s"`
	WriteBytesPerS float64 `json:"wchar_per_s"`
	// GCsPerS is garbage collections per second, from
	// go_gc_duration_seconds_count on /metrics; Goroutines is go_goroutines
	// at the end. (The heap allocation counters on /metrics lag by up to
	// a span per P on a process this quiet; clustd-prof's allocation
	// profiles are the way to count allocations.)
	GCsPerS    float64 `json:"gcs_per_s"`
	Goroutines float64 `json:"goroutines"`
}

// LinkIdle is the traffic on one peer connection, one direction: the TCP
// connection From dialled to To, which carries everything From sends To.
type LinkIdle struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	// BytesPerS is TCP payload (tcpi_bytes_sent from ss: length prefix,
	// encrypted frame and tag; no IP or TCP headers).
	BytesPerS float64 `json:"bytes_per_s"`
	// SegmentsPerS is TCP segments sent, pure ACKs included.
	SegmentsPerS float64 `json:"segments_per_s"`
	// MessagesPerS is frames sent, from clustd_peer_messages_sent_total.
	MessagesPerS float64 `json:"messages_per_s"`
}

// SimResult is the simulator's speed.
type SimResult struct {
	Nodes      int      `json:"nodes"`
	Profile    string   `json:"profile"`
	Faults     bool     `json:"faults"`
	SimulatedS float64  `json:"simulated_s"`
	Seeds      []uint64 `json:"seeds"`
	// WallS and CPUS are per run: elapsed time and this process's CPU time.
	WallS []float64 `json:"wall_s"`
	CPUS  []float64 `json:"cpu_s"`
	// MedianWallS is the median run; SimPerWallS is simulated seconds per
	// wall second for it, SimPerCPUS per CPU second.
	MedianWallS float64 `json:"median_wall_s"`
	SimPerWallS float64 `json:"sim_s_per_wall_s"`
	SimPerCPUS  float64 `json:"sim_s_per_cpu_s"`
	Violations  int     `json:"violations"`
}

// MicroResult is one Go benchmark: the median over its -count runs.
type MicroResult struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	Runs        int     `json:"runs"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// Target is one figure of docs/design.md's "Numbers to reach" against what was
// measured.
type Target struct {
	What     string `json:"what"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	// Aim is the tighter figure docs/design.md aims for, if any, and whether
	// it was reached.
	Aim    string `json:"aim,omitempty"`
	AimMet *bool  `json:"aim_met,omitempty"`
}

// writeJSON writes r as indented JSON.
func (r *Results) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes r to path, through a temporary file so that a reader never
// sees half of it.
func (r *Results) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".results-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := r.writeJSON(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
