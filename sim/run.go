package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/clustd/clustd/election"
)

// RunConfig is a whole run as `clustd sim` and the seed sweep make it.
type RunConfig struct {
	Nodes int
	// Roles is how many independent elections every node runs (see
	// Options.Roles); zero means one. A multi-role run also draws from
	// its seed whether preemption is on, and its hold-down.
	Roles    int
	Seed     uint64
	Duration time.Duration
	Faults   bool
	Mix      FaultMix
	// Profile names the timing profile (see election.ProfileTiming).
	Profile string
	Unsafe  election.Unsafe
	Verbose io.Writer
	// Linearizability runs porcupine on the history at the end; a failing
	// history's visualisation goes to HTMLPath when set.
	Linearizability bool
	HTMLPath        string
	// DriversOverrun gives the drivers stop times up to twice the stop
	// budget and lets them ignore their stop deadline: a mutation the
	// checkers must catch.
	DriversOverrun bool
	// OnState, if not nil, sees every state a core publishes (see
	// Options.OnState).
	OnState func(at time.Duration, node int, st election.State)

	// unsafeRole, when positive, limits Unsafe to role unsafeRole-1.
	unsafeRole int
}

// Result is the outcome of a run. Its JSON form is what `clustd sim --json`
// prints; the keys are a stable interface. In a multi-role run the figures
// cover every role together (availability is the roles' mean), and Roles
// has each role's own.
type Result struct {
	Seed          uint64         `json:"seed"`
	Nodes         int            `json:"nodes"`
	DurationS     float64        `json:"duration_s"`
	Elections     int            `json:"elections"`
	MasterChanges int            `json:"master_changes"`
	Failovers     int            `json:"failovers"`
	FailoverMS    Millis         `json:"failover_ms"`
	CleanFailover Millis         `json:"failover_clean_ms"`
	HandoverMS    Millis         `json:"handover_ms"`
	RecoveryMS    Millis         `json:"recovery_ms"`
	Availability  float64        `json:"availability"`
	Faults        map[string]int `json:"faults"`
	Messages      int            `json:"messages"`
	// Swarm is what the seed drew for a run with faults: printed beside
	// the seed, since it says what the run was exposed to.
	Swarm        *Swarm   `json:"swarm,omitempty"`
	Linearizable string   `json:"linearizable,omitempty"`
	HistoryOps   int      `json:"history_ops,omitempty"`
	Violations   []string `json:"violations"`
	// Command reproduces the run.
	Command string `json:"command"`
	// Preempt and PreemptHoldDownS are what a multi-role run drew.
	Preempt          bool         `json:"preempt,omitempty"`
	PreemptHoldDownS float64      `json:"preempt_hold_down_s,omitempty"`
	Roles            []RoleResult `json:"roles,omitempty"`

	sim *Sim
}

// RoleResult is one role's outcome in a multi-role run.
type RoleResult struct {
	Name string `json:"name"`
	// Preferred is the node with the role's highest priority.
	Preferred     string  `json:"preferred"`
	Elections     int     `json:"elections"`
	MasterChanges int     `json:"master_changes"`
	Failovers     int     `json:"failovers"`
	FailoverMS    Millis  `json:"failover_ms"`
	HandoverMS    Millis  `json:"handover_ms"`
	RecoveryMS    Millis  `json:"recovery_ms"`
	Availability  float64 `json:"availability"`
	Linearizable  string  `json:"linearizable,omitempty"`
	HistoryOps    int     `json:"history_ops,omitempty"`
}

// Millis is a percentile summary in milliseconds.
type Millis struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func millis(p Percentiles) Millis {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Millis{N: p.N, P50: ms(p.P50), P99: ms(p.P99), Max: ms(p.Max)}
}

// linearizeTimeout bounds porcupine's check of a run's history; a test
// shortens it to see a check that timed out fail the run.
var linearizeTimeout = 30 * time.Second

