package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devBinary is the clustd binary that the tests run as a separate process,
// built once by TestMain; errDevBinary says why it could not be.
var devBinary, errDevBinary = "", errors.New("not built")

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		dir, errDevBinary = os.MkdirTemp("", "clustd-test-")
		if errDevBinary == nil {
			devBinary = filepath.Join(dir, "clustd")
			out, err := exec.Command("go", "build", "-o", devBinary, ".").CombinedOutput()
			errDevBinary = nil
			if err != nil {
				errDevBinary = fmt.Errorf("go build: %v\n%s", err, out)
			}
		}
	}
	// A failed build fails only the tests that need the binary.
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// devProcess is clustd dev running as a child of the test, with its output.
type devProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
}

func (p *devProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *devProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startDev(t *testing.T, args ...string) *devProcess {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real cluster for a while")
	}
	if errDevBinary != nil {
		t.Fatal(errDevBinary)
	}
	p := &devProcess{cmd: exec.Command(devBinary, append([]string{"dev"}, args...)...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// Only after a failure is anything left to clean up.
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		out := p.output()
		if t.Failed() {
			// Daemons that clustd dev failed to stop; a pid is only
			// reused after a daemon is gone, which is unlikely so soon.
			for _, pid := range devPIDs(out) {
				if syscall.Kill(pid, 0) == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if dir := devDir(out); dir != "" {
			os.RemoveAll(dir)
		}
	})
	return p
}

// waitOutput waits until ok holds for the output, failing the test if it
// does not within d or if clustd dev exits first.
func (p *devProcess) waitOutput(t *testing.T, d time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		out := p.output()
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; output:\n%s", what, d, out)
		}
		select {
		case <-p.exited:
			if out := p.output(); !ok(out) {
				t.Fatalf("clustd dev exited (%v) before showing %s; output:\n%s", p.err, what, out)
			}
		case <-tick.C:
		}
	}
}

var (
	devPIDRE    = regexp.MustCompile(`(?m)(?:started|restarted) (n\d+) \(pid (\d+)\)`)
	devDirRE    = regexp.MustCompile(`(?m)^configuration, state and logs in (\S+) `)
	devMasterRE = regexp.MustCompile(`(?m)\bn\d+ master term (\d+)`)
	devKillRE   = regexp.MustCompile(`(?m)chaos: killed master (n\d+) \(term (\d+),`)
	devNewRE    = regexp.MustCompile(`(?m)new master (n\d+) at term (\d+) after ([0-9.]+)s without one`)
)

// devPIDs lists every daemon process that clustd dev says it started.
func devPIDs(out string) []int {
	var pids []int
	for _, m := range devPIDRE.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[2])
		pids = append(pids, pid)
	}
	return pids
}

func devDir(out string) string {
	if m := devDirRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// devFailover finds the first kill of a master that a new master with a
// higher term followed, and describes it.
func devFailover(out string) (string, bool) {
	for _, k := range devKillRE.FindAllStringSubmatchIndex(out, -1) {
		term, _ := strconv.ParseUint(out[k[4]:k[5]], 10, 64)
		rest := out[k[1]:]
		for _, m := range devNewRE.FindAllStringSubmatch(rest, -1) {
			if t2, _ := strconv.ParseUint(m[2], 10, 64); t2 > term {
				return fmt.Sprintf("killed %s at term %d, then %s at term %d after %ss", out[k[2]:k[3]], term, m[1], t2, m[3]), true
			}
		}
	}
	return "", false
}

func TestDevChaos(t *testing.T) {
	p := startDev(t, "--nodes", "3", "--chaos", "--chaos-interval", "3s", "--profile", "fast")
	out := p.waitOutput(t, 30*time.Second, "three started nodes and the directory", func(s string) bool {
		return len(devPIDs(s)) >= 3 && devDir(s) != ""
	})
	dir := devDir(out)
	if _, err := os.Stat(filepath.Join(dir, "n1.yml")); err != nil {
		t.Errorf("the configuration is not where the output says: %v", err)
	}

	// Let it run until it has killed a master, seen a new one, and
	// restarted a node: what the checks below look for.
	p.waitOutput(t, 60*time.Second, "kill of the master followed by a new master with a higher term, and a restart", func(s string) bool {
		_, ok := devFailover(s)
		return ok && len(devPIDs(s)) >= 4
	})

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("clustd dev still running 10s after SIGINT; output:\n%s", p.output())
	}
	out = p.output()
	if p.err != nil {
		t.Errorf("clustd dev after SIGINT: %v, want exit status 0", p.err)
	}
	if !devMasterRE.MatchString(out) {
		t.Error("the output never shows a master")
	}
	if f, ok := devFailover(out); ok {
		t.Log(f)
	}

	pids := devPIDs(out)
	if len(pids) < 4 {
		t.Errorf("%d daemon processes started, want the 3 nodes and at least one restart", len(pids))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("daemon pid %d is still there after clustd dev exited (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s not removed: %v", dir, err)
	}
	if !strings.Contains(out, "removed "+dir) {
		t.Error("the output does not say that the directory was removed")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestDevKeep checks that --keep leaves the directory with the logs, and
// that a cluster without --chaos stops cleanly too.
func TestDevKeep(t *testing.T) {
	p := startDev(t, "--nodes", "2", "--profile", "fast", "--keep")
	p.waitOutput(t, 30*time.Second, "a master", devMasterRE.MatchString)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("clustd dev still running 10s after SIGINT; output:\n%s", p.output())
	}
	out := p.output()
	if p.err != nil {
		t.Errorf("clustd dev after SIGINT: %v, want exit status 0; output:\n%s", p.err, out)
	}
	dir := devDir(out)
	if dir == "" {
		t.Fatalf("no directory in the output:\n%s", out)
	}
	for _, f := range []string{"n1.log", "n2.log", "n1.yml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--keep: %v", err)
		}
	}
	if !strings.Contains(out, "kept "+dir) {
		t.Errorf("the output does not say where the directory was kept:\n%s", out)
	}
}

func TestDevUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "0"}, "--nodes 0: must be between 1 and 9"},
		{[]string{"--nodes", "10"}, "--nodes 10: must be between 1 and 9"},
		{[]string{"--chaos", "--nodes", "2"}, "--chaos needs at least 3 nodes"},
		{[]string{"--chaos-interval", "0s"}, "--chaos-interval 0s: must be positive"},
		{[]string{"--profile", "slow"}, "--profile: unknown timing profile"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		app := newApp()
		var stdout, stderr bytes.Buffer
		app.Writer, app.ErrWriter = &stdout, &stderr
		err := app.RunContext(context.Background(), append([]string{"clustd", "dev"}, tc.args...))
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, tc.want) {
			t.Errorf("clustd dev %s: %v, want exit status 2 and %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("clustd dev %s printed %q before refusing", strings.Join(tc.args, " "), stdout.String())
		}
	}
}
