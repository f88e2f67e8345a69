package localcluster

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP clustd_drivers_connected Drivers connected to this daemon.
# TYPE clustd_drivers_connected gauge
clustd_drivers_connected{node="n1"} 1
clustd_peer_messages_sent_total{node="n1",peer="n2"} 1234
clustd_peer_messages_sent_total{node="n1",peer="n3"} 5.5e+03
go_goroutines 17
go_gc_duration_seconds{quantile="0.5"} 3.1e-05
bad line without value
broken{node="n1" 3
`
	s := ParseMetrics(text)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"clustd_drivers_connected", nil, 1, true},
		{"clustd_peer_messages_sent_total", []string{"peer", "n2"}, 1234, true},
		{"clustd_peer_messages_sent_total", []string{"node", "n1", "peer", "n3"}, 5500, true},
		{"clustd_peer_messages_sent_total", []string{"peer", "n9"}, 0, false},
		{"go_goroutines", nil, 17, true},
		{"go_gc_duration_seconds", []string{"quantile", "0.5"}, 3.1e-05, true},
		{"absent", nil, 0, false},
	} {
		got, ok := Find(s, tc.name, tc.labels...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Find(%s %v) = %v %v, want %v %v", tc.name, tc.labels, got, ok, tc.want, tc.ok)
		}
	}
	if len(s) != 5 {
		t.Errorf("%d samples, want 5 (the malformed lines skipped): %+v", len(s), s)
	}
	if sum, ok := Sum(s, "clustd_peer_messages_sent_total", "node", "n1"); !ok || sum != 6734 {
		t.Errorf("Sum = %v %v, want 6734 true", sum, ok)
	}
	if _, ok := Sum(s, "clustd_peer_messages_sent_total", "node", "n2"); ok {
		t.Error("Sum found a series that is not there")
	}
}

// FuzzParseMetrics feeds the parser arbitrary text, and a sample written
// the way the daemon writes one, which must come back as it was.
func FuzzParseMetrics(f *testing.F) {
	f.Add("clustd_x{node=\"n1\"} 1\n# comment\n", "n1", 2.5)
	f.Add("broken{a=\"b\" 3\n{} 1\nx{=\"\"} NaN 17\n", "", math.Inf(1))
	f.Fuzz(func(t *testing.T, text, label string, v float64) {
		for _, s := range ParseMetrics(text) {
			if s.Name == "" {
				t.Fatalf("a sample with no name from %q", text)
			}
		}
		if strings.ContainsAny(label, "\"\\\n\r") || math.IsNaN(v) {
			return
		}
		line := fmt.Sprintf("clustd_fuzz{node=\"%s\",peer=\"p\"} %v 1700000000000\n", label, v)
		got := ParseMetrics(text + "\n" + line)
		if len(got) == 0 {
			t.Fatalf("%q: no sample", line)
		}
		last := got[len(got)-1]
		if last.Name != "clustd_fuzz" || last.Labels["node"] != label || last.Labels["peer"] != "p" || last.Value != v {
			t.Fatalf("%q read back as %+v", line, last)
		}
	})
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n1.log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := LogTail(path, 3)
	if want := []string{"line 4997", "line 4998", "line 4999"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("LogTail = %q, want %q", got, want)
	}
	if got := LogTail(filepath.Join(dir, "missing"), 3); len(got) != 1 || !strings.Contains(got[0], "no such file") {
		t.Errorf("missing file: %q", got)
	}
}

func TestReserve(t *testing.T) {
	r, err := Reserve(6)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range r.Ports {
		if p != r.Ports[0]+i {
			t.Fatalf("ports %v are not consecutive", r.Ports)
		}
	}
	r.Release()
	r.Release()
	// Released ports are never handed out again by this process, so two
	// clusters in one test binary cannot collide.
	seen := map[int]bool{}
	for _, p := range r.Ports {
		seen[p] = true
	}
	for range 20 {
		ports, err := Ports(4)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}

func TestProc(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	p, err := Start(exec.Command("sh", "-c", "echo hello; exec sleep 60"), StartOptions{Log: log, Header: "=== start"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if !p.Running() || p.State() != nil || p.Exited() != 0 {
		t.Fatal("a fresh process does not look running")
	}
	// The shell has run once the log has its line.
	waitLog(t, log, "=== start\nhello\n")
	if err := p.Signal(syscall.SIGSTOP); err != nil || !p.Paused() {
		t.Fatalf("SIGSTOP: %v, paused %v", err, p.Paused())
	}
	// Stop continues a paused process before asking it to end.
	p.Stop(30 * time.Second)
	if p.Running() || p.Paused() {
		t.Fatalf("running %v, paused %v after Stop", p.Running(), p.Paused())
	}
	if ws := p.State().Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", p.State())
	}
	if p.Exited() < p.Started() || p.Err() == nil {
		t.Errorf("exited %v started %v err %v", p.Exited(), p.Started(), p.Err())
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("a signal to an exited process succeeded")
	}
}

// TestClusterProcesses runs a stand-in for the daemon (RunBin) to check the
// bookkeeping: which node runs, which is paused, and that Close leaves
// nothing behind.
func TestClusterProcesses(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-clustd")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"started with $*\"\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Open("", dir, []string{"a", "b"}, []string{"a.yml", "b.yml"}, []string{"127.0.0.1:1", "127.0.0.1:2"})
	c.RunBin = fake
	t.Cleanup(c.Close)
	if c.Running(0) || c.PID(0) != 0 || len(c.Live()) != 0 {
		t.Fatal("a node runs before any was started")
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(0); err == nil {
		t.Error("a running node was started again")
	}
	// Each has run its script once its log has its line.
	waitLog(t, c.LogPath(0), "started with --config a.yml\n")
	waitLog(t, c.LogPath(1), "started with --config b.yml\n")
	if err := c.Signal(1, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if live := c.Live(); len(live) != 1 || live[0] != 0 || !c.Paused(1) {
		t.Errorf("live %v, b paused %v; want [0] and true", live, c.Paused(1))
	}
	if _, err := c.Kill(0); err != nil || c.Running(0) {
		t.Fatalf("Kill: %v, still running %v", err, c.Running(0))
	}
	if _, err := c.Kill(0); err == nil {
		t.Error("killing a dead node succeeded")
	}
	p := c.Proc(1)
	c.Close()
	if p.Running() {
		t.Error("Close left a node running")
	}
	if tail := c.LogTail(0, 1); tail != "started with --config a.yml" {
		t.Errorf("a's log ends %q", tail)
	}
}

// waitLog waits, with a generous bound, for the file at path to hold want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
