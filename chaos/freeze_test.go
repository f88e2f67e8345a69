package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFreezeStopsWholeNode freezes a node of three processes, one with a
// child of its own, and checks that none of them runs until the thaw: with
// the cgroup freezer where this machine has it, and with signals.
func TestFreezeStopsWholeNode(t *testing.T) {
	if f := newFreezer(); f.dir != "" {
		t.Run("cgroup", func(t *testing.T) { testFreeze(t, f) })
	} else {
		t.Log("no cgroup v2 freezer here (needs root): signals only")
	}
	t.Run("signals", func(t *testing.T) { testFreeze(t, &freezer{frozen: map[string]bool{}}) })
}

func testFreeze(t *testing.T, f *freezer) {
	dir := t.TempDir()
	n := &node{id: "a", dir: dir}
	t.Logf("%s", f.describe())
	// Cleanups run last first: this one after the processes are killed.
	t.Cleanup(func() {
		f.remove([]*node{n})
		if f.dir != "" {
			if _, err := os.Stat(f.dir); err == nil {
				t.Errorf("cgroup %s left behind", f.dir)
			}
		}
	})
	start := func(script string) *proc {
		fd, err := f.cgroup(n)
		if err != nil {
			t.Fatal(err)
		}
		p, err := startProc(exec.Command("sh", "-c", script), filepath.Join(dir, "log"), "test", fd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		return p
	}
	// Each writes a tick to its own file every 10 ms; the "exec driver"
	// does it from a child in a process group of its own, as clustd
	// driver exec runs its command.
	tick := func(name string) string {
		return "while :; do date +%s%N >> " + filepath.Join(dir, name) + "; sleep 0.01; done"
	}
	n.daemon = start(tick("daemon"))
	n.recorder = start(tick("recorder"))
	n.exec = start("setsid sh -c '" + tick("child") + "' & wait")
	t.Cleanup(func() {
		// The setsid child is not in the exec process's group.
		for _, c := range children(n.exec.Pid()) {
			syscall.Kill(-c, syscall.SIGKILL)
		}
	})
	files := []string{"daemon", "recorder", "child"}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ok := true
		for _, name := range files {
			ok = ok && size(name) > 0
		}
		if ok {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the processes did not start ticking within 10 s")
		}
	}
	if err := f.set(n, true); err != nil {
		t.Fatal(err)
	}
	// Anything already on its way to the file lands in the first moments.
	time.Sleep(100 * time.Millisecond)
	before := map[string]int64{}
	for _, name := range files {
		before[name] = size(name)
	}
	time.Sleep(300 * time.Millisecond) // the window in which nothing may tick
	for _, name := range files {
		if got := size(name); got != before[name] {
			t.Errorf("%s ticked while the node was frozen", name)
		}
	}
	if err := f.set(n, false); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		moved := true
		for _, name := range files {
			moved = moved && size(name) > before[name]
		}
		if moved {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the processes did not tick again within 10 s of the thaw")
		}
	}
	if f.dir != "" && !strings.HasPrefix(f.dir, "/sys/fs/cgroup") {
		t.Errorf("cgroup %s outside /sys/fs/cgroup", f.dir)
	}
}
