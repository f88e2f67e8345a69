package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// freezer stops every process of a node at once, daemon and drivers and
// their children, as a machine that hangs would, and lets them go on.
//
// With root and cgroup v2 it gives each node a cgroup of its own under one
// made for the run, and freezes it: every process in it stops together,
// children started since included, and no signal tells them. Otherwise it
// stops the process group of each of the node's processes with SIGSTOP,
// one after the other within microseconds, and the process groups of the
// exec driver's children (it starts each in a group of its own).
type freezer struct {
	// dir is the run's cgroup; empty when freezing by signals.
	dir string
	// frozen lists the nodes frozen now, by id.
	frozen map[string]bool
	// fds are the nodes' cgroups, open for clone3, by id.
	fds map[string]*os.File
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC, the file system type of a cgroup v2
// mount.
const cgroup2Magic = 0x63677270

// cgroup2Root is where cgroup v2 is mounted: /sys/fs/cgroup on a unified
// system, /sys/fs/cgroup/unified on a hybrid one. Empty if neither.
func cgroup2Root() string {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st syscall.Statfs_t
		if syscall.Statfs(dir, &st) == nil && st.Type == cgroup2Magic {
			return dir
		}
	}
	return ""
}

// newFreezer makes the run's cgroup, named after this process so that two
// runs never share one, or falls back to signals.
func newFreezer() *freezer {
	f := &freezer{frozen: map[string]bool{}, fds: map[string]*os.File{}}
	root := cgroup2Root()
	if root == "" || os.Geteuid() != 0 {
		return f
	}
	dir := filepath.Join(root, fmt.Sprintf("clustd-chaos-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return f
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
		// A kernel before 5.2 has cgroup v2 without its freezer.
		os.Remove(dir)
		return f
	}
	f.dir = dir
	return f
}

func (f *freezer) describe() string {
	if f.dir != "" {
		return "whole-node freezes: cgroup v2 freezer (" + f.dir + ")"
	}
	return "whole-node freezes: SIGSTOP of each process group of the node"
}

// cgroup returns node n's cgroup, open, for a process of n to start in
// (see startProc), or -1 when freezing by signals. A process started there
// is in it from its first instruction, so whatever cgroup it makes for its
// own children (clustd driver exec does) is inside, and frozen with it.
func (f *freezer) cgroup(n *node) (int, error) {
	if f.dir == "" {
		return -1, nil
	}
	if d, ok := f.fds[n.id]; ok {
		return int(d.Fd()), nil
	}
	dir := filepath.Join(f.dir, n.id)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return -1, fmt.Errorf("cgroup for %s: %w", n.id, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return -1, fmt.Errorf("cgroup for %s: %w", n.id, err)
	}
	f.fds[n.id] = d
	return int(d.Fd()), nil
}

// set freezes node n (on) or thaws it. A freeze returns once every process
// of the node is stopped.
func (f *freezer) set(n *node, on bool) error {
	f.frozen[n.id] = on
	if f.dir == "" {
		return signalNode(n, on)
	}
	dir := filepath.Join(f.dir, n.id)
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0o644); err != nil {
		return fmt.Errorf("freezing %s: %w", n.id, err)
	}
	if !on {
		return nil
	}
	// The freeze completes asynchronously; cgroup.events says when.
	want := []byte("frozen 1")
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err == nil && bytes.Contains(b, want) {
			return nil
		}
	}
	return fmt.Errorf("%s's cgroup did not report frozen within 2 s", n.id)
}

// thaw thaws every node still frozen, so that the processes can be
// stopped.
func (f *freezer) thaw(nodes []*node) {
	for _, n := range nodes {
		if f.frozen[n.id] {
			f.set(n, false)
		}
	}
}

// remove kills whatever is left in the cgroups (nothing may outlive the
// run, not even a child that left its process group) and removes them.
func (f *freezer) remove(nodes []*node) {
	if f.dir == "" {
		return
	}
	for _, d := range f.fds {
		d.Close()
	}
	for _, n := range nodes {
		dir := filepath.Join(f.dir, n.id)
		if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644) == nil {
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
				if b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err != nil || bytes.Contains(b, []byte("populated 0")) {
					break
				}
			}
		}
		rmCgroup(dir)
	}
	os.Remove(f.dir)
}

// rmCgroup removes an empty cgroup and the ones below it (clustd driver
// exec makes its commands' there), deepest first.
func rmCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			rmCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// signalNode stops (or continues) the process group of each of n's
// processes and of the exec driver's children.
func signalNode(n *node, stop bool) error {
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	var groups []int
	for _, p := range []*proc{n.exec, n.recorder, n.daemon} {
		if p.Running() {
			groups = append(groups, p.Pid())
			if p == n.exec {
				groups = append(groups, children(p.Pid())...)
			}
		}
	}
	var errs []error
	for _, g := range groups {
		if err := syscall.Kill(-g, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("%v to process group %d of %s: %w", sig, g, n.id, err))
		}
	}
	return errors.Join(errs...)
}

// children lists the child processes of pid, from /proc.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
