package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Limits from docs/design.md, "Numbers to reach".
const (
	targetFailoverDefaultMS = 1000
	aimFailoverDefaultMS    = 650
	targetFailoverFastMS    = 150
	aimFailoverFastMS       = 130
	targetTransferGapMS     = 50
	targetIdleCPUPct        = 0.5
	targetIdleRSSMB         = 20
	targetSimHourWallS      = 5
)

// EvaluateTargets compares the results with docs/design.md's targets. A
// scenario with failed trials misses its target whatever its percentiles:
// a trial with no new master is an unbounded failover.
func EvaluateTargets(r *Results) []Target {
	var ts []Target
	for _, f := range r.Failover {
		ts = append(ts, failoverTarget(f))
	}
	for _, t := range r.Transfer {
		ts = append(ts, transferTarget(t))
	}
	for _, in := range r.Idle {
		if in.Profile != "default" || !in.Drivers {
			continue // the targets are for the default profile, in production shape
		}
		ts = append(ts, idleTargets(in)...)
	}
	if s := r.Sim; s != nil && len(s.WallS) > 0 {
		ts = append(ts, simTarget(s))
	}
	if t, ok := overlapTarget(r); ok {
		ts = append(ts, t)
	}
	return ts
}

func failoverTarget(f FailoverResult) Target {
	limit, aim := float64(targetFailoverDefaultMS), float64(aimFailoverDefaultMS)
	if f.Profile == "fast" {
		limit, aim = targetFailoverFastMS, aimFailoverFastMS
	}
	// The drivers promote once the stop budget has passed: failover
	// costs it, on top of the targets set without one (1.3 × ETmin).
	limit += f.Timing.StopBudgetMS
	aim += f.Timing.StopBudgetMS
	measured := fmt.Sprintf("p99 %.1f ms (n=%d)", f.Failover.P99, f.Failover.N)
	if f.Failures > 0 {
		measured += fmt.Sprintf(", %d failed trials", f.Failures)
	}
	ok := f.Failover.N > 0 && f.Failures == 0
	aimMet := ok && f.Failover.P99 <= aim
	return Target{
		What:     fmt.Sprintf("failover after kill -9, %s, %d nodes", f.Profile, f.Nodes),
		Target:   fmt.Sprintf("p99 < %.0f ms", limit),
		Measured: measured,
		Met:      ok && f.Failover.P99 < limit,
		Aim:      fmt.Sprintf("p99 ≤ %.0f ms", aim),
		AimMet:   &aimMet,
	}
}

func transferTarget(t TransferResult) Target {
	measured := fmt.Sprintf("p99 %.2f ms (n=%d)", t.Gap.P99, t.Gap.N)
	if t.Failures > 0 {
		measured += fmt.Sprintf(", %d failed trials", t.Failures)
	}
	return Target{
		What:     fmt.Sprintf("planned transfer gap, %s, %d nodes", t.Profile, t.Nodes),
		Target:   fmt.Sprintf("p99 < %d ms", targetTransferGapMS),
		Measured: measured,
		Met:      t.Gap.N > 0 && t.Failures == 0 && t.Gap.P99 < targetTransferGapMS,
	}
}

// idleTargets are the idle cluster's CPU and memory per daemon.
func idleTargets(in IdleResult) []Target {
	return []Target{{
		What:     fmt.Sprintf("idle CPU per daemon, %d nodes, default", in.Nodes),
		Target:   fmt.Sprintf("< %.1f%% of a core", targetIdleCPUPct),
		Measured: fmt.Sprintf("max %.2f%% (master %.2f%%, followers ≤ %.2f%%)", in.MaxCPUPct, in.MasterCPUPct, in.MaxFollowerCPUPct),
		Met:      len(in.Daemons) > 0 && in.MaxCPUPct < targetIdleCPUPct,
	}, {
		What:     fmt.Sprintf("idle RSS per daemon, %d nodes, default", in.Nodes),
		Target:   fmt.Sprintf("< %d MB", targetIdleRSSMB),
		Measured: fmt.Sprintf("max %.1f MB", in.MaxRSSMB),
		Met:      len(in.Daemons) > 0 && in.MaxRSSMB < targetIdleRSSMB,
	}}
}

func simTarget(s *SimResult) Target {
	return Target{
		What:     fmt.Sprintf("simulator, %v s of %d-node time", s.SimulatedS, s.Nodes),
		Target:   fmt.Sprintf("< %d s wall per simulated hour", targetSimHourWallS),
		Measured: fmt.Sprintf("%.2f s wall per hour (median of %d)", 3600/s.SimPerWallS, len(s.WallS)),
		Met:      3600/s.SimPerWallS < targetSimHourWallS,
	}
}

