// Command clustd-bench measures clustd on this machine: failover after kill
// -9 of the master and planned transfers on real daemons over loopback, the
// idle cost of a 5-node cluster, the simulator's speed and the election
// core's micro-benchmarks. It prints a table and writes the same figures as
// JSON (bench/results.json by default). `make bench` runs it in full, `make
// bench-quick` with -quick; BENCHMARKS.md explains the method.
//
// Every daemon it starts is killed when it finishes, fails or is
// interrupted (Ctrl-C), and dies with it if it is killed itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clustd/clustd/bench"
)

type options struct {
	quick          bool
	out            string
	clustd         string
	stages         map[string]bool
	nodes          []int
	profiles       []string
	failoverTrials int
	transferTrials int
	idle           time.Duration
	idleSettle     time.Duration
	idleBare       bool
	simRuns        int
	microCount     int
	keep           bool
	pprofDir       string
	env            []string
	overlay        string
	timing         []string
	logLevel       string
}

func main() {
	os.Exit(run())
}

func run() int {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustd-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := measure(ctx, o, os.Stderr)
	fmt.Println()
	bench.WriteTable(os.Stdout, res)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "clustd-bench: interrupted; every daemon was stopped;", o.out, "was not written")
		return 130
	}
	if o.out != "" {
		if err := res.Save(o.out); err != nil {
			fmt.Fprintln(os.Stderr, "clustd-bench:", err)
			return 1
		}
		fmt.Fprintf(os.Stdout, "\nwrote %s\n", o.out)
	}
	if err != nil || len(res.Errors) > 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("clustd-bench", flag.ContinueOnError)
	o := &options{}
	fs.BoolVar(&o.quick, "quick", false, "few trials and short windows, for a quick look")
	fs.StringVar(&o.out, "out", "bench/results.json", "where to write the JSON results (empty: nowhere)")
	fs.StringVar(&o.clustd, "clustd", "", "clustd executable to measure (default: build ./cmd/clustd)")
	stages := fs.String("stages", "transfer,failover,idle,driver-idle,sim,micro", "stages to run, comma-separated")
	nodes := fs.String("nodes", "3,5", "cluster sizes for the failover and transfer trials")
	profiles := fs.String("profiles", "default,fast", "timing profiles for the failover and transfer trials and the idle cluster")
	fs.IntVar(&o.failoverTrials, "trials", 0, "kills per cluster size and profile (default 30, quick 8)")
	fs.IntVar(&o.transferTrials, "transfer-trials", 0, "planned transfers per cluster size and profile (default 30, quick 8)")
	fs.DurationVar(&o.idle, "idle", 0, "idle measurement window (default 60s, quick 15s)")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "how long an idle cluster runs before the window opens")
	idleBare := fs.String("idle-bare", "", "also measure an idle default cluster with no drivers: true or false (default true, quick false)")
	fs.IntVar(&o.simRuns, "sim-runs", 0, "simulated hours to run (default 5, quick 2)")
	fs.IntVar(&o.microCount, "micro-count", 0, "-count for the Go micro-benchmarks (default 5, quick 1)")
	fs.BoolVar(&o.keep, "keep", false, "keep the clusters' directories (configuration, state, logs)")
	fs.Func("daemon-env", "KEY=VALUE added to every daemon's environment, for experiments (repeatable; recorded in the results)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE")
		}
		o.env = append(o.env, v)
		return nil
	})
	fs.Func("timing", "KEY=VALUE added to every daemon's timing section, e.g. heartbeat=100ms, for experiments (repeatable; recorded in the results)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE")
		}
		o.timing = append(o.timing, v)
		return nil
	})
	fs.StringVar(&o.logLevel, "log-level", "", "the daemons' log level in the trials (debug shows every election step; use with -keep)")
	fs.StringVar(&o.overlay, "overlay", "", "build clustd (and clustd-prof) with go build -overlay FILE: measure a proposed change without editing the tree (recorded in the results)")
	fs.StringVar(&o.pprofDir, "pprof", "", "also run the idle default cluster under clustd-prof and write each daemon's CPU and allocation profiles here")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.stages = map[string]bool{}
	for _, s := range strings.Split(*stages, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "transfer", "failover", "idle", "driver-idle", "sim", "micro":
			o.stages[s] = true
		case "":
		default:
			return nil, fmt.Errorf("-stages: unknown stage %q (transfer, failover, idle, driver-idle, sim, micro)", s)
		}
	}
	for _, s := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 9 {
			return nil, fmt.Errorf("-nodes: %q is not a cluster size from 2 to 9", s)
		}
		o.nodes = append(o.nodes, n)
	}
	for _, p := range strings.Split(*profiles, ",") {
		p = strings.TrimSpace(p)
		if p != "default" && p != "fast" {
			return nil, fmt.Errorf("-profiles: %q is not a timing profile (default, fast)", p)
		}
		o.profiles = append(o.profiles, p)
	}
	pick := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	pick(&o.failoverTrials, 30, 8)
	pick(&o.transferTrials, 30, 8)
	pick(&o.simRuns, 5, 2)
	pick(&o.microCount, 5, 1)
	if o.idle <= 0 {
		o.idle = 60 * time.Second
		if o.quick {
			o.idle = 15 * time.Second
		}
	}
	switch *idleBare {
	case "":
		o.idleBare = !o.quick
	case "true", "false":
		o.idleBare = *idleBare == "true"
	default:
		return nil, fmt.Errorf("-idle-bare %q: true or false", *idleBare)
	}
	return o, nil
}

