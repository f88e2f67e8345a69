package execdriver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/drivers/common"
	"github.com/clustd/clustd/internal/drainlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	drainlog.Cleanup()
	os.Exit(code)
}

// needCgroups skips the test, loudly, where the driver gets no cgroups.
func needCgroups(t *testing.T, d *Driver) {
	t.Helper()
	if d.Cgroups() == nil {
		t.Skip("SKIPPED: no cgroup v2 this process may create cgroups in (needs root or a delegated subtree, and Linux 5.14): the cgroup path is untested here")
	}
}

// sleepers returns the processes whose command line is exactly sleep arg.
func sleepers(arg string) []int {
	want := []byte("sleep\x00" + arg + "\x00")
	names, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(b, want) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(name, "/")[2])
		if alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// setsidScript forks a child that leaves the process group with setsid,
// then becomes a second sleeper itself; arg tells its sleepers apart from
// every other process on the machine.
func setsidScript(arg string) string {
	return `setsid sleep ` + arg + ` & echo $! > child.tmp && mv child.tmp child; echo $$ > pid.tmp && mv pid.tmp pid; exec sleep ` + arg
}

func TestSetsidChildIsStopped(t *testing.T) {
	arg := strconv.Itoa(100000 + rand.IntN(100000))
	d, dir, _ := newDriver(t, setsidScript(arg), nil)
	needCgroups(t, d)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	// The kernel may still refuse to start a process in a cgroup (a
	// seccomp filter without clone3, say): the driver then falls back.
	needCgroups(t, d)
	pid := readPid(t, filepath.Join(dir, "pid"))
	child := readPid(t, filepath.Join(dir, "child"))
	waitFor(t, "both sleepers", func() bool { return len(sleepers(arg)) == 2 })
	if pg, _ := syscallGetpgid(child); pg == pid {
		t.Fatalf("the child %d is still in the command's process group: setsid did not run", child)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", child))
	if err != nil || !strings.Contains(string(cg), "clustd-exec-") {
		t.Fatalf("the child's cgroup is %q (%v), want one of the driver's", cg, err)
	}
	cgDir := filepath.Join(d.Cgroups().Dir(), filepath.Base(strings.TrimSpace(strings.SplitN(string(cg), "0::", 2)[1])))
	if _, err := os.Stat(cgDir); err != nil {
		t.Fatalf("the command's cgroup: %v", err)
	}

	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	if left := sleepers(arg); len(left) > 0 {
		t.Errorf("after the demote, processes %v of the command are left", left)
	}
	if alive(pid) || alive(child) {
		t.Errorf("after the demote: command alive %v, setsid child alive %v", alive(pid), alive(child))
	}
	if _, err := os.Stat(cgDir); !os.IsNotExist(err) {
		t.Errorf("the command's cgroup %s is still there after the demote (%v)", cgDir, err)
	}
}

func TestFallbackToProcessGroups(t *testing.T) {
	// Forced, as where cgroups are unavailable: the driver says so once,
	// and still stops the whole process group.
	var logs bytes.Buffer
	arg := strconv.Itoa(200000 + rand.IntN(100000))
	d, dir, _ := newDriver(t, `sleep `+arg+` & echo $! > child.tmp && mv child.tmp child; echo $$ > pid.tmp && mv pid.tmp pid; wait`, func(o *Options) {
		o.NoCgroup = true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if d.Cgroups() != nil {
		t.Fatal("NoCgroup: the driver has cgroups")
	}
	for range 2 {
		if err := d.Trigger(context.Background(), master); err != nil {
			t.Fatal(err)
		}
		pid := readPid(t, filepath.Join(dir, "pid"))
		child := readPid(t, filepath.Join(dir, "child"))
		if pg, _ := syscallGetpgid(child); pg != pid {
			t.Fatalf("the child is in process group %d, want the command's %d", pg, pid)
		}
		if err := d.Trigger(context.Background(), standby); err != nil {
			t.Fatal(err)
		}
		if alive(pid) || alive(child) || len(sleepers(arg)) > 0 {
			t.Fatalf("after the demote: command alive %v, child alive %v", alive(pid), alive(child))
		}
		os.Remove(filepath.Join(dir, "pid"))
		os.Remove(filepath.Join(dir, "child"))
	}
	if n := strings.Count(logs.String(), "runs in a process group of its own"); n != 1 {
		t.Errorf("the fallback was announced %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "cgroup=/") {
		t.Errorf("a command ran in a cgroup:\n%s", logs.String())
	}
}

func TestCgroupRefusedAtStart(t *testing.T) {
	// Cgroups that worked at start-up may fail later (a parent removed, a
	// limit on descendants reached): the command starts all the same, in a
	// process group, and the driver says once that it does from now on.
	var logs bytes.Buffer
	d, dir, _ := newDriver(t, `echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	d.cgroups.Store(&common.Cgroups{}) // one that cannot make a cgroup
	for range 2 {
		if err := d.Trigger(context.Background(), master); err != nil {
			t.Fatal(err)
		}
		pid := readPid(t, filepath.Join(dir, "pid"))
		if err := d.Trigger(context.Background(), standby); err != nil {
			t.Fatal(err)
		}
		if alive(pid) {
			t.Fatal("the command survived the demote")
		}
		os.Remove(filepath.Join(dir, "pid"))
	}
	if d.Cgroups() != nil {
		t.Error("the driver still uses cgroups")
	}
	if n := strings.Count(logs.String(), "cannot be started in a cgroup"); n != 1 {
		t.Errorf("the fallback was announced %d times, want once:\n%s", n, logs.String())
	}
}

func TestOverrunIsAnError(t *testing.T) {
	// A demote that begins after its deadline cannot end before it: the
	// command is killed at once, and the demote says it was late.
	var logs bytes.Buffer
	d, dir, h := newDriver(t, `echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 100`, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	err := d.Trigger(ctx, standby)
	if err == nil || !strings.Contains(err.Error(), "past the demote's deadline") {
		t.Errorf("Trigger = %v, want an overrun", err)
	}
	if alive(pid) {
		t.Fatal("the command survived the demote")
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="demote overran its deadline`) {
		t.Errorf("the overrun was not logged at error level:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "command killed") {
		t.Errorf("the command was not killed at once:\n%s", logs.String())
	}
	// The command did stop: the node may be master again.
	if r := h.get(); len(r) > 0 && !strings.HasPrefix(r[len(r)-1], "true") {
		t.Errorf("health reports %q after an overrun", r)
	}
}

func TestDemoteCutsTheStopOfLeftovers(t *testing.T) {
	// The command exits by itself, leaving drainsvc behind, which the
	// driver stops before any restart; drainsvc would take 2s. A demote
	// that comes meanwhile must not wait for that past its deadline.
	out := filepath.Join(t.TempDir(), "active")
	d, _, _ := newDriver(t, "", func(o *Options) {
		o.Command = []string{"/bin/sh", "-c", `"$0" --out "$1" --drain 2s --tick 2ms & sleep 0.1; exit 3`, drainlog.Build(t), out}
		o.MinBackoff, o.MaxBackoff = time.Minute, time.Minute
	})
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drainsvc, left behind, to be told to stop", func() bool {
		runs, _ := drainlog.Read("a", out)
		return len(runs) == 1 && runs[0].Stopped != 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline := drainlog.Now() + time.Until(common.Deadline(ctx))
	err := d.Trigger(ctx, standby)
	returned := drainlog.Now()
	runs, rerr := drainlog.Read("a", out)
	if rerr != nil || len(runs) != 1 {
		t.Fatalf("drainsvc's log: %v, %v", runs, rerr)
	}
	if runs[0].Exited {
		t.Fatalf("drainsvc drained for its whole 2s: %v", runs[0])
	}
	// Only a machine too busy to run the driver in time may let it run
	// past the deadline, and then the demote must report the overrun.
	if runs[0].Last >= deadline && err == nil {
		t.Errorf("drainsvc was active %v past the deadline, and the demote did not say so", runs[0].Last-deadline)
	}
	if late := returned > deadline; late != (err != nil) {
		t.Errorf("demote returned %v after the deadline with error %v; want an error exactly when late", returned-deadline, err)
	}
}

func TestDemoteCutShortKills(t *testing.T) {
	// driverclient cancels a demote's context when it must end at once
	// (the stop deadline passed with no word from the daemon): the
	// command is killed then, not after its stop timeout.
	out := filepath.Join(t.TempDir(), "active")
	d, _, _ := newDriver(t, "", func(o *Options) {
		o.Command = []string{drainlog.Build(t), "--out", out, "--drain", "5s", "--tick", "2ms"}
		o.StopTimeout = time.Minute
	})
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drainsvc to be active", func() bool {
		runs, _ := drainlog.Read("a", out)
		return len(runs) == 1 && runs[0].Last > runs[0].Start
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Trigger(ctx, standby) }()
	waitFor(t, "drainsvc to be told to stop", func() bool {
		runs, _ := drainlog.Read("a", out)
		return len(runs) == 1 && runs[0].Stopped != 0
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demote: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("the demote did not end within 4s of its context, with the command draining for 5s")
	}
	runs, _ := drainlog.Read("a", out)
	if len(runs) != 1 || runs[0].Exited {
		t.Errorf("drainsvc was not killed: %v", runs)
	}
}

func TestDemoteTimeout(t *testing.T) {
	d, _, _ := newDriver(t, "true", func(o *Options) { o.StopTimeout = 7 * time.Second })
	if got, want := d.DemoteTimeout(), 7*time.Second+common.KillWait; got != want {
		t.Errorf("DemoteTimeout() = %v, want %v", got, want)
	}
}

// drainRun starts drainsvc, which works on for drain after SIGTERM, as
// master, demotes it with a context whose deadline is deadlineIn away, and
// returns its run as its log shows it, when the deadline and the return
// were, in the log's clock, the driver's log and the demote's error.
func drainRun(t *testing.T, cgroups bool, drain, deadlineIn time.Duration) (run drainlog.Run, deadline, returned time.Duration, logs string, err error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "active")
	var buf lockedBuffer
	d, _, _ := newDriver(t, "", func(o *Options) {
		o.Command = []string{drainlog.Build(t), "--out", out, "--drain", drain.String(), "--tick", "2ms"}
		o.NoCgroup = !cgroups
		o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drainsvc to be active", func() bool {
		runs, _ := drainlog.Read("a", out)
		return len(runs) == 1 && runs[0].Last > runs[0].Start
	})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(deadlineIn))
	defer cancel()
	deadline = drainlog.Now() + time.Until(common.Deadline(ctx))
	err = d.Trigger(ctx, standby)
	returned = drainlog.Now()
	runs, rerr := drainlog.Read("a", out)
	if rerr != nil || len(runs) != 1 {
		t.Fatalf("drainsvc's log: %v, %v", runs, rerr)
	}
	return runs[0], deadline, returned, buf.String(), err
}

// lockedBuffer is a log output safe to read while the driver writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNearDeadlineKillsADrainingService(t *testing.T) {
	for _, cgroups := range []bool{true, false} {
		t.Run(fmt.Sprintf("cgroup=%v", cgroups), func(t *testing.T) {
			run, deadline, returned, logs, err := drainRun(t, cgroups, 300*time.Millisecond, 100*time.Millisecond)
			if run.Exited {
				t.Fatalf("drainsvc drained and exited (%v): it should have been killed before the deadline 100ms away", run)
			}
			// SIGKILL was due halfway to the deadline, 50ms before it.
			m := regexp.MustCompile(`msg="command killed: it did not stop in time".* grace=(\S+)`).FindStringSubmatch(logs)
			if m == nil {
				t.Fatalf("the driver did not log the kill:\n%s", logs)
			}
			grace, _ := time.ParseDuration(m[1])
			if grace > 50*time.Millisecond {
				t.Errorf("the command got %v to stop before SIGKILL, with the deadline 100ms away; want at most 50ms", grace)
			}
			// A grace of 0 means the demote began too late for one; else
			// the stop signal came first.
			if grace > 0 && run.Stopped == 0 {
				t.Errorf("drainsvc never saw the stop signal: %v", run)
			}
			// Its last sign of life precedes the deadline: it was killed
			// before. Only a machine too busy to run the driver in time
			// may fail that, and then the demote must report the overrun.
			if run.Last >= deadline && err == nil {
				t.Errorf("drainsvc was active %v past the deadline, and the demote did not say so", run.Last-deadline)
			}
			// On a slow machine the demote may end late; it must then say so.
			if late := returned > deadline; late != (err != nil) {
				t.Errorf("demote returned %v after the deadline with error %v; want an error exactly when late", returned-deadline, err)
			}
		})
	}
}

func TestFarDeadlineLetsAServiceDrain(t *testing.T) {
	run, deadline, returned, _, err := drainRun(t, true, 300*time.Millisecond, time.Second)
	if !run.Exited {
		t.Fatalf("drainsvc was killed (%v), with 900ms before SIGKILL for its 300ms drain", run)
	}
	if run.Last-run.Stopped < 300*time.Millisecond {
		t.Errorf("drainsvc exited %v after the stop signal, before its drain was over", run.Last-run.Stopped)
	}
	if err != nil || returned > deadline {
		t.Errorf("demote: %v, returned %v before the deadline", err, deadline-returned)
	}
}
