package common

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroups is a cgroup v2 directory in which a driver makes a cgroup of its
// own for every command it starts. A process cannot leave a cgroup it was
// started in without the driver's own privileges, so signalling and
// killing the cgroup reaches everything the command started, including
// children that called setsid or daemonized and left its process group.
type Cgroups struct {
	dir    string // the parent's directory in the cgroup2 file system
	rel    string // the parent as /proc/PID/cgroup names it
	prefix string // of the cgroups made here: "clustd-NAME-PID-"
}

// cgroupSeq numbers the cgroups this process makes, across every Cgroups
// of the same name.
var cgroupSeq atomic.Uint64

// OpenCgroups finds the cgroup v2 hierarchy and checks that this process
// may create cgroups inside its own cgroup and move its children into
// them: as root, or in a subtree delegated to its user (systemd's
// Delegate=yes). The cgroups it makes are named clustd-NAME-PID-N, so that
// several drivers may share a parent and a later driver can tell what a
// dead one left behind. The error says why cgroups cannot be used.
func OpenCgroups(name string) (*Cgroups, error) {
	mount, root, err := cgroup2Mount("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	own, err := ownCgroup("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	sub, ok := strings.CutPrefix(own, strings.TrimSuffix(root, "/"))
	if !ok || (sub != "" && sub[0] != '/') {
		return nil, fmt.Errorf("this process's cgroup %s is outside the cgroup2 mount at %s (its root is %s)", own, mount, root)
	}
	c := &Cgroups{
		dir:    filepath.Join(mount, sub),
		rel:    own,
		prefix: "clustd-" + name + "-" + strconv.Itoa(os.Getpid()) + "-",
	}
	// A trial cgroup proves the permission to create one and shows whether
	// the kernel has cgroup.kill (Linux 5.14), without which a cgroup could
	// not be killed at once.
	probe := filepath.Join(c.dir, c.prefix+"probe"+strconv.FormatUint(cgroupSeq.Add(1), 10))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create a cgroup in %s: %w", c.dir, err)
	}
	_, statErr := os.Stat(filepath.Join(probe, "cgroup.kill"))
	if err := unix.Rmdir(probe); err != nil {
		return nil, fmt.Errorf("cannot remove the trial cgroup %s: %w", probe, err)
	}
	if statErr != nil {
		return nil, fmt.Errorf("the kernel has no cgroup.kill (Linux 5.14 or later): %w", statErr)
	}
	// Moving a process between two cgroups needs write access to
	// cgroup.procs of their common ancestor, which is the parent here.
	if err := unix.Access(filepath.Join(c.dir, "cgroup.procs"), unix.W_OK); err != nil {
		return nil, fmt.Errorf("cannot move processes within %s (cgroup.procs is not writable): %w", c.dir, err)
	}
	return c, nil
}

// Dir returns the directory under which the cgroups are made.
func (c *Cgroups) Dir() string { return c.dir }

// RemoveStale kills and removes the cgroups that drivers of the same name
// left behind when they died without cleaning up (kill -9, say): the
// kernel killed their commands with them, but not what those commands had
// started, and nothing supervises that any more. It returns the cgroups
// removed.
func (c *Cgroups) RemoveStale() ([]string, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, err
	}
	// clustd-NAME-PID-N: the same name, any pid.
	base := c.prefix[:strings.LastIndexByte(c.prefix[:len(c.prefix)-1], '-')+1]
	var removed []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !e.IsDir() || !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its driver still runs
		}
		cg := &cgroup{dir: filepath.Join(c.dir, e.Name()), rel: filepath.Join(c.rel, e.Name())}
		if err := cg.kill(); err != nil {
			errs = append(errs, err)
			continue
		}
		if !cg.waitEmpty(KillWait) {
			errs = append(errs, fmt.Errorf("cgroup %s still has processes %v after cgroup.kill", cg.dir, KillWait))
			continue
		}
		if err := cg.remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, cg.dir)
	}
	return removed, errors.Join(errs...)
}

// create makes a new, empty cgroup for one command.
func (c *Cgroups) create() (*cgroup, error) {
	if c.dir == "" {
		return nil, errors.New("creating cgroup: no parent directory (a Cgroups must come from OpenCgroups)")
	}
	name := c.prefix + strconv.FormatUint(cgroupSeq.Add(1), 10)
	cg := &cgroup{dir: filepath.Join(c.dir, name), rel: filepath.Join(c.rel, name)}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup: %w", err)
	}
	return cg, nil
}

