package localcluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// Proc is one run of one process: a daemon, a driver, or anything a suite
// starts beside them.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	// started and exited are boottime.Now() readings; exited and err are
	// set before done closes.
	started, exited time.Duration
	err             error
	paused          atomic.Bool
}

// StartOptions say where a process's output goes and where it runs.
type StartOptions struct {
	// Log is the file the process's standard output and error are appended
	// to, so that a restarted process's log tells the whole story. The
	// child writes to it directly: its output survives a SIGKILL and needs
	// no copying goroutine here. Empty leaves cmd's own Stdout and Stderr.
	Log string
	// Header, when set, is written to Log as one line before the process
	// starts, so that a log of several runs reads in order.
	Header string
	// CgroupFD, with UseCgroupFD, is the cgroup v2 directory the process
	// starts in (clone3 puts it there before it runs anything).
	UseCgroupFD bool
	CgroupFD    int
}

// Start starts cmd in a process group of its own, so that a terminal's
// Ctrl-C reaches only the parent, which stops its children in order; with
// SIGKILL as its death signal, so that a parent killed outright leaves no
// child behind.
func Start(cmd *exec.Cmd, o StartOptions) (*Proc, error) {
	var logf *os.File
	if o.Log != "" {
		f, err := os.OpenFile(o.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf = f
		if o.Header != "" {
			fmt.Fprintln(f, o.Header)
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	if o.UseCgroupFD {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, o.CgroupFD
	}
	p := &Proc{cmd: cmd, done: make(chan struct{}), started: boottime.Now()}
	err := cmd.Start()
	if logf != nil {
		logf.Close() // the child has its own copy
	}
	if err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		p.exited = boottime.Now()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Args are the command line the process was started with.
func (p *Proc) Args() []string { return p.cmd.Args }

// String names the process by its command line and pid, for messages.
func (p *Proc) String() string {
	return fmt.Sprintf("%s (pid %d)", strings.Join(p.cmd.Args, " "), p.Pid())
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited. A nil Proc is not
// running.
func (p *Proc) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Paused reports whether the process was sent SIGSTOP and not SIGCONT since.
func (p *Proc) Paused() bool { return p != nil && p.paused.Load() }

// Started is the boottime.Now() reading taken just before the start.
func (p *Proc) Started() time.Duration { return p.started }

// Exited is the boottime.Now() reading taken when the exit was seen; zero
// while the process runs.
func (p *Proc) Exited() time.Duration {
	if p.Running() {
		return 0
	}
	return p.exited
}

// Err is what waiting for the process returned (nil for exit status 0);
// nil while it runs.
func (p *Proc) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// State is how the process ended; nil while it runs.
func (p *Proc) State() *os.ProcessState {
	if p.Running() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig to the process, and remembers a SIGSTOP until the next
// SIGCONT (see Paused).
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return errNotRunning
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused.Store(true)
	case syscall.SIGCONT:
		p.paused.Store(false)
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits until the process is gone. A nil Proc or one
// that has exited is left alone.
func (p *Proc) Kill() {
	if p == nil {
		return
	}
	if p.Running() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Stop sends SIGTERM (after SIGCONT, in case it is paused) and waits up to
// grace for the process to exit, then kills it.
func (p *Proc) Stop(grace time.Duration) {
	if !p.Running() {
		return
	}
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	if !p.Wait(grace) {
		p.Kill()
	}
}

// Wait waits up to timeout for the process to exit and reports whether it
// did.
func (p *Proc) Wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}
