package chaos

import (
	"encoding/json"
	"fmt"
	"github.com/clustd/clustd/internal/fault"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/percentile"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/journal"
)

// timeStats summarises a set of durations.
type timeStats struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// statsOf uses the nearest-rank percentile: with few samples, p99 is the
// maximum, which is the honest answer.
func statsOf(samples []time.Duration) timeStats {
	if len(samples) == 0 {
		return timeStats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		v, _ := percentile.NearestRank(s, p)
		return v
	}
	return timeStats{N: len(s), P50: rank(50), P99: rank(99), Max: s[len(s)-1]}
}

func (s timeStats) String() string {
	if s.N == 0 {
		return "no samples"
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v  p99 %v  max %v  (%d)", r(s.P50), r(s.P99), r(s.Max), s.N)
}

// Report is what a run found.
type Report struct {
	// Roles are the checks of the roles after the first, in a run with
	// several (Config.Roles); the rest of the report is the first role's.
	Roles []RoleReport `json:"roles,omitempty"`

	Seed    uint64 `json:"seed"`
	Nodes   int    `json:"nodes"`
	Profile string `json:"profile"`
	Unsafe  bool   `json:"unsafe,omitempty"`
	// Network says how the nodes were connected; NetworkNote why not in
	// namespaces, if they were not.
	Network     string `json:"network"`
	NetworkNote string `json:"network_note,omitempty"`
	Weather     string `json:"weather"`
	// Swarm is what the seed drew for the whole run and the weights the
	// faults are drawn with, printed beside the seed.
	Swarm string `json:"swarm"`
	// ProbeDrain is how long the exec probe went on after its stop signal;
	// StopBudget is the cluster's.
	ProbeDrain time.Duration `json:"probe_drain_ns"`
	StopBudget time.Duration `json:"stop_budget_ns"`
	// DriverLate is how late the recorder's demote began and the probe's
	// drain ended, on top of real timers' lateness.
	DriverLate time.Duration `json:"driver_late_ns"`
	// Duration is how long faults were injected.
	Duration time.Duration            `json:"duration_ns"`
	Faults   map[fault.Kind]int       `json:"faults"`
	FaultLog []faultRecord            `json:"fault_log"`
	Failover timeStats                `json:"failover"`
	ByKind   map[fault.Kind]timeStats `json:"failover_by_kind"`
	HandOver timeStats                `json:"hand_over"`
	// Causes tallies the failover records the nodes' journals hold (the
	// latest revision of each term), by cause; FailoverRecords counts them.
	Causes          map[string]int `json:"failover_causes"`
	FailoverRecords int            `json:"failover_records"`
	// Promotions counts tenures; MasterChanges those of a node other than
	// the previous master; Repromotions those repeating node and term.
	Promotions    int     `json:"promotions"`
	MasterChanges int     `json:"master_changes"`
	Repromotions  int     `json:"repromotions"`
	Availability  float64 `json:"availability"`
	// Heals is how many heals were followed by a liveness check, and
	// Liveness how long the master took after them.
	Heals         int           `json:"heals"`
	Liveness      timeStats     `json:"liveness"`
	LivenessBound time.Duration `json:"liveness_bound_ns"`
	// Overlaps uses the conservative intervals [promote start, demote
	// done]; StrictOverlaps the sure ones [promote done, demote start].
	Overlaps       []overlap `json:"overlaps"`
	StrictOverlaps []overlap `json:"strict_overlaps"`
	// ClosestGap is the smallest gap between one driver's demote done and
	// the next master's promote start (negative: an overlap); HasGap says
	// whether the master changed at all.
	ClosestGap     time.Duration `json:"closest_gap_ns"`
	HasGap         bool          `json:"has_gap"`
	TermViolations []string      `json:"term_violations"`
	Linearizable   string        `json:"linearizable"`
	Operations     int           `json:"operations"`
	// Held counts the times a driver (recorder) or the probe found its
	// lease gone when about to act, and held back; Late the acts whose
	// write returned after the deadline their check had found (a freeze
	// or a stall between check and write), which the overlap checks take
	// to have landed that late.
	Held     int `json:"held_back"`
	ExecHeld int `json:"exec_held_back"`
	Late     int `json:"late_acts"`
	// Exec says whether the exec driver ran; ExecRuns counts its
	// command's runs.
	Exec         bool      `json:"exec"`
	ExecRuns     int       `json:"exec_runs"`
	ExecOverlaps []overlap `json:"exec_overlaps"`
	// ExecOrder lists runs whose acts interleave in the shared file.
	ExecOrder []string `json:"exec_order_violations"`
	// Violations lists every broken promise, one line each.
	Violations []string `json:"violations"`
	// Dir is the run's folder, when kept.
	Dir string `json:"dir,omitempty"`
	// Replay is the command that runs the same schedule again.
	Replay string `json:"replay"`
}

// failoverCauses reads every node's journal and tallies the failover
// records by cause, the latest revision of each term. It informs, and
// checks nothing: the cause is the cluster's best account, not a promise.
func failoverCauses(c *testbed) (map[string]int, int) {
	latest := map[uint64]journal.Event{}
	for _, n := range c.nodes {
		cfg, err := config.Load(n.config)
		if err != nil {
			continue
		}
		evs, err := journal.ReadDir(filepath.Join(cfg.DataDir, "journal"), journal.Query{Failovers: true})
		if err != nil {
			continue
		}
		for _, ev := range evs {
			if old, ok := latest[ev.Term]; !ok || ev.Rev > old.Rev {
				latest[ev.Term] = ev
			}
		}
	}
	causes := map[string]int{}
	for _, ev := range latest {
		causes[ev.Cause]++
	}
	return causes, len(latest)
}

// Failed reports whether the run broke any promise.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

// analyse reads what the drivers recorded and checks it.
func (r *runner) analyse(faultTime, end time.Duration, nw network) (*Report, error) {
	rep := r.newReport(faultTime, nw)
	h, byNode, execRecs, err := r.readHistory(end)
	if err != nil {
		return nil, err
	}
	rep.tallyLeaseChecks(append(slices.Collect(maps.Values(byNode)), execRecs))
	rep.Promotions = len(h.Tenures)
	rep.MasterChanges = h.MasterChanges()
	rep.Repromotions = h.Repromotions()
	rep.Availability = h.Availability(r.firstMaster, end)
	rep.ExecRuns = len(h.Exec)
	r.checkFaults(rep, h)
	checkOverlaps(rep, h, byNode)
	if err := r.checkRoles(rep, end); err != nil {
		return nil, err
	}
	if err := r.checkLinearizable(rep, h); err != nil {
		return nil, err
	}
	rep.Causes, rep.FailoverRecords = failoverCauses(r.c)
	if err := r.writeFiles(rep, h); err != nil {
		return nil, err
	}
	return rep, nil
}

// newReport fills in what the run was, before anything is checked.
func (r *runner) newReport(faultTime time.Duration, nw network) *Report {
	sched := newSchedule(r.cfg.Seed, r.cfg.Nodes, r.timing, r.cfg.Kinds)
	return &Report{
		StopBudget: r.timing.StopBudget,
		Seed:       r.cfg.Seed, Nodes: r.cfg.Nodes, Profile: r.cfg.Profile, Unsafe: r.cfg.Unsafe,
		Network: nw.describe(), NetworkNote: r.netNote, Duration: faultTime,
		Faults: map[fault.Kind]int{}, FaultLog: r.faults, ByKind: map[fault.Kind]timeStats{},
		LivenessBound: r.bound, Exec: !r.cfg.NoExec,
		Weather: sched.Weather.Name, Swarm: sched.Swarm(),
		ProbeDrain: r.c.drain, DriverLate: r.c.late, Replay: replayCommand(r.cfg),
	}
}

// readHistory reads every node's records and the probe's, and puts them
// together; end closes what is still open.
func (r *runner) readHistory(end time.Duration) (*history, map[string][]Record, []Record, error) {
	c := r.c
	ids := make([]string, len(c.nodes))
	byNode := map[string][]Record{}
	for i, n := range c.nodes {
		ids[i] = n.id
		recs, err := readRecordFile(n.historyFile())
		if err != nil {
			return nil, nil, nil, err
		}
		byNode[n.id] = recs
	}
	execRecs, err := readRecordFile(c.execFile)
	if err != nil {
		return nil, nil, nil, err
	}
	return buildHistory(ids, byNode, execRecs, end), byNode, execRecs, nil
}

// tallyLeaseChecks counts the times drivers and probe held back, and the
// acts whose write returned after their lease.
func (rep *Report) tallyLeaseChecks(files [][]Record) {
	for _, recs := range files {
		for _, x := range recs {
			switch x.Event {
			case EvHeld:
				rep.Held++
			case EvExecHeld:
				rep.ExecHeld++
			case EvLate:
				rep.Late++
			}
		}
	}
}

// checkFaults checks failover after each fault that lost the master and
// liveness after each heal, and measures hand-overs.
func (r *runner) checkFaults(rep *Report, h *history) {
	var failover []time.Duration
	byKind := map[fault.Kind][]time.Duration{}
	var handOver, live []time.Duration
	for _, f := range r.faults {
		rep.Faults[f.Kind]++
		switch {
		case f.LosesMaster:
			// Every such fault leaves a majority up and connected (one
			// node down or cut off, or the master's side of a split the
			// smaller), so the contract's fast failover applies: a new
			// master within the liveness bound, heal or not.
			d, ok := firstPromotionAfter(h, f.Start)
			if ok {
				failover = append(failover, d)
				byKind[f.Kind] = append(byKind[f.Kind], d)
			}
			if !ok || d > r.bound {
				rep.Violations = append(rep.Violations, fmt.Sprintf("failover: no new master within %v of %q at %s: %s",
					r.bound, f.Text, fmtMono(f.Start), took(d, ok)))
			}
		case f.HandOver && f.Err == "":
			if d, ok := handOverTime(h, h.Nodes[f.Master], f.Start); ok {
				handOver = append(handOver, d)
			}
		}
		rep.Heals++
		d, ok := h.NextMaster(f.Heal)
		if !ok || d > r.bound {
			rep.Violations = append(rep.Violations, fmt.Sprintf("liveness: no master within %v of healing %q at %s: %s",
				r.bound, f.Text, fmtMono(f.Heal), took(d, ok)))
		}
		if ok {
			live = append(live, d)
		}
	}
	rep.Failover = statsOf(failover)
	for k, s := range byKind {
		rep.ByKind[k] = statsOf(s)
	}
	rep.HandOver = statsOf(handOver)
	rep.Liveness = statsOf(live)
}

// took says how long a master took to come, if it came.
func took(d time.Duration, ok bool) string {
	if !ok {
		return "none before the run ended"
	}
	return "it took " + d.Round(time.Millisecond).String()
}

// checkOverlaps checks that no two drivers, and no two runs of the exec
// command, acted at once, and that terms only rose.
func checkOverlaps(rep *Report, h *history, byNode map[string][]Record) {
	rep.Overlaps = h.Overlaps()
	rep.StrictOverlaps = h.StrictOverlaps()
	rep.ClosestGap, rep.HasGap = h.ClosestHandOver()
	for _, o := range rep.Overlaps {
		rep.Violations = append(rep.Violations, "overlap: "+o.String())
	}
	rep.TermViolations = h.TermViolations(byNode)
	for _, v := range rep.TermViolations {
		rep.Violations = append(rep.Violations, "terms: "+v)
	}
	if rep.Exec {
		rep.ExecOverlaps = h.ExecOverlaps()
		for _, o := range rep.ExecOverlaps {
			rep.Violations = append(rep.Violations, "exec singleton: "+o.String())
		}
		rep.ExecOrder = h.ExecOrderViolations()
		for _, v := range rep.ExecOrder {
			rep.Violations = append(rep.Violations, "exec singleton, in the shared file: "+v)
		}
	}
}

// checkLinearizable runs porcupine on the leadership history, with the
// faults as notes on its visualisation.
func (r *runner) checkLinearizable(rep *Report, h *history) error {
	var notes []vizNote
	for _, f := range r.faults {
		notes = append(notes, vizNote{Node: f.Target, From: f.Start, To: f.Heal, Text: string(f.Kind) + ": " + f.Text})
	}
	html := filepath.Join(r.dir, "history.html")
	res, err := h.Linearizable(time.Minute, html, notes)
	if err != nil {
		return err
	}
	rep.Operations = len(h.Operations())
	switch res {
	case porcupine.Ok:
		rep.Linearizable = "ok"
	case porcupine.Illegal:
		rep.Linearizable = "NOT linearizable (visualisation: " + html + ")"
		rep.Violations = append(rep.Violations, "linearizability: porcupine finds the leadership history not linearizable; see "+html)
	default:
		// Unchecked is not passed: the run fails, and so keeps its folder
		// with the nodes' history.jsonl, and what porcupine got through in
		// history.html.
		rep.Linearizable = "unknown (porcupine timed out; visualisation: " + html + ")"
		rep.Violations = append(rep.Violations, "linearizability: porcupine timed out (Unknown), so the leadership history was not checked; see "+html)
	}
	return nil
}

// firstPromotionAfter is how long after t the first tenure that started
// after t was surely acting.
func firstPromotionAfter(h *history, t time.Duration) (time.Duration, bool) {
	for _, x := range h.Tenures {
		if x.Start > t {
			return x.Done - t, true
		}
	}
	return 0, false
}

// handOverTime is the planned hand-over's length: from the old master's
// driver done demoting to the new master's driver done promoting.
func handOverTime(h *history, old string, t time.Duration) (time.Duration, bool) {
	var prev *tenure
	for i := range h.Tenures {
		x := &h.Tenures[i]
		if x.Node == old && x.Start <= t && t < x.End {
			prev = x
			continue
		}
		if prev != nil && x.Start >= prev.End && x.Node != old {
			return x.Done - prev.End, true
		}
	}
	return 0, false
}

// writeFiles leaves the run's figures and fault log beside the logs.
func (r *runner) writeFiles(rep *Report, h *history) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	rep.Summary(&sb)
	sb.WriteString("\ntenures (node, term, promote start → demote done):\n")
	for _, t := range h.Tenures {
		cut := ""
		if t.Cut != "" {
			cut = "  (closed by " + t.Cut + ")"
		}
		fmt.Fprintf(&sb, "  %s term %-4d %s → %s  acting %v%s\n", t.Node, t.Term, fmtMono(t.Start), fmtMono(t.End), (t.DemoteStart - t.Done).Round(time.Millisecond), cut)
	}
	sb.WriteString("\nfaults:\n")
	for _, f := range rep.FaultLog {
		fmt.Fprintf(&sb, "  %s → %s  %-11s %s%s\n", fmtMono(f.Start), fmtMono(f.Heal), f.Kind, f.Text, errNote(f.Err))
	}
	return os.WriteFile(filepath.Join(r.dir, "summary.txt"), []byte(sb.String()), 0o644)
}