// Run performs one simulation and gathers its result.
func Run(rc RunConfig) (*Result, error) {
	timing, err := election.ProfileTiming(rc.Profile)
	if err != nil {
		return nil, err
	}
	opts := Options{
		Nodes:           rc.Nodes,
		Seed:            rc.Seed,
		Timing:          timing,
		Unsafe:          rc.Unsafe,
		Drift:           rc.Faults && rc.Mix.Drift,
		Verbose:         rc.Verbose,
		Linearizability: rc.Linearizability,
		DriversOverrun:  rc.DriversOverrun,
		OnState:         rc.OnState,
		Roles:           rc.Roles,
		unsafeRole:      rc.unsafeRole,
	}
	if rc.Roles > 1 {
		opts.Preempt, opts.PreemptHoldDown = drawPreemption(rc.Seed, timing)
	}
	if rc.Faults {
		// Drivers that use all of their stop budget, and timers as late
		// as the reserve allows.
		opts.DriverStop = timing.StopBudget
		opts.DriverLateness = timing.DriverReserve()
		if rc.DriversOverrun {
			opts.DriverStop = 2 * timing.StopBudget
		}
	}
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if rc.Faults {
		s.RunFaults(rc.Duration, rc.Mix)
	} else {
		calm := NetParams{Delay: 500 * time.Microsecond, Jitter: time.Millisecond}
		s.HealAll(calm)
		s.RunFor(rc.Duration)
	}
	st := s.Stats()
	if len(s.roles) > 1 {
		st = s.allRoleStats()
	}
	res := &Result{
		Seed:          rc.Seed,
		Nodes:         s.Size(),
		DurationS:     s.Now().Seconds(),
		Elections:     st.Elections,
		MasterChanges: st.MasterChanges,
		Failovers:     len(st.Failovers),
		FailoverMS:    millis(Summarize(st.Failovers)),
		CleanFailover: millis(Summarize(st.CleanFailovers)),
		HandoverMS:    millis(Summarize(st.Handovers)),
		RecoveryMS:    millis(Summarize(st.Recoveries)),
		Availability:  st.Availability(),
		Faults:        st.Faults,
		Messages:      st.Messages,
		Violations:    []string{},
		Swarm:         s.swarm,
		Command:       rc.command(),
		sim:           s,
	}
	if len(s.roles) > 1 {
		res.Preempt, res.PreemptHoldDownS = s.opts.Preempt, s.opts.PreemptHoldDown.Seconds()
		res.Roles = s.roleResults()
	}
	if rc.Linearizability && len(s.Violations()) == 0 {
		if err := s.checkLinearizable(rc.HTMLPath, res); err != nil {
			return nil, err
		}
	}
	for _, v := range s.Violations() {
		res.Violations = append(res.Violations, v.String())
	}
	return res, nil
}

// Sim gives access to the finished simulation (timeline, cores).
func (r *Result) Sim() *Sim { return r.sim }

// OK reports whether no invariant was broken.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// WriteJSON writes the result as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteSummary writes a readable summary; on a violation it adds the seed
// and the timeline of the last events on every node.
func (r *Result) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "seed:           %d\n", r.Seed)
	if r.Swarm != nil {
		fmt.Fprintf(w, "swarm:          %v\n", r.Swarm)
	}
	fmt.Fprintf(w, "nodes:          %d\n", r.Nodes)
	if len(r.Roles) > 0 {
		r.writeRoles(w)
	}
	fmt.Fprintf(w, "simulated:      %.1fs\n", r.DurationS)
	fmt.Fprintf(w, "elections:      %d\n", r.Elections)
	fmt.Fprintf(w, "master changes: %d\n", r.MasterChanges)
	fmt.Fprintf(w, "failover:       %s\n", describeMillis(r.FailoverMS))
	fmt.Fprintf(w, "  master crash, calm network: %s\n", describeMillis(r.CleanFailover))
	fmt.Fprintf(w, "handover:       %s\n", describeMillis(r.HandoverMS))
	fmt.Fprintf(w, "recovery:       %s\n", describeMillis(r.RecoveryMS))
	fmt.Fprintf(w, "availability:   %.3f%%\n", 100*r.Availability)
	fmt.Fprintf(w, "faults:        ")
	if len(r.Faults) == 0 {
		fmt.Fprintf(w, " none")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Faults)) {
		fmt.Fprintf(w, " %s=%d", k, r.Faults[k])
	}
	fmt.Fprintln(w)
	if r.Linearizable != "" {
		fmt.Fprintf(w, "linearizable:   %s (%d operations)\n", r.Linearizable, r.HistoryOps)
	}
	fmt.Fprintf(w, "violations:     %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  %s\n", v)
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(w, "\nreproduce with: %s\nlast events on every node:\n", r.Command)
		r.sim.WriteTimeline(w)
	}
}

func describeMillis(m Millis) string {
	if m.N == 0 {
		return "none measured"
	}
	return fmt.Sprintf("p50 %.1fms  p99 %.1fms  max %.1fms  (n=%d)", m.P50, m.P99, m.Max, m.N)
}

// command is the `clustd sim` command line that repeats this run.
func (rc RunConfig) command() string {
	cmd := fmt.Sprintf("clustd sim --seed %d --nodes %d --duration %v", rc.Seed, rc.Nodes, rc.Duration)
	if rc.Faults {
		cmd += " --faults"
	}
	if rc.Roles > 1 {
		cmd += fmt.Sprintf(" --roles %d", rc.Roles)
	}
	if rc.Profile != "" && rc.Profile != election.ProfileDefault {
		cmd += " --profile " + rc.Profile
	}
	if rc.Unsafe != (election.Unsafe{}) {
		cmd += fmt.Sprintf(" (unsafe core: %+v)", rc.Unsafe)
	}
	return cmd
}
