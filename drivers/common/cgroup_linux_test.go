package common

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestParseMountinfoLine(t *testing.T) {
	for _, tt := range []struct {
		line        string
		mount, root string
		ok          bool
	}{
		{"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw", "/sys/fs/cgroup/unified", "/", true},
		{"29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate", "/sys/fs/cgroup", "/", true},
		{"30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 none rw", "/sys/fs/cgroup", "/kubepods/pod1", true},
		{`30 23 0:26 / /mnt/my\040cgroups rw - cgroup2 none rw`, "/mnt/my cgroups", "/", true},
		{"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu", "", "", false},
		{"garbage", "", "", false},
		{"1 2 - cgroup2", "", "", false},
	} {
		mount, root, ok := parseMountinfoLine(tt.line)
		if mount != tt.mount || root != tt.root || ok != tt.ok {
			t.Errorf("parseMountinfoLine(%q) = %q, %q, %v; want %q, %q, %v", tt.line, mount, root, ok, tt.mount, tt.root, tt.ok)
		}
	}
}

func FuzzParseMountinfoLine(f *testing.F) {
	f.Add("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw")
	f.Add(`30 23 0:26 /a\0 /mnt/x\04 rw - cgroup2 none rw`)
	f.Fuzz(func(t *testing.T, line string) {
		parseMountinfoLine(line) // must not panic
	})
}

func TestOwnCgroup(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "cgroup")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	if got, err := ownCgroup(write("4:memory:/x\n0::/system.slice/clustd.service\n")); err != nil || got != "/system.slice/clustd.service" {
		t.Errorf("ownCgroup = %q, %v", got, err)
	}
	if _, err := ownCgroup(write("4:memory:/x\n")); err == nil {
		t.Error("no 0:: line: no error")
	}
	if _, err := ownCgroup(write("0::relative\n")); err == nil {
		t.Error("a relative path: no error")
	}
}

func TestKillAtAndGrace(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tt := range []struct {
		left, want time.Duration // deadline and kill time, from now
	}{
		{time.Second, time.Second - KillLead},
		{100 * time.Millisecond, 50 * time.Millisecond},
		{0, 0},
		{-time.Second, -time.Second},
	} {
		if got := KillAt(now.Add(tt.left), now).Sub(now); got != tt.want {
			t.Errorf("KillAt(now%+v) = now%+v, want now%+v", tt.left, got, tt.want)
		}
	}
	if got := Grace(10*time.Second, time.Time{}, now); got != 10*time.Second {
		t.Errorf("Grace without a deadline = %v", got)
	}
	if got := Grace(10*time.Second, now.Add(time.Second), now); got != time.Second-KillLead {
		t.Errorf("Grace with a deadline 1s away = %v", got)
	}
	if got := Grace(200*time.Millisecond, now.Add(time.Minute), now); got != 200*time.Millisecond {
		t.Errorf("Grace with a far deadline = %v", got)
	}
	if got := Grace(time.Second, now.Add(-time.Second), now); got != 0 {
		t.Errorf("Grace with a deadline past = %v", got)
	}
}

// openCgroups opens the cgroups of a test, or skips it loudly.
func openCgroups(t *testing.T, name string) *Cgroups {
	t.Helper()
	cgs, err := OpenCgroups(name)
	if err != nil {
		t.Skipf("SKIPPED: no cgroups here (%v): the cgroup path is untested", err)
	}
	return cgs
}

func TestCgroupStopsWhatLeftTheProcessGroup(t *testing.T) {
	cgs := openCgroups(t, "test")
	child := filepath.Join(t.TempDir(), "child")
	g, err := startIn(t, exec.Command("/bin/sh", "-c", `trap "" TERM; setsid sleep 100 & echo $! > `+child+`.tmp && mv `+child+`.tmp `+child+`; sleep 100; sleep 100`), cgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(syscall.SIGKILL, 0); g.Release() })
	var pid int
	waitFor(t, "the child", func() bool {
		b, err := os.ReadFile(child)
		pid, _ = strconv.Atoi(string(b[:max(0, len(b)-1)]))
		return err == nil && pid > 0
	})
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if g.Cgroup() == "" {
		t.Fatal("StartIn gave no cgroup")
	}
	// The shell ignores SIGTERM, so only cgroup.kill ends the group.
	killed, err := g.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if err != nil || !killed {
		t.Fatalf("Stop = %v, %v; want killed", killed, err)
	}
	if procAlive(pid) {
		t.Error("the setsid child survived")
	}
	if err := g.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Cgroup()); !os.IsNotExist(err) {
		t.Errorf("cgroup %s not removed: %v", g.Cgroup(), err)
	}
}

// startIn is StartIn, skipping the test where the kernel refuses to start
// a process in a cgroup.
func startIn(t *testing.T, cmd *exec.Cmd, cgs *Cgroups) (*Group, error) {
	t.Helper()
	g, err := StartIn(cmd, cgs)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) {
		t.Skipf("SKIPPED: cannot start a process in a cgroup here (%v): the cgroup path is untested", err)
	}
	return g, err
}

// procAlive reports whether pid runs and is not a zombie.
func procAlive(pid int) bool {
	state, _, ok := procStat(strconv.Itoa(pid))
	return ok && state != 'Z'
}

func TestRemoveStale(t *testing.T) {
	cgs := openCgroups(t, "test")
	// A cgroup as a driver of the same name would leave it, its pid dead.
	dead := 0
	for p := 4000000; p < 4100000; p++ {
		if syscall.Kill(p, 0) != nil {
			dead = p
			break
		}
	}
	other := &Cgroups{dir: cgs.dir, rel: cgs.rel, prefix: "clustd-test-" + strconv.Itoa(dead) + "-"}
	g, err := startIn(t, exec.Command("sleep", "100"), other)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(syscall.SIGKILL, 0); g.Release() })
	// And one of a live driver (this one), which must be left alone.
	mine, err := StartIn(exec.Command("sleep", "100"), cgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := mine.Stop(syscall.SIGKILL, 0); err != nil {
			t.Error(err)
		}
		if err := mine.Release(); err != nil {
			t.Error(err)
		}
	})
	removed, err := cgs.RemoveStale()
	if err != nil || len(removed) != 1 || removed[0] != g.Cgroup() {
		t.Fatalf("RemoveStale = %v, %v; want %s", removed, err, g.Cgroup())
	}
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stale cgroup's process survived")
	}
	if mine.Gone() {
		t.Error("the live driver's command was killed")
	}
}