// replayCommand is the command line that runs cfg's schedule again.
func replayCommand(cfg Config) string {
	s := fmt.Sprintf("go run ./chaos/cmd/chaos --nodes %d --duration %v --seed %d", cfg.Nodes, cfg.Duration, cfg.Seed)
	if cfg.Profile != "" && cfg.Profile != "default" {
		s += " --profile " + cfg.Profile
	}
	if len(cfg.Kinds) > 0 {
		s += " --faults " + fault.Join(cfg.Kinds)
		s = strings.ReplaceAll(s, ", ", ",")
	}
	if cfg.Unsafe {
		s += " --unsafe"
	}
	if cfg.Loopback {
		s += " --loopback"
	}
	if cfg.Roles > 1 {
		s += fmt.Sprintf(" --roles %d", cfg.Roles)
	}
	return s
}

// checkRoles checks the roles after the first, in a run with several: no
// two of a role's drivers act as master at once, terms only rise, and the
// role had a master at all (else the checks would pass for nothing).
func (r *runner) checkRoles(rep *Report, end time.Duration) error {
	c := r.c
	for k := 1; k < c.roles; k++ {
		ids := make([]string, len(c.nodes))
		byNode := map[string][]Record{}
		for i, n := range c.nodes {
			ids[i] = n.id
			recs, err := readRecordFile(n.roleHistoryFile(k))
			if err != nil {
				return err
			}
			byNode[n.id] = recs
		}
		h := buildHistory(ids, byNode, nil, end)
		name := roleName(k)
		rs := RoleReport{Name: name, Promotions: len(h.Tenures), Overlaps: len(h.Overlaps())}
		for _, o := range h.Overlaps() {
			rep.Violations = append(rep.Violations, "role "+name+": overlap: "+o.String())
		}
		for _, v := range h.TermViolations(byNode) {
			rs.TermViolations++
			rep.Violations = append(rep.Violations, "role "+name+": terms: "+v)
		}
		if rs.Promotions == 0 {
			rep.Violations = append(rep.Violations, "role "+name+": no driver was ever told it is master")
		}
		rep.Roles = append(rep.Roles, rs)
	}
	return nil
}

