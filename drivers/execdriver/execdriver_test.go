package execdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

var (
	master  = driverclient.State{Node: "a", Role: driverproto.RoleMaster, IsMaster: true, Term: 7, Master: "a", Reason: "elected"}
	standby = driverclient.State{Node: "a", Role: driverproto.RoleFollower, Term: 8, Master: "b", Reason: "b elected"}
)

// healthLog records the health reports a driver makes.
type healthLog struct {
	mu      sync.Mutex
	reports []string
}

func (h *healthLog) set(ok bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, fmt.Sprintf("%v %s", ok, reason))
}

func (h *healthLog) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reports...)
}

// newDriver makes a driver running sh -c script in a temporary directory,
// with short timings.
func newDriver(t *testing.T, script string, edit func(*Options)) (*Driver, string, *healthLog) {
	t.Helper()
	dir := t.TempDir()
	h := &healthLog{}
	opts := Options{
		Command:     []string{"/bin/sh", "-c", script},
		Dir:         dir,
		StopTimeout: 5 * time.Second,
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  40 * time.Millisecond,
		StableAfter: time.Minute,
		Logger:      slog.New(slog.DiscardHandler),
		SetHealth:   h.set,
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever a failed test leaves running must not outlive it.
	t.Cleanup(func() { d.Close() })
	return d, dir, h
}

// waitFor polls cond until it holds or ten seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// readPid waits for a file holding a process id, written by the command
// with a rename so that it is never seen half-written.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z'
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

func TestStartAndStop(t *testing.T) {
	// The command starts a child of its own: stopping must take the whole
	// process group down, not only the process it started.
	d, dir, _ := newDriver(t, `sleep 100 & echo $! > child.tmp && mv child.tmp child
echo $$ > pid.tmp && mv pid.tmp pid
wait`, nil)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	child := readPid(t, filepath.Join(dir, "child"))
	if !alive(pid) || !alive(child) {
		t.Fatal("the command is not running")
	}
	if got := d.Running(); got != pid {
		t.Errorf("Running() = %d, want %d", got, pid)
	}
	// A second master state of the same term changes nothing.
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	if got := d.Running(); got != pid {
		t.Errorf("after a repeated promote, Running() = %d, want %d", got, pid)
	}

	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	// The demote returned: nothing of the group may be left.
	if alive(pid) || alive(child) {
		t.Errorf("after the demote returned: command alive %v, child alive %v", alive(pid), alive(child))
	}
	if got := d.Running(); got != 0 {
		t.Errorf("Running() = %d after the demote", got)
	}
	// A demote when nothing runs is fine too.
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	const grace = 300 * time.Millisecond
	d, dir, _ := newDriver(t, `trap "" TERM; echo $$ > pid.tmp && mv pid.tmp pid; sleep 100; sleep 100`,
		func(o *Options) { o.StopTimeout = grace })
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	began := time.Now()
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if alive(pid) {
		t.Fatal("the command survived the demote")
	}
	// It ignored the stop signal, so only SIGKILL after the grace ended it.
	if took < grace {
		t.Errorf("demote took %v; the command ignores SIGTERM, so it cannot be gone before the %v timeout", took, grace)
	}
}

func TestStopSignal(t *testing.T) {
	// The command exits 0 on SIGUSR1 only; SIGTERM would kill it and
	// SIGKILL would take the whole timeout, so a quick clean exit proves
	// the configured signal was sent.
	d, dir, _ := newDriver(t, `trap "echo usr1 > got; exit 0" USR1; trap "" TERM; echo $$ > pid.tmp && mv pid.tmp pid; while :; do sleep 0.01; done`,
		func(o *Options) { o.StopSignal = syscall.SIGUSR1; o.StopTimeout = time.Minute })
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	readPid(t, filepath.Join(dir, "pid"))
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	if got := lines(filepath.Join(dir, "got")); len(got) != 1 || got[0] != "usr1" {
		t.Errorf("the command did not see SIGUSR1: %q", got)
	}
}

func TestRestartWithBackoff(t *testing.T) {
	d, dir, h := newDriver(t, `echo $$ >> runs; exit 3`, nil)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "five runs", func() bool { return len(lines(filepath.Join(dir, "runs"))) >= 5 })
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	n := len(lines(filepath.Join(dir, "runs")))
	reports := h.get()
	// The backoff doubles from MinBackoff to MaxBackoff, and every report
	// says why the driver is unhealthy.
	want := []string{
		"; restart 1 in 10ms",
		"; restart 2 in 20ms",
		"; restart 3 in 40ms",
		"; restart 4 in 40ms",
	}
	for i, w := range want {
		if i >= len(reports) || !strings.HasSuffix(reports[i], w) || !strings.HasPrefix(reports[i], "false /bin/sh exit status 3 after ") {
			t.Fatalf("health reports %q: report %d should contain %q", reports, i, w)
		}
	}
	// The demote ends the crash loop, and the driver is healthy again.
	if last := reports[len(reports)-1]; last != "true " {
		t.Errorf("last health report %q, want healthy after the demote", last)
	}
	// Nothing restarts it once demoted.
	if got := len(lines(filepath.Join(dir, "runs"))); got != n {
		t.Errorf("the command ran again after the demote: %d runs, then %d", n, got)
	}
}

