package shelldriver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
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

func masterAt(term uint64) driverclient.State {
	return driverclient.State{Node: "a", Role: driverproto.RoleMaster, IsMaster: true, Term: term, Master: "a", Reason: "elected"}
}

func followerAt(term uint64) driverclient.State {
	return driverclient.State{Node: "a", Role: driverproto.RoleFollower, Term: term, Master: "b", Reason: "b elected"}
}

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

// logBuffer collects JSON log records; the output readers write to it
// from their own goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) records() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type env struct {
	d      *Driver
	dir    string
	health *healthLog
	logs   *logBuffer
}

func newDriver(t *testing.T, onMaster, onStandby string, edit func(*Options)) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), health: &healthLog{}, logs: &logBuffer{}}
	opts := Options{
		OnMaster:  onMaster,
		OnStandby: onStandby,
		Timeout:   10 * time.Second,
		Dir:       e.dir,
		Logger:    slog.New(slog.NewJSONHandler(e.logs, nil)),
		SetHealth: e.health.set,
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	return e
}

func (e *env) lines(name string) []string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name))
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
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

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z'
}

func TestEnvironment(t *testing.T) {
	e := newDriver(t, `env > master.env`, `env > standby.env`, func(o *Options) {
		o.Env = []string{"KEEP=1", "CLUSTD_TERM=0"}
	})
	if err := e.d.Trigger(context.Background(), masterAt(7)); err != nil {
		t.Fatal(err)
	}
	// A lease that ran out: the library's made-up demote.
	lost := driverclient.State{Node: "a", Role: driverproto.RoleFollower, Term: 7, Reason: "the lease of term 7 ran out", Local: true}
	if err := e.d.Trigger(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]string{
		"master.env":  {"KEEP=1", "CLUSTD_ROLE=master", "CLUSTD_TERM=7", "CLUSTD_MASTER=a", "CLUSTD_NODE=a", "CLUSTD_REASON=elected"},
		"standby.env": {"CLUSTD_ROLE=follower", "CLUSTD_TERM=7", "CLUSTD_MASTER=", "CLUSTD_NODE=a", "CLUSTD_REASON=the lease of term 7 ran out"},
	} {
		got := e.lines(file)
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("%s: %s missing from %q", file, w, got)
			}
		}
		for _, g := range got {
			if g == "CLUSTD_TERM=0" {
				t.Errorf("%s: the inherited CLUSTD_TERM was not replaced", file)
			}
		}
	}
}

func TestWhichScriptRuns(t *testing.T) {
	e := newDriver(t, `echo "master $CLUSTD_TERM" >> ran`, `echo "$CLUSTD_ROLE $CLUSTD_TERM" >> ran`, nil)
	candidate := followerAt(3)
	candidate.Role, candidate.Master = driverproto.RoleCandidate, ""
	nextMaster := masterAt(9)
	nextMaster.Reason = "won"
	for _, s := range []driverclient.State{
		followerAt(2),  // first state, not master: on-standby, for a known start
		candidate,      // still not master: nothing
		followerAt(4),  // nothing
		masterAt(5),    // on-master
		masterAt(5),    // same term: nothing
		followerAt(6),  // on-standby
		masterAt(7),    // on-master
		nextMaster,     // newer term while master: on-standby, then on-master
		followerAt(10), // on-standby
	} {
		if err := e.d.Trigger(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"follower 2", "master 5", "follower 6", "master 7", "follower 9", "master 9", "follower 10"}
	if got := e.lines("ran"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("scripts ran %q, want %q", got, want)
	}
}

func TestFirstStateMasterRunsOnlyOnMaster(t *testing.T) {
	e := newDriver(t, `echo master >> ran`, `echo standby >> ran`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	if got := e.lines("ran"); len(got) != 1 || got[0] != "master" {
		t.Errorf("scripts ran %q, want on-master alone", got)
	}
}

// script appends "start N" and "end N" around a pause, N being its role and
// term; overlapping runs would interleave the lines.
const script = `echo "start $CLUSTD_ROLE-$CLUSTD_TERM" >> log; sleep 0.01; echo "end $CLUSTD_ROLE-$CLUSTD_TERM" >> log`

// checkAlternation checks that every "start N" is directly followed by
// its "end N", and returns the Ns in order.
func checkAlternation(t *testing.T, lines []string) []string {
	t.Helper()
	var ns []string
	for i := 0; i < len(lines); i += 2 {
		n, ok := strings.CutPrefix(lines[i], "start ")
		if !ok || i+1 >= len(lines) || lines[i+1] != "end "+n {
			t.Fatalf("scripts overlapped at line %d: %q", i+1, lines)
		}
		ns = append(ns, n)
	}
	return ns
}

func TestBurstRunsInOrderWithoutOverlap(t *testing.T) {
	e := newDriver(t, script, script, nil)
	// In order, as driverclient calls it.
	var want []string
	for term := uint64(1); term <= 20; term += 2 {
		if err := e.d.Trigger(context.Background(), masterAt(term)); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Trigger(context.Background(), followerAt(term+1)); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("master-%d", term), fmt.Sprintf("follower-%d", term+1))
	}
	if got := checkAlternation(t, e.lines("log")); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("scripts ran in the order %q, want %q", got, want)
	}
}