// RoleReport is what a run saw of one role after the first.
type RoleReport struct {
	Name           string `json:"name"`
	Promotions     int    `json:"promotions"`
	Overlaps       int    `json:"overlaps"`
	TermViolations int    `json:"term_violations"`
}

// Summary prints the report for people.
func (r *Report) Summary(w io.Writer) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-16s%s\n", label, fmt.Sprintf(format, args...))
	}
	r.summariseRun(p)
	r.summariseTimes(p)
	r.summariseChecks(p)
	r.summariseResult(p)
}

// printer prints one labelled line of a summary.
type printer func(label, format string, args ...any)

// summariseRun prints what the run was: seed and swarm, cluster, network
// and the faults injected.
func (r *Report) summariseRun(p printer) {
	build := ""
	if r.Unsafe {
		build = ", UNSAFE build (-tags chaos_unsafe: no stickiness, no stop budget)"
	}
	p("seed", "%d", r.Seed)
	if r.Swarm != "" {
		p("swarm", "%s", r.Swarm)
	}
	p("nodes", "%d, %s timing%s", r.Nodes, r.Profile, build)
	p("network", "%s", r.Network)
	if r.NetworkNote != "" {
		p("", "%s", r.NetworkNote)
	}
	p("weather", "%s", r.Weather)
	if r.Exec {
		p("probe drain", "%v after its stop signal (stop budget %v)", r.ProbeDrain, r.StopBudget)
	}
	p("lateness", "%v: the drivers' demote begins, the probe's drain ends, that late", r.DriverLate)
	p("duration", "%v of faults", r.Duration.Round(100*time.Millisecond))
	var kinds []string
	total := 0
	for _, k := range fault.ChaosKinds() {
		if n := r.Faults[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			total += n
		}
	}
	p("faults", "%d: %s", total, strings.Join(kinds, ", "))
}