// overlapTarget counts overlapping masters over every trial and the
// simulator's seeds; there is none to report when nothing was measured.
func overlapTarget(r *Results) (Target, bool) {
	overlaps, measured := 0, 0
	for _, f := range r.Failover {
		overlaps += f.Overlaps
		measured += f.Failover.N
	}
	for _, t := range r.Transfer {
		overlaps += t.Overlaps
		measured += t.Gap.N
	}
	if measured == 0 && r.Sim == nil {
		return Target{}, false
	}
	m := fmt.Sprintf("%d driver overlaps in %d trials", overlaps, measured)
	violations := 0
	if r.Sim != nil {
		violations = r.Sim.Violations
		m += fmt.Sprintf(", %d sim violations in %d seeds", violations, len(r.Sim.Seeds))
	}
	return Target{
		What:     "overlapping masters",
		Target:   "0",
		Measured: m,
		Met:      overlaps == 0 && violations == 0,
	}, true
}

// WriteTable writes the results as readable tables.
func WriteTable(w io.Writer, r *Results) {
	writeMachine(w, r)
	if len(r.Failover) > 0 {
		writeFailover(w, r.Failover)
	}
	if len(r.Transfer) > 0 {
		writeTransfer(w, r.Transfer)
	}
	for _, in := range r.DriverIdle {
		writeDriverIdle(w, in)
	}
	for _, in := range r.Idle {
		writeIdle(w, in)
	}
	if s := r.Sim; s != nil && len(s.WallS) > 0 {
		writeSim(w, s)
	}
	if len(r.Micro) > 0 {
		writeMicro(w, r.Micro)
	}
	if len(r.Targets) > 0 {
		writeTargets(w, r.Targets)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nERROR: %s\n", e)
	}
}

// writeMachine writes the heading: where, when and how busy the machine was.
func writeMachine(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "clustd benchmarks: %d cores, %s, %s, linux %s, %s\n", m.Cores, m.CPUModel, m.GoVersion, m.Kernel, m.Date)
	fmt.Fprintf(w, "commit %s; load average %.2f %.2f %.2f at start, %.2f %.2f %.2f at end; machine %.0f%% busy (steal %.1f%%, CPU pressure %s); %.0f s in all", m.Commit,
		m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2], m.BusyPct, m.StealPct, pct(m.PressurePct), m.WallS)
	if r.Quick {
		fmt.Fprint(w, " (quick run: few trials)")
	}
	fmt.Fprintln(w)
	if len(r.Experiment) > 0 {
		fmt.Fprintf(w, "EXPERIMENT, not a standard run: %s\n", strings.Join(r.Experiment, "; "))
	}
}

func writeFailover(w io.Writer, fs []FailoverResult) {
	fmt.Fprintln(w, "\nFailover after kill -9 of the master: kill → new master's driver promoted (ms)")
	tw := table(w)
	fmt.Fprintln(tw, "nodes\tprofile\tETmin\tstop budget\ttrials\tfailed\tp50\tp99\tmax\tmean\tdaemon p50\tdaemon p99\tlease gap min\toverlaps\tCPU pressure: median, at max\t")
	for _, f := range fs {
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.1f\t%d\t%s\t\n", f.Nodes, f.Profile, f.Timing.ElectionMinMS, f.Timing.StopBudgetMS,
			f.Trials, f.Failures, f.Failover.P50, f.Failover.P99, f.Failover.Max, f.Failover.Mean, f.Daemon.P50, f.Daemon.P99, f.LeaseGap.Min, f.Overlaps, busyNote(f.Samples))
	}
	tw.Flush()
}

func writeTransfer(w io.Writer, ts []TransferResult) {
	fmt.Fprintln(w, "\nPlanned transfer: old driver's demote acknowledged → new driver promoted (ms)")
	tw := table(w)
	fmt.Fprintln(tw, "nodes\tprofile\ttrials\tfailed\tgap p50\tgap p99\tgap max\trequest→promote p50\tp99\toverlaps\tCPU pressure: median, at max\t")
	for _, t := range ts {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%s\t\n", t.Nodes, t.Profile, t.Trials, t.Failures,
			t.Gap.P50, t.Gap.P99, t.Gap.Max, t.Total.P50, t.Total.P99, t.Overlaps, busyNote(t.Samples))
	}
	tw.Flush()
}

func writeDriverIdle(w io.Writer, in DriverIdleResult) {
	fmt.Fprintf(w, "\nIdle drivers (clustd driver shell, a process per daemon), %d nodes, %s profile, over %.0f s%s\n", in.Nodes, in.Profile, in.WindowS, unstableNote(in.Stable))
	tw := table(w)
	fmt.Fprintln(tw, "node\tmaster\tCPU % of a core\tctx switches/s\tRSS MB\t")
	for _, d := range in.Drivers {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.1f\t%.1f\t\n", d.Node, yesNo(d.Master), d.CPUPct, d.CtxSwitchesPS, d.RSSMB)
	}
	tw.Flush()
}