func TestConcurrentTriggersNeverOverlap(t *testing.T) {
	// driverclient never calls Trigger twice at once; the driver holds
	// even when misused.
	e := newDriver(t, script, script, nil)
	var wg sync.WaitGroup
	for term := uint64(1); term <= 16; term++ {
		wg.Go(func() {
			s := followerAt(term)
			if term%2 == 1 {
				s = masterAt(term)
			}
			if err := e.d.Trigger(context.Background(), s); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := checkAlternation(t, e.lines("log")); len(got) < 2 {
		t.Errorf("only %d scripts ran", len(got))
	}
}

func TestTimeoutKillsTheScript(t *testing.T) {
	e := newDriver(t, `sleep 100 & echo $! > child; echo $$ > pid; wait`, `true`, func(o *Options) { o.Timeout = time.Second })
	err := e.d.Trigger(context.Background(), masterAt(1))
	if err == nil || err.Error() != "on-master timed out after 1s" {
		t.Fatalf("Trigger = %v, want a timeout", err)
	}
	for _, f := range []string{"pid", "child"} {
		pid, _ := strconv.Atoi(strings.Join(e.lines(f), ""))
		if pid == 0 || alive(pid) {
			t.Errorf("%s %d survived the timeout", f, pid)
		}
	}
	if r := e.health.get(); len(r) != 1 || r[0] != "false on-master timed out after 1s" {
		t.Errorf("health reports %q", r)
	}
}

func TestCancelledPromoteKillsOnMaster(t *testing.T) {
	e := newDriver(t, `echo $$ > pid; exec sleep 100`, `true`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.d.Trigger(ctx, masterAt(1)) }()
	waitFor(t, "on-master to start", func() bool { return len(e.lines("pid")) == 1 })
	cancel()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "on-master cancelled") {
		t.Fatalf("Trigger = %v, want cancelled", err)
	}
	pid, _ := strconv.Atoi(e.lines("pid")[0])
	if alive(pid) {
		t.Error("on-master survived the cancellation")
	}
}

func TestOnStandbyIgnoresCancellation(t *testing.T) {
	// The final demote of a driver that stops comes with a context that
	// may end; stopping must run to completion all the same.
	e := newDriver(t, `true`, `sleep 0.2; echo done > standby`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.d.Trigger(ctx, followerAt(2)); err != nil {
		t.Fatal(err)
	}
	if got := e.lines("standby"); len(got) != 1 {
		t.Error("on-standby was cut short")
	}
}

func TestFailureReportsErrorAndHealth(t *testing.T) {
	e := newDriver(t, `echo "cannot bind" >&2; exit 3`, `test -e fixed`, nil)
	err := e.d.Trigger(context.Background(), masterAt(1))
	if err == nil || err.Error() != "on-master failed: exit status 3" {
		t.Fatalf("Trigger = %v", err)
	}
	// The failed start is not repeated for the same term.
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatalf("repeated master state: %v", err)
	}
	// The on-standby that follows runs all the same, and fails too.
	if err := e.d.Trigger(context.Background(), followerAt(2)); err == nil || err.Error() != "on-standby failed: exit status 1" {
		t.Fatalf("Trigger = %v", err)
	}
	// A failed on-standby runs again at the next state that is not master.
	if err := os.WriteFile(filepath.Join(e.dir, "fixed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	candidate := followerAt(3)
	candidate.Role = driverproto.RoleCandidate
	if err := e.d.Trigger(context.Background(), candidate); err != nil {
		t.Fatal(err)
	}
	want := []string{"false on-master failed: exit status 3", "false on-standby failed: exit status 1", "true "}
	if got := e.health.get(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("health reports %q, want %q", got, want)
	}
	// The script's stderr is in the log, with the script's name.
	found := false
	for _, r := range e.logs.records() {
		found = found || r["script"] == "on-master" && r["stream"] == "stderr" && r["line"] == "cannot bind" && r["level"] == "WARN"
	}
	if !found {
		t.Errorf("the script's stderr was not logged: %v", e.logs.records())
	}
}

func TestOutputLoggedLineByLine(t *testing.T) {
	e := newDriver(t, `printf 'one\n\ntwo\r\nthree'`, `true`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	var got []string
	waitFor(t, "three lines", func() bool {
		got = nil
		for _, r := range e.logs.records() {
			if r["script"] == "on-master" && r["stream"] == "stdout" {
				got = append(got, r["line"].(string))
			}
		}
		return len(got) == 3
	})
	if strings.Join(got, ",") != "one,two,three" {
		t.Errorf("logged lines %q", got)
	}
}

func TestBackgroundProcessDoesNotHoldTheScript(t *testing.T) {
	// Start scripts often leave a daemon running, which inherits stdout.
	e := newDriver(t, `sleep 100 & echo $! > bg; echo started`, `true`, nil)
	t.Cleanup(func() {
		if pid, _ := strconv.Atoi(strings.Join(e.lines("bg"), "")); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	done := make(chan error, 1)
	go func() { done <- e.d.Trigger(context.Background(), masterAt(1)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Trigger waits for the background process")
	}
	pid, _ := strconv.Atoi(strings.Join(e.lines("bg"), ""))
	if !alive(pid) {
		t.Error("the background process was killed")
	}
}

func TestNewChecks(t *testing.T) {
	for _, o := range []Options{{}, {OnMaster: "x"}, {OnStandby: "x"}, {OnMaster: "x", OnStandby: "y", Timeout: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