// summariseTimes prints master changes, failover, hand-over, the journals'
// causes, availability and liveness.
func (r *Report) summariseTimes(p printer) {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	p("master changes", "%d (%d promotions, %d of them the same node again in its term)", r.MasterChanges, r.Promotions, r.Repromotions)
	p("failover", "%s  master lost → new master's driver promoted (bound %v)", r.Failover, ms(r.LivenessBound))
	for _, k := range fault.ChaosKinds() {
		if s, ok := r.ByKind[k]; ok {
			p("", "  after %-8s %s", k, s)
		}
	}
	p("hand-over", "%s  planned: old driver demoted → new driver promoted", r.HandOver)
	var causes []string
	for _, k := range driverproto.Causes {
		if n := r.Causes[k]; n > 0 {
			causes = append(causes, fmt.Sprintf("%s %d", k, n))
		}
	}
	p("records", "%d failover records in the journals: %s", r.FailoverRecords, strings.Join(causes, ", "))
	p("availability", "%.2f%% of the time a driver acted as master", 100*r.Availability)
	p("liveness", "%s  heal → a driver acting as master, after each of %d heals (bound %v)", r.Liveness, r.Heals, ms(r.LivenessBound))
}

// summariseChecks prints the safety checks: overlaps, terms, porcupine
// and the exec singleton.
func (r *Report) summariseChecks(p printer) {
	gap := "the master never changed"
	if r.HasGap {
		gap = fmt.Sprintf("closest hand-over: %v between one driver's demote done and the next's promote start", r.ClosestGap.Round(time.Millisecond))
	}
	p("overlaps", "%d  (conservative: promote start → demote done; %d on promote done → demote start); %s", len(r.Overlaps), len(r.StrictOverlaps), gap)
	for i, o := range r.Overlaps {
		if i == 5 {
			p("", "  … %d more", len(r.Overlaps)-5)
			break
		}
		p("", "  %s", o)
	}
	if len(r.TermViolations) == 0 {
		p("terms", "increase along the merged history")
	} else {
		p("terms", "%d violations", len(r.TermViolations))
	}
	p("lease checks", "held back %d times (drivers), %d (probe); %d acts whose write returned after their lease", r.Held, r.ExecHeld, r.Late)
	p("linearizable", "%s (porcupine, %d operations)", r.Linearizable, r.Operations)
	if r.Exec {
		p("exec singleton", "%d overlaps over %d runs of the command under `clustd driver exec`; %d interleavings in the file they share", len(r.ExecOverlaps), r.ExecRuns, len(r.ExecOrder))
	} else {
		p("exec singleton", "not checked (exec driver left out)")
	}
	for _, rr := range r.Roles {
		p("role "+rr.Name, "%d overlaps, %d term violations over %d promotions (the lines above are of role r1)", rr.Overlaps, rr.TermViolations, rr.Promotions)
	}
}

// summariseResult prints the verdict, the violations, where the run's
// folder is and how to replay it.
func (r *Report) summariseResult(p printer) {
	if r.Failed() {
		p("result", "FAIL: %d violations", len(r.Violations))
		for i, v := range r.Violations {
			if i == 10 {
				p("", "  … %d more in report.json", len(r.Violations)-10)
				break
			}
			p("", "  %s", v)
		}
	} else {
		p("result", "PASS")
	}
	if r.Dir != "" {
		p("kept", "%s (every node's logs and history, faults, report.json, summary.txt%s)", r.Dir, htmlNote(r))
	}
	p("replay", "%s", r.Replay)
}

func htmlNote(r *Report) string {
	if strings.HasPrefix(r.Linearizable, "NOT") {
		return ", history.html"
	}
	return ""
}