func TestHealthyAgainOnceItStaysUp(t *testing.T) {
	// Two quick failures, then it stays up.
	d, dir, h := newDriver(t, `n=$(cat runs 2>/dev/null | wc -l); echo $$ >> runs
if [ "$n" -ge 2 ]; then exec sleep 100; fi
exit 1`, func(o *Options) { o.StableAfter = time.Second })
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a healthy report after the crash loop", func() bool {
		r := h.get()
		return len(r) > 0 && r[len(r)-1] == "true "
	})
	r := h.get()
	if len(r) != 3 || !strings.HasPrefix(r[0], "false /bin/sh exit status 1") || !strings.HasPrefix(r[1], "false ") {
		t.Errorf("health reports %q, want two failures then healthy", r)
	}
	if runs := lines(filepath.Join(dir, "runs")); len(runs) != 3 || !alive(atoi(runs[2])) {
		t.Errorf("runs %q: want the third to be running", runs)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestCannotStart(t *testing.T) {
	d, _, h := newDriver(t, "", func(o *Options) { o.Command = []string{"/nonexistent/clustd-test-command"} })
	err := d.Trigger(context.Background(), master)
	if err == nil || !strings.Contains(err.Error(), "starting /nonexistent/clustd-test-command") {
		t.Fatalf("Trigger = %v, want a start error", err)
	}
	// It keeps trying, reporting why it is unhealthy.
	waitFor(t, "a second attempt", func() bool {
		r := h.get()
		return len(r) > 0 && strings.Contains(r[len(r)-1], "restart 2 in")
	})
	if r := h.get(); !strings.Contains(r[0], "cannot start /nonexistent/clustd-test-command: ") {
		t.Errorf("health report %q does not say why", r[0])
	}
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironment(t *testing.T) {
	d, dir, _ := newDriver(t, `env > env.tmp && mv env.tmp env; exec sleep 100`, func(o *Options) {
		o.Env = []string{"KEEP=1", "CLUSTD_ROLE=stale"}
	})
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	var env []string
	waitFor(t, "the environment", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "env"))
		env = strings.Split(string(b), "\n")
		return err == nil
	})
	for _, want := range []string{"KEEP=1", "CLUSTD_ROLE=master", "CLUSTD_TERM=7", "CLUSTD_MASTER=a", "CLUSTD_NODE=a", "CLUSTD_REASON=elected"} {
		found := false
		for _, e := range env {
			found = found || e == want
		}
		if !found {
			t.Errorf("%s missing from the command's environment %q", want, env)
		}
	}
	for _, e := range env {
		if e == "CLUSTD_ROLE=stale" {
			t.Error("the inherited CLUSTD_ROLE was not replaced")
		}
	}
}

