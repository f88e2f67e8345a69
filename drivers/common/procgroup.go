package common

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// KillWait bounds how long Stop waits for a process group to vanish after
// SIGKILL. SIGKILL cannot be caught, so only a process stuck in the kernel
// (uninterruptible sleep on a dead NFS server, say) outlives it; reporting
// that is better than hanging a demote for ever.
const KillWait = 5 * time.Second

// Group is a command started as the leader of a new process group, so that
// everything it starts can be stopped with it: a service's workers, a
// shell script's children. Started by StartIn, it also has a cgroup of its
// own, which its processes cannot leave: then the group is the cgroup, and
// a child that left the process group (setsid, a daemon's double fork) is
// still a member.
type Group struct {
	cmd  *exec.Cmd
	pgid int
	cg   *cgroup // nil for a process group alone
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

// Start starts cmd in a process group of its own and reaps it in the
// background. The caller sets everything else of cmd; Stdout and Stderr
// should be *os.File (or nil), because for any other writer os/exec copies
// through a pipe and Wait would also wait for every process still holding
// that pipe.
func Start(cmd *exec.Cmd) (*Group, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return watchGroup(cmd, nil), nil
}

// StartIn starts cmd as Start does, but in a new cgroup under cgs, from its
// first instruction on (CLONE_INTO_CGROUP, so that nothing it forks can
// escape in between). When cgs is nil it is Start. An error that comes
// from the cgroup rather than the command says so in its text, but the two
// cannot always be told apart: the kernel reports both through the fork.
func StartIn(cmd *exec.Cmd, cgs *Cgroups) (*Group, error) {
	if cgs == nil {
		return Start(cmd)
	}
	cg, err := cgs.create()
	if err != nil {
		return nil, err
	}
	fd, err := os.Open(cg.dir)
	if err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("opening cgroup %s: %w", cg.dir, err)
	}
	defer fd.Close()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	intoCgroup(cmd.SysProcAttr, int(fd.Fd()))
	if err := cmd.Start(); err != nil {
		_ = cg.remove()
		return nil, err
	}
	return watchGroup(cmd, cg), nil
}

// watchGroup reaps cmd, just started, in the background.
func watchGroup(cmd *exec.Cmd, cg *cgroup) *Group {
	g := &Group{cmd: cmd, pgid: cmd.Process.Pid, cg: cg, done: make(chan struct{})}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	return g
}

// Cgroup returns the directory of the group's cgroup, or "" for a process
// group alone.
func (g *Group) Cgroup() string {
	if g.cg == nil {
		return ""
	}
	return g.cg.dir
}

// Pid returns the process id of the group's leader, which is also the
// process group id.
func (g *Group) Pid() int { return g.pgid }

// Done is closed once the leader has exited and been reaped; other members
// of the group may still run.
func (g *Group) Done() <-chan struct{} { return g.done }

// Err returns how the leader ended, as exec.Cmd.Wait reports it. It is
// meaningful only after Done is closed.
func (g *Group) Err() error {
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}

// ProcessState returns the leader's exit state, or nil while it runs.
func (g *Group) ProcessState() *os.ProcessState {
	select {
	case <-g.done:
		return g.cmd.ProcessState
	default:
		return nil
	}
}

// Gone reports whether the leader has been reaped and no live process is
// left in the group.
func (g *Group) Gone() bool {
	select {
	case <-g.done:
	default:
		return false
	}
	if g.cg != nil {
		busy, _ := g.cg.populated() // an unreadable cgroup counts as busy
		return !busy
	}
	return !groupAlive(g.pgid)
}

// Signal sends sig to every process of the group. A group that is already
// gone is not an error.
func (g *Group) Signal(sig syscall.Signal) error {
	if g.cg != nil {
		return g.cg.signal(sig)
	}
	err := syscall.Kill(-g.pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Stop ends the group: sig to every member (and SIGCONT, so that a stopped
// process gets to handle it), then SIGKILL to whatever is left after grace
// (cgroup.kill for a cgroup, which no fork can outrun). It returns once the
// group is gone, or with an error if the group outlives SIGKILL by
// KillWait; killed says whether SIGKILL was needed. A sig of SIGKILL skips
// the grace.
func (g *Group) Stop(sig syscall.Signal, grace time.Duration) (killed bool, err error) {
	return g.StopOrHurry(sig, grace, nil)
}

// StopOrHurry is Stop, but the grace also ends when hurry is closed: the
// demote that stops the group was told to finish now.
func (g *Group) StopOrHurry(sig syscall.Signal, grace time.Duration, hurry <-chan struct{}) (killed bool, err error) {
	if sig != syscall.SIGKILL {
		if err := g.Signal(sig); err != nil {
			return false, fmt.Errorf("process group %d: sending %v: %w", g.pgid, sig, err)
		}
		// A process held by SIGSTOP would keep the signal pending for ever.
		_ = g.Signal(syscall.SIGCONT)
		if g.waitGone(grace, hurry) {
			return false, nil
		}
	}
	if g.cg != nil {
		if err := g.cg.kill(); err != nil {
			return true, err
		}
	} else if err := g.Signal(syscall.SIGKILL); err != nil {
		return true, fmt.Errorf("process group %d: sending SIGKILL: %w", g.pgid, err)
	}
	if g.WaitGone(KillWait) {
		return true, nil
	}
	if g.cg != nil {
		return true, fmt.Errorf("cgroup %s still has live processes %v after cgroup.kill", g.cg.dir, KillWait)
	}
	return true, fmt.Errorf("process group %d still has live processes %v after SIGKILL", g.pgid, KillWait)
}

// Release removes the group's cgroup, which it can only once the group is
// gone. It does nothing for a process group alone, or when called again.
func (g *Group) Release() error {
	if g.cg == nil || !g.Gone() {
		if g.cg != nil {
			return fmt.Errorf("cgroup %s: not removed, processes are left in it", g.cg.dir)
		}
		return nil
	}
	return g.cg.remove()
}

// WaitGone waits up to d for the group to be gone and reports whether it is.
func (g *Group) WaitGone(d time.Duration) bool { return g.waitGone(d, nil) }

// waitGone is WaitGone, cut short when hurry is closed.
func (g *Group) waitGone(d time.Duration, hurry <-chan struct{}) bool {
	deadline := time.Now().Add(d)
	// The leader's exit wakes us at once; other members are polled, since
	// nothing tells us when a process we did not start exits. The poll
	// starts fast, because the common case is a group that ends together
	// with its leader.
	poll := time.Millisecond
	for {
		if g.Gone() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		t := time.NewTimer(min(poll, left))
		select {
		case <-g.done:
		case <-t.C:
		case <-hurry:
			t.Stop()
			return g.Gone()
		}
		t.Stop()
		// Scanning /proc for a process group is dear; a cgroup's
		// cgroup.events is cheap to read.
		if g.cg != nil {
			poll = min(2*poll, cgroupPollMax)
		} else {
			poll = min(2*poll, 50*time.Millisecond)
		}
	}
}
