package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/clustd/clustd/bench"
)

// runner runs the stages of one run into res. Each stage records its
// failures in res and goes on; it returns an error only when the run is
// interrupted.
type runner struct {
	o   *options
	res *bench.Results
	log io.Writer
	// root is the module's directory, tmp the run's directory and bin the
	// clustd executable measured.
	root, tmp, bin string
}

// fail records that a stage could not finish, unless the run was
// interrupted, which it returns.
func (r *runner) fail(ctx context.Context, stage string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.res.Errors = append(r.res.Errors, stage+": "+err.Error())
	fmt.Fprintf(r.log, "%s: %v\n", stage, err)
	return nil
}

// buildClustd builds the daemon into the run's directory, unless -clustd
// named one.
func (r *runner) buildClustd(ctx context.Context) error {
	if r.bin != "" {
		return nil
	}
	r.bin = filepath.Join(r.tmp, "clustd")
	fmt.Fprintln(r.log, "building clustd")
	return goBuild(ctx, r.root, r.bin, "./cmd/clustd", r.o.overlay)
}

// trials runs the transfer and failover trials on each cluster size and
// profile.
func (r *runner) trials(ctx context.Context) error {
	o := r.o
	ft, tt := o.failoverTrials, o.transferTrials
	if !o.stages["failover"] {
		ft = 0
	}
	if !o.stages["transfer"] {
		tt = 0
	}
	for _, p := range o.profiles {
		for _, n := range o.nodes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(r.log, "cluster of %d, %s profile: %d transfers, %d kills\n", n, p, tt, ft)
			tr, fr, err := bench.RunScenario(ctx, bench.ScenarioConfig{
				Bin: r.bin, Dir: filepath.Join(r.tmp, fmt.Sprintf("trials-%d-%s", n, p)),
				Nodes: n, Profile: p, FailoverTrials: ft, TransferTrials: tt, Timing: o.timing, Env: o.env, LogLevel: o.logLevel, Log: r.log,
			})
			if tr != nil && tt > 0 {
				r.res.Transfer = append(r.res.Transfer, *tr)
			}
			if fr != nil && ft > 0 {
				r.res.Failover = append(r.res.Failover, *fr)
			}
			if err != nil {
				if err := r.fail(ctx, fmt.Sprintf("trials on %d nodes, %s", n, p), err); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// idle measures an idle 5-node cluster of each profile with drivers, a
// default one without (-idle-bare) and, with -pprof, one under the
// profiler.
func (r *runner) idle(ctx context.Context) error {
	o := r.o
	type idleRun struct {
		profile string
		drivers bool
	}
	var runs []idleRun
	for _, p := range o.profiles {
		runs = append(runs, idleRun{p, true})
	}
	if o.idleBare {
		runs = append(runs, idleRun{"default", false})
	}
	for _, ir := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res, err := bench.RunIdle(ctx, bench.IdleConfig{
			Bin: r.bin, Dir: filepath.Join(r.tmp, fmt.Sprintf("idle-%s-%v", ir.profile, ir.drivers)),
			Nodes: 5, Profile: ir.profile, Drivers: ir.drivers, Settle: o.idleSettle, Window: o.idle, Timing: o.timing, Env: o.env, Log: r.log,
		})
		if err != nil {
			if err := r.fail(ctx, fmt.Sprintf("idle %s", ir.profile), err); err != nil {
				return err
			}
			continue
		}
		r.res.Idle = append(r.res.Idle, *res)
	}
	if o.pprofDir != "" {
		if err := profileIdle(ctx, o, r.root, r.tmp, r.bin, r.log); err != nil {
			return r.fail(ctx, "idle under pprof", err)
		}
	}
	return nil
}

// driverIdle measures what a master's driver costs beside a follower's:
// the one gets lease renewals, the other only pings.
func (r *runner) driverIdle(ctx context.Context) error {
	o := r.o
	for _, p := range o.profiles {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res, err := bench.RunDriverIdle(ctx, bench.DriverIdleConfig{
			Bin: r.bin, Dir: filepath.Join(r.tmp, "driver-idle-"+p), Nodes: 3, Profile: p,
			Timing: o.timing, Settle: o.idleSettle, Window: o.idle, Log: r.log,
		})
		if err != nil {
			if err := r.fail(ctx, "driver idle "+p, err); err != nil {
				return err
			}
			continue
		}
		r.res.DriverIdle = append(r.res.DriverIdle, *res)
	}
	return nil
}

// sim times simulated hours of a 5-node cluster.
func (r *runner) sim(ctx context.Context) error {
	fmt.Fprintln(r.log, "simulator speed")
	res, err := bench.RunSim(ctx, bench.SimConfig{Nodes: 5, Profile: "default", Duration: time.Hour, Runs: r.o.simRuns, Log: r.log})
	if res != nil {
		r.res.Sim = res
	}
	if err != nil {
		return r.fail(ctx, "sim", err)
	}
	return nil
}

// micro runs the election core's and the simulator's Go benchmarks.
func (r *runner) micro(ctx context.Context) error {
	fmt.Fprintln(r.log, "Go micro-benchmarks")
	res, err := bench.RunMicro(ctx, r.root, r.o.microCount, []string{"./election", "./sim"}, r.log)
	r.res.Micro = append(r.res.Micro, res...)
	if err != nil {
		return r.fail(ctx, "micro-benchmarks", err)
	}
	return nil
}

// profileIdle runs the idle default cluster with clustd-prof and keeps each
// daemon's CPU and allocation profiles of the window.
func profileIdle(ctx context.Context, o *options, root, tmp, bin string, log io.Writer) error {
	dir, err := filepath.Abs(o.pprofDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	prof := filepath.Join(tmp, "clustd-prof")
	fmt.Fprintln(log, "building clustd-prof")
	if err := goBuild(ctx, root, prof, "./bench/cmd/clustd-prof", o.overlay); err != nil {
		return err
	}
	ids := []string{"n1", "n2", "n3", "n4", "n5"}
	// The daemons profile from start-up to the end of the window; the
	// cluster needs a few seconds to elect and settle first, so the CPU
	// profile starts after a delay that covers that.
	delay := 10 * time.Second
	r, err := bench.RunIdle(ctx, bench.IdleConfig{
		Bin: bin, Dir: filepath.Join(tmp, "idle-pprof"),
		Nodes: 5, Profile: "default", Drivers: true, Settle: delay, Window: o.idle, Timing: o.timing, Env: o.env, Log: log,
		RunBin: prof,
		RunArgs: func(i int) []string {
			return []string{"--cpuprofile", filepath.Join(dir, ids[i]+".cpu.pprof"),
				"--allocprofile", filepath.Join(dir, ids[i]+".alloc.pprof"),
				"--after", delay.String(), "--for", o.idle.String()}
		},
	})
	if err != nil {
		return err
	}
	for _, d := range r.Daemons {
		fmt.Fprintf(log, "  %s (%s): %.3f%% of a core under the profiler; %s/%s.cpu.pprof\n", d.Node, d.Role, d.CPUPct, dir, d.Node)
	}
	return nil
}