// cgroupPollMax bounds the wait between two looks at an emptying cgroup:
// reading cgroup.events is cheap, and a demote waits on it.
const cgroupPollMax = 10 * time.Millisecond

// cgroup is the cgroup of one command.
type cgroup struct {
	dir string // in the cgroup2 file system
	rel string // as /proc/PID/cgroup names it
}

// populated reports whether a live process is left in the cgroup. Zombies
// do not count: they leave the cgroup when they exit, not when reaped.
func (cg *cgroup) populated() (bool, error) {
	b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.events"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // removed, which only an empty cgroup can be
	}
	if err != nil {
		return true, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("populated ")); ok {
			return string(v) != "0", nil
		}
	}
	return true, fmt.Errorf("%s/cgroup.events has no populated line", cg.dir)
}

// signal sends sig to every process in the cgroup. Processes may fork
// while it reads the list, so it reads again until a pass finds no process
// it has not signalled; a bound on the passes keeps a fork bomb from
// holding it for ever (cgroup.kill is what ends those).
func (cg *cgroup) signal(sig syscall.Signal) error {
	done := map[int]bool{}
	for range 16 {
		b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		fresh := 0
		for f := range bytes.FieldsSeq(b) {
			pid, err := strconv.Atoi(string(f))
			if err != nil || done[pid] {
				continue
			}
			done[pid] = true
			fresh++
			cg.signalOne(pid, sig)
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}

// signalOne sends sig to pid if it is still in the cgroup. The pid was
// read from cgroup.procs and may have been reused since by a process
// outside: the process is pinned with a pidfd, then checked, then
// signalled through the pidfd, so that a reused pid is never signalled.
func (cg *cgroup) signalOne(pid int, sig syscall.Signal) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone already
	}
	defer unix.Close(fd)
	// If pid is reused after PidfdOpen, the check reads the new process,
	// but the pidfd still names the old one, which is gone: the signal
	// then fails with ESRCH and reaches nobody.
	own, err := ownCgroup("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || own != cg.rel {
		return
	}
	_ = unix.PidfdSendSignal(fd, sig, nil, 0)
}

// kill kills every process in the cgroup at once, forks in flight included.
func (cg *cgroup) kill() error {
	err := os.WriteFile(filepath.Join(cg.dir, "cgroup.kill"), []byte("1"), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: cgroup.kill: %w", cg.dir, err)
	}
	return nil
}

// waitEmpty waits up to d for the cgroup to have no live process.
func (cg *cgroup) waitEmpty(d time.Duration) bool {
	deadline := time.Now().Add(d)
	poll := time.Millisecond
	for {
		if busy, _ := cg.populated(); !busy {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(poll, left))
		poll = min(2*poll, cgroupPollMax)
	}
}

// remove removes the cgroup, which must be empty.
func (cg *cgroup) remove() error {
	err := unix.Rmdir(cg.dir)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("removing cgroup %s: %w", cg.dir, err)
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted and which
// of its directories the mount shows at its root (not / inside a container
// given part of the host's hierarchy), from a mountinfo file.
func cgroup2Mount(mountinfo string) (mount, root string, err error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", "", fmt.Errorf("looking for the cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m, r, ok := parseMountinfoLine(sc.Text()); ok {
			return m, r, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("reading %s: %w", mountinfo, err)
	}
	return "", "", errors.New("no cgroup2 file system is mounted")
}

// parseMountinfoLine returns the mount point and root of a mountinfo line
// if it is a cgroup2 mount. The line is "ID PARENT MAJ:MIN ROOT POINT
// OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS", with spaces in paths
// written as \040.
func parseMountinfoLine(line string) (mount, root string, ok bool) {
	pre, post, found := strings.Cut(line, " - ")
	if !found {
		return "", "", false
	}
	f := strings.Fields(pre)
	if len(f) < 5 {
		return "", "", false
	}
	if fs := strings.Fields(post); len(fs) == 0 || fs[0] != "cgroup2" {
		return "", "", false
	}
	return unescapeMountinfo(f[4]), unescapeMountinfo(f[3]), true
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a path
// in mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroup returns the cgroup v2 path from a /proc/PID/cgroup file: its
// "0::PATH" line.
func ownCgroup(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); ok {
			if !strings.HasPrefix(p, "/") {
				return "", fmt.Errorf("%s: cgroup v2 path %q is not absolute", file, p)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("%s has no cgroup v2 (0::) line", file)
}