func writeIdle(w io.Writer, in IdleResult) {
	drivers := "a driver per daemon"
	if !in.Drivers {
		drivers = "no drivers"
	}
	fmt.Fprintf(w, "\nIdle %d-node cluster, %s profile, %s, over %.0f s%s\n", in.Nodes, in.Profile, drivers, in.WindowS, unstableNote(in.Stable))
	tw := table(w)
	fmt.Fprintln(tw, "node\trole\tCPU % of a core\tRSS MB\t(private\texecutable)\tPSS MB\tpeak RSS\tthreads\tctx switches/s\trchar B/s\twchar B/s\tgoroutines\tGCs/s\t")
	for _, d := range in.Daemons {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t\n", d.Node, d.Role, d.CPUPct,
			d.RSSMB, d.AnonMB, d.FileMB, d.PSSMB, d.PeakRSSMB, d.Threads, d.CtxSwitchesPerS, d.ReadBytesPerS, d.WriteBytesPerS, d.Goroutines, d.GCsPerS)
	}
	tw.Flush()
	writeLinks(w, in.Links)
}

// writeLinks writes the average peer link of each kind.
func writeLinks(w io.Writer, links []LinkIdle) {
	fmt.Fprintln(w, "peer links, one direction (TCP payload; frames from clustd_peer_messages_sent_total):")
	tw := table(w)
	fmt.Fprintln(tw, "  kind\tlinks\tbytes/s\tsegments/s\tframes/s\tbytes/frame\t")
	for _, kind := range []string{"master_to_follower", "follower_to_master", "follower_to_follower"} {
		var n int
		var b, s, f float64
		for _, l := range links {
			if l.Kind == kind {
				n++
				b, s, f = b+l.BytesPerS, s+l.SegmentsPerS, f+l.MessagesPerS
			}
		}
		if n == 0 {
			continue
		}
		per := 0.0
		if f > 0 {
			per = b / f
		}
		fmt.Fprintf(tw, "  %s\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t\n", strings.ReplaceAll(kind, "_", " "), n, b/float64(n), s/float64(n), f/float64(n), per)
	}
	tw.Flush()
}

func writeSim(w io.Writer, s *SimResult) {
	fmt.Fprintf(w, "\nSimulator: %.0f s of %d-node time, %s profile, default fault mix, %d seeds\n", s.SimulatedS, s.Nodes, s.Profile, len(s.Seeds))
	fmt.Fprintf(w, "  median %.3f s wall = %.0f simulated s per wall s (%.0f per CPU s); per run wall %v s, CPU %v s; %d violations\n",
		s.MedianWallS, s.SimPerWallS, s.SimPerCPUS, s.WallS, s.CPUS, s.Violations)
}

func writeMicro(w io.Writer, ms []MicroResult) {
	fmt.Fprintln(w, "\nGo micro-benchmarks (median of runs)")
	tw := table(w)
	fmt.Fprintln(tw, "package\tbenchmark\truns\tns/op\tB/op\tallocs/op\t")
	for _, b := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.0f\t%.0f\t\n", strings.TrimPrefix(b.Package, "github.com/clustd/clustd/"), b.Name, b.Runs, b.NsPerOp, b.BytesPerOp, b.AllocsPerOp)
	}
	tw.Flush()
}

func writeTargets(w io.Writer, ts []Target) {
	fmt.Fprintln(w, "\nTargets (docs/design.md, \"Numbers to reach\")")
	tw := table(w)
	fmt.Fprintln(tw, "what\ttarget\tmeasured\tmet\taim\t")
	for _, t := range ts {
		aim := ""
		if t.AimMet != nil {
			aim = t.Aim + ": " + yesNo(*t.AimMet)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", t.What, t.Target, t.Measured, yesNo(t.Met), aim)
	}
	tw.Flush()
}

// unstableNote marks an idle window during which the master changed.
func unstableNote(stable bool) string {
	if stable {
		return ""
	}
	return " — NOT STABLE: the master changed during the window"
}

// busyNote gives the CPU pressure of the median trial and of the slowest.
func busyNote(samples []Sample) string {
	var ps []float64
	var slowest Sample
	for _, s := range samples {
		if s.PressurePct == nil {
			return "unknown"
		}
		ps = append(ps, *s.PressurePct)
		if s.MS > slowest.MS {
			slowest = s
		}
	}
	if len(ps) == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%%, %.0f%%", median(ps), *slowest.PressurePct)
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