// measure runs the stages. A stage that fails is recorded in the results'
// Errors and the others still run; only an interruption stops everything.
func measure(ctx context.Context, o *options, log io.Writer) (*bench.Results, error) {
	start := time.Now()
	res := &bench.Results{
		Quick:    o.quick,
		Failover: []bench.FailoverResult{},
		Transfer: []bench.TransferResult{},
		Idle:     []bench.IdleResult{},
		Micro:    []bench.MicroResult{},
		Errors:   []string{},
	}
	res.Machine = machine(start)
	res.Experiment = []string{}
	for _, e := range o.env {
		res.Experiment = append(res.Experiment, "env "+e)
	}
	for _, t := range o.timing {
		res.Experiment = append(res.Experiment, "timing "+t)
	}
	if o.clustd != "" {
		res.Experiment = append(res.Experiment, "daemons from "+o.clustd)
	}
	if o.overlay != "" {
		res.Experiment = append(res.Experiment, "built with -overlay "+o.overlay)
	}
	cpu0 := bench.ReadCPUTimes()
	psi := bench.StartPressure()
	defer func() {
		res.Machine.BusyPct, res.Machine.StealPct = bench.BusyPct(cpu0, bench.ReadCPUTimes())
		res.Machine.PressurePct = psi.Pct()
		res.Machine.LoadEnd = bench.LoadAvg()
		res.Machine.WallS = time.Since(start).Round(time.Second).Seconds()
		res.Targets = bench.EvaluateTargets(res)
	}()
	fail := func(stage string, err error) {
		res.Errors = append(res.Errors, stage+": "+err.Error())
		fmt.Fprintf(log, "%s: %v\n", stage, err)
	}

	root, err := moduleRoot()
	if err != nil {
		return res, err
	}
	res.Machine.Commit = commit(root)
	tmp, err := os.MkdirTemp("", "clustd-bench-")
	if err != nil {
		return res, err
	}
	if o.keep {
		fmt.Fprintf(log, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	needDaemons := o.stages["transfer"] || o.stages["failover"] || o.stages["idle"] || o.stages["driver-idle"]
	bin := o.clustd
	if needDaemons && bin == "" {
		bin = filepath.Join(tmp, "clustd")
		fmt.Fprintln(log, "building clustd")
		if err := goBuild(ctx, root, bin, "./cmd/clustd", o.overlay); err != nil {
			return res, err
		}
	}

	if o.stages["transfer"] || o.stages["failover"] {
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
					return res, ctx.Err()
				}
				fmt.Fprintf(log, "cluster of %d, %s profile: %d transfers, %d kills\n", n, p, tt, ft)
				tr, fr, err := bench.RunScenario(ctx, bench.ScenarioConfig{
					Bin: bin, Dir: filepath.Join(tmp, fmt.Sprintf("trials-%d-%s", n, p)),
					Nodes: n, Profile: p, FailoverTrials: ft, TransferTrials: tt, Timing: o.timing, Env: o.env, LogLevel: o.logLevel, Log: log,
				})
				if tr != nil && tt > 0 {
					res.Transfer = append(res.Transfer, *tr)
				}
				if fr != nil && ft > 0 {
					res.Failover = append(res.Failover, *fr)
				}
				if err != nil {
					if ctx.Err() != nil {
						return res, ctx.Err()
					}
					fail(fmt.Sprintf("trials on %d nodes, %s", n, p), err)
				}
			}
		}
	}

	if o.stages["idle"] {
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
				return res, ctx.Err()
			}
			r, err := bench.RunIdle(ctx, bench.IdleConfig{
				Bin: bin, Dir: filepath.Join(tmp, fmt.Sprintf("idle-%s-%v", ir.profile, ir.drivers)),
				Nodes: 5, Profile: ir.profile, Drivers: ir.drivers, Settle: o.idleSettle, Window: o.idle, Timing: o.timing, Env: o.env, Log: log,
			})
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				fail(fmt.Sprintf("idle %s", ir.profile), err)
				continue
			}
			res.Idle = append(res.Idle, *r)
		}
		if o.pprofDir != "" {
			if err := profileIdle(ctx, o, root, tmp, bin, log); err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				fail("idle under pprof", err)
			}
		}
	}

	if o.stages["driver-idle"] {
		// What a master's driver costs beside a follower's: the one gets
		// lease renewals, the other only pings.
		for _, p := range o.profiles {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			r, err := bench.RunDriverIdle(ctx, bench.DriverIdleConfig{
				Bin: bin, Dir: filepath.Join(tmp, "driver-idle-"+p), Nodes: 3, Profile: p,
				Timing: o.timing, Settle: o.idleSettle, Window: o.idle, Log: log,
			})
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				fail("driver idle "+p, err)
				continue
			}
			res.DriverIdle = append(res.DriverIdle, *r)
		}
	}

	if o.stages["sim"] {
		fmt.Fprintln(log, "simulator speed")
		r, err := bench.RunSim(ctx, bench.SimConfig{Nodes: 5, Profile: "default", Duration: time.Hour, Runs: o.simRuns, Log: log})
		if r != nil {
			res.Sim = r
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			fail("sim", err)
		}
	}

	if o.stages["micro"] {
		fmt.Fprintln(log, "Go micro-benchmarks")
		r, err := bench.RunMicro(ctx, root, o.microCount, []string{"./election", "./sim"}, log)
		res.Micro = append(res.Micro, r...)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			fail("micro-benchmarks", err)
		}
	}
	return res, nil
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

func machine(start time.Time) bench.Machine {
	return bench.Machine{
		Cores:     runtime.NumCPU(),
		CPUModel:  bench.CPUModel(),
		Kernel:    bench.KernelRelease(),
		GoVersion: runtime.Version(),
		Date:      start.Format(time.RFC3339),
		LoadStart: bench.LoadAvg(),
	}
}

// moduleRoot asks the go command where go.mod is.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run clustd-bench inside the clustd module")
	}
	return filepath.Dir(gomod), nil
}

// commit names the source revision, read-only: GIT_OPTIONAL_LOCKS=0 keeps
// git status from rewriting the index.
func commit(root string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return "unknown"
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "-dirty"
	}
	return rev
}

func goBuild(ctx context.Context, root, out, pkg, overlay string) error {
	args := []string{"build", "-o", out}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	// As make build builds it: without cgo the daemon needs no libc, and
	// its resident set is 1.3 MB smaller.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
