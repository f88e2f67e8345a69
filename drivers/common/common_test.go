package common

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

func TestRole(t *testing.T) {
	for _, tt := range []struct {
		s    driverclient.State
		want string
	}{
		{driverclient.State{Role: driverproto.RoleMaster, IsMaster: true}, "master"},
		{driverclient.State{Role: driverproto.RoleCandidate}, "candidate"},
		{driverclient.State{Role: driverproto.RoleFollower}, "follower"},
		// Never master unless IsMaster says so.
		{driverclient.State{Role: driverproto.RoleMaster, Local: true}, "follower"},
		{driverclient.State{}, "follower"},
	} {
		if got := Role(tt.s); got != tt.want {
			t.Errorf("Role(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestEnv(t *testing.T) {
	got := Env([]string{"A=1"}, driverclient.State{Node: "n", Role: driverproto.RoleMaster, IsMaster: true, Term: 12, Master: "n", Reason: "why"})
	want := "A=1 CLUSTD_ROLE=master CLUSTD_TERM=12 CLUSTD_MASTER=n CLUSTD_NODE=n CLUSTD_REASON=why"
	if strings.Join(got, " ") != want {
		t.Errorf("Env = %q, want %q", got, want)
	}
}

func TestHealthReportsChangesOnly(t *testing.T) {
	var got []string
	h := NewHealth(func(ok bool, reason string) { got = append(got, strconv.FormatBool(ok)+" "+reason) })
	h.Set(true, "")
	h.Set(false, "a")
	h.Set(false, "a")
	h.Set(false, "b")
	h.Set(true, "ignored")
	h.Set(true, "")
	if want := "false a|false b|true "; strings.Join(got, "|") != want {
		t.Errorf("reports %q, want %q", got, want)
	}
	if ok, reason := h.Get(); !ok || reason != "" {
		t.Errorf("Get() = %v, %q", ok, reason)
	}
	NewHealth(nil).Set(false, "nobody listens") // must not panic
}

func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	long := strings.Repeat("x", MaxLine+10)
	LogLines(strings.NewReader("one\r\n\n  \ntwo\n"+long+"\nlast"), log, slog.LevelInfo, "output", "script", "s")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["script"] != "s" || m["msg"] != "output" {
			t.Errorf("record %v", m)
		}
		lines = append(lines, m["line"].(string))
	}
	want := []string{"one", "  ", "two", long[:MaxLine], long[MaxLine:], "last"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("logged %d lines, want %d: %.200q", len(lines), len(want), lines)
	}
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

func TestGroupOutlivesItsLeader(t *testing.T) {
	// The leader exits at once, leaving a child in its group: the group is
	// not gone until the child is.
	child := filepath.Join(t.TempDir(), "child")
	g, err := Start(exec.Command("/bin/sh", "-c", `sleep 100 & echo $! > `+child+`.tmp && mv `+child+`.tmp `+child))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, "the child", func() bool {
		b, err := os.ReadFile(child)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	<-g.Done()
	if g.Err() != nil {
		t.Fatalf("leader: %v", g.Err())
	}
	if g.Gone() {
		t.Fatal("Gone() with a child still running")
	}
	if g.WaitGone(10 * time.Millisecond) {
		t.Fatal("WaitGone() with a child still running")
	}
	killed, err := g.Stop(syscall.SIGTERM, 5*time.Second)
	if err != nil || killed {
		t.Fatalf("Stop = %v, %v; want the child gone on SIGTERM", killed, err)
	}
	if !g.Gone() {
		t.Error("not gone after Stop")
	}
	// Stopping a group that is gone is harmless.
	if _, err := g.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Error(err)
	}
}

func TestStopWakesAStoppedProcess(t *testing.T) {
	// A process held by SIGSTOP keeps SIGTERM pending; Stop sends SIGCONT
	// so that it does not take the whole grace to die.
	g, err := Start(exec.Command("sleep", "100"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	killed, err := g.Stop(syscall.SIGTERM, time.Minute)
	if err != nil || killed {
		t.Fatalf("Stop = %v, %v", killed, err)
	}
	if ws := g.ProcessState().Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", ws.Signal())
	}
}
