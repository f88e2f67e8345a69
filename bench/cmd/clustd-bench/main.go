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
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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

// measure runs the stages. A stage that fails is recorded in the results'
// Errors and the others still run; only an interruption stops everything.
func measure(ctx context.Context, o *options, log io.Writer) (*bench.Results, error) {
	res := newResults(o)
	var watch *bench.MachineWatch
	res.Machine, watch = bench.WatchMachine(time.Now())
	defer func() {
		watch.Finish(&res.Machine)
		res.Targets = bench.EvaluateTargets(res)
	}()

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
	r := &runner{o: o, res: res, log: log, root: root, tmp: tmp, bin: o.clustd}
	if o.stages["transfer"] || o.stages["failover"] || o.stages["idle"] || o.stages["driver-idle"] {
		if err := r.buildClustd(ctx); err != nil {
			return res, err
		}
	}
	for _, stage := range []struct {
		on  bool
		run func(context.Context) error
	}{
		{o.stages["transfer"] || o.stages["failover"], r.trials},
		{o.stages["idle"], r.idle},
		{o.stages["driver-idle"], r.driverIdle},
		{o.stages["sim"], r.sim},
		{o.stages["micro"], r.micro},
	} {
		if !stage.on {
			continue
		}
		if err := stage.run(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// newResults starts the results of a run: empty stages and what the run
// changes from a standard one.
func newResults(o *options) *bench.Results {
	res := &bench.Results{
		Quick:    o.quick,
		Failover: []bench.FailoverResult{},
		Transfer: []bench.TransferResult{},
		Idle:     []bench.IdleResult{},
		Micro:    []bench.MicroResult{},
		Errors:   []string{},
	}
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
	return res
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