func TestLeaseLossStopsIt(t *testing.T) {
	// What driverclient does when the lease runs out with no daemon to
	// renew it: cancel the promote's context, then call Trigger with a
	// demote it made up.
	d, dir, _ := newDriver(t, `echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Trigger(ctx, master); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	cancel()
	lost := driverclient.State{Node: "a", Role: driverproto.RoleFollower, Term: 7, Reason: "the lease of term 7 ran out", Local: true}
	if err := d.Trigger(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("the command survived the lease")
	}
}

func TestCancelledPromoteStartsNothing(t *testing.T) {
	d, dir, _ := newDriver(t, `echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Trigger(ctx, master); !errors.Is(err, context.Canceled) {
		t.Fatalf("Trigger = %v, want context.Canceled", err)
	}
	if d.Running() != 0 {
		t.Error("a cancelled promote started the command")
	}
	if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil {
		t.Error("a cancelled promote ran the command")
	}
}

func TestNewTermRestarts(t *testing.T) {
	d, dir, _ := newDriver(t, `echo $CLUSTD_TERM > term.tmp && mv term.tmp term.$$; echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, nil)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	first := readPid(t, filepath.Join(dir, "pid"))
	next := master
	next.Term = 9
	if err := d.Trigger(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if alive(first) {
		t.Error("the command of the old term still runs")
	}
	var second int
	waitFor(t, "the restart", func() bool {
		second = readPid(t, filepath.Join(dir, "pid"))
		return second != first
	})
	if got := lines(filepath.Join(dir, fmt.Sprintf("term.%d", second))); len(got) != 1 || got[0] != "9" {
		t.Errorf("the restarted command sees term %q, want 9", got)
	}
}

func TestClose(t *testing.T) {
	d, dir, _ := newDriver(t, `echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, nil)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("Close left the command running")
	}
	if err := d.Trigger(context.Background(), master); err == nil {
		t.Error("a promote after Close succeeded")
	}
}

func TestNewChecks(t *testing.T) {
	for _, o := range []Options{
		{},
		{Command: []string{""}},
		{Command: []string{"true"}, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		{Command: []string{"true"}, StopTimeout: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "hup": syscall.SIGHUP, "sigquit": syscall.SIGQUIT, "10": syscall.Signal(10)} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "TERMINATE", "0", "99"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
}

// TestHelperDriver is not a test: TestDiesWithTheDriver runs it in a child
// process as a driver that is then killed.
func TestHelperDriver(t *testing.T) {
	pidFile := os.Getenv("EXECDRIVER_TEST_HELPER")
	if pidFile == "" {
		t.Skip("only run by TestDiesWithTheDriver")
	}
	d, err := New(Options{Command: []string{"/bin/sh", "-c", `echo $$ > ` + pidFile + `.tmp && mv ` + pidFile + `.tmp ` + pidFile + `; exec sleep 100`}, RuntimeDir: filepath.Dir(pidFile)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

func TestDiesWithTheDriver(t *testing.T) {
	// A driver killed with SIGKILL cannot stop its command at the end of
	// the lease; the kernel must.
	pidFile := filepath.Join(t.TempDir(), "pid")
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperDriver$")
	helper.Env = append(os.Environ(), "EXECDRIVER_TEST_HELPER="+pidFile)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	pid := readPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	waitFor(t, "the command to die with its driver", func() bool { return !alive(pid) })
}

func TestOneCrashAfterALongRunIsNoFailure(t *testing.T) {
	// The first run outlasts StableAfter and then dies; the restart is
	// quiet, because one crash in a long while is repaired in place.
	d, dir, h := newDriver(t, `n=$(cat runs 2>/dev/null | wc -l); echo $$ >> runs
if [ "$n" -ge 1 ]; then exec sleep 100; fi
sleep 0.3; exit 1`, func(o *Options) { o.StableAfter = 100 * time.Millisecond })
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart", func() bool { return len(lines(filepath.Join(dir, "runs"))) == 2 })
	if r := h.get(); len(r) != 0 {
		t.Errorf("health reports %q, want none", r)
	}
}

func syscallGetpgid(pid int) (int, error) { return syscall.Getpgid(pid) }
