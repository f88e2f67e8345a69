package drainlog

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func TestReadAndOverlaps(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	// On a: pid 10 exits cleanly at 300; pid 10 again (reused) is killed
	// after its line at 900. On b: pid 20 runs from 290 to 500.
	os.WriteFile(a, []byte("start 10 100 3\nalive 10 150\nterm 10 200\nexit 10 300\nstart 10 800 5\nalive 10 900\n"), 0o644)
	os.WriteFile(b, []byte("start 20 290 4\nalive 20 400\nexit 20 500\n"), 0o644)
	ra, err := Read("a", a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Read("b", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != 2 || !ra[0].Exited || ra[0].Stopped != 200 || ra[0].Term != "3" || ra[1].Exited || ra[1].Start != 800 || ra[1].Last != 900 {
		t.Fatalf("runs of a: %v", ra)
	}
	got := Overlaps(append(ra, rb...), 50)
	if len(got) != 1 || got[0].From != 290 || got[0].To != 300 {
		t.Fatalf("overlaps %v, want one from 290 to 300", got)
	}
	// A killed run counts one tick past its last line.
	os.WriteFile(b, []byte("start 21 920 6\n"), 0o644)
	rb, _ = Read("b", b)
	if got := Overlaps(append(ra, rb...), 50); len(got) != 1 || got[0].Len() != 30 {
		t.Fatalf("overlaps %v, want one of 30ns", got)
	}
	if got := Overlaps(append(ra, rb...), 10); len(got) != 0 {
		t.Fatalf("overlaps %v with a 10ns tick, want none", got)
	}
	os.WriteFile(b, []byte("start 20\n"), 0o644)
	if _, err := Read("b", b); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("Read of a short line: %v, want an error naming the line", err)
	}
	if runs, err := Read("c", filepath.Join(dir, "missing")); err != nil || len(runs) != 0 {
		t.Errorf("Read of a missing file = %v, %v", runs, err)
	}
}

func TestDrainsvcDrains(t *testing.T) {
	bin := Build(t)
	out := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(bin, "--out", out, "--drain", "200ms")
	cmd.Env = append(os.Environ(), "CLUSTD_TERM=7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, _ := Read("a", out)
		if len(runs) == 1 && runs[0].Last > runs[0].Start {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("drainsvc logged nothing in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("drainsvc: %v", err)
	}
	runs, err := Read("a", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].Exited || runs[0].Term != "7" || runs[0].Stopped == 0 {
		t.Fatalf("runs %v, want one that exited after a stop signal", runs)
	}
	if d := runs[0].Last - runs[0].Stopped; d < 200*time.Millisecond {
		t.Errorf("exited %v after the stop signal, want at least the 200ms drain", d)
	}
}
