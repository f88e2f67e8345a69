// Package execdriver runs a command only while this node is the clustd
// master: the service that must never run on two machines at once.
//
// The command is started when the node becomes master and stopped, with
// everything it started, when the node stops being master or its lease
// runs out. It runs in a cgroup v2 of its own where the driver may create
// one (as root, or in a delegated subtree), and else in a process group of
// its own, which a child calling setsid escapes. Stopping sends the stop
// signal to every process of the cgroup or group, then SIGKILL (cgroup.kill)
// after the stop timeout or shortly before the demote's deadline,
// whichever is sooner, and a demote returns only once no process is left,
// so the daemon hands the role over only when the service is really down
// here.
//
// The command can read its lease: the driver keeps it in a file
// (CLUSTD_LEASE_FILE; see driverclient.Lease) in a directory of its own,
// replaced at each renewal and emptied of its deadlines the moment a demote
// is decided. No driver can stop a process that was frozen together with
// it (a paused virtual machine, a cgroup freeze) from acting for a moment
// when it thaws, before the driver has noticed; a command that checks its
// lease before each externally visible action can.
//
// A command that exits by itself while the node is still master is
// restarted with exponential backoff. While it keeps dying young the driver
// reports itself unhealthy, which makes the node ineligible and lets the
// daemon hand the role to a machine where the service may fare better.
package execdriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/drivers/common"
)

// Defaults of Options.
const (
	DefaultStopSignal  = syscall.SIGTERM
	DefaultStopTimeout = 10 * time.Second
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	DefaultStableAfter = 10 * time.Second
)

// Options configures a Driver. Only Command is required.
type Options struct {
	// Command is the program and its arguments. The program is looked up
	// in PATH each time it is started, not when the Driver is made: it may
	// live on storage that only the master mounts.
	Command []string
	// Dir is the command's working directory; empty means the driver's.
	Dir string
	// Env is the command's environment before the CLUSTD_* variables are
	// added; nil means the driver's own environment.
	Env []string
	// StopSignal is sent to the command's process group to stop it; the
	// default is SIGTERM.
	StopSignal syscall.Signal
	// StopTimeout is how long the group gets to exit after StopSignal
	// before it is killed with SIGKILL; the default is 10s.
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart: it starts
	// at MinBackoff and doubles after each exit up to MaxBackoff. The
	// defaults are 1s and 30s.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long the command must stay up to count as
	// healthy again after a crash, and for the backoff to start over. An
	// exit after a longer run is restarted without reporting the driver
	// unhealthy: one crash in a long while is repaired in place faster than
	// by a failover. The default is 10s.
	StableAfter time.Duration
	// Stdout and Stderr receive the command's output; nil means
	// /dev/null. They are files so that the command writes to them
	// directly and no process it leaves behind can hold up the driver.
	Stdout, Stderr *os.File
	// Logger receives the driver's logs; the default is slog.Default().
	Logger *slog.Logger
	// SetHealth, if set, receives the driver's health as it changes; the
	// command-line driver passes driverclient.Client.SetHealth.
	SetHealth func(ok bool, reason string)
	// NoCgroup runs the command in a process group only, even where it
	// could have a cgroup of its own.
	NoCgroup bool
	// RuntimeDir is where the driver makes a directory of its own (mode
	// 0700) for the command's lease file; empty means $XDG_RUNTIME_DIR,
	// else /dev/shm, else the temporary directory.
	RuntimeDir string
}

// Driver runs Options.Command while the node is master. It implements
// driverclient.Driver.
type Driver struct {
	opts   Options
	name   string // the command's program, for logs and reasons
	log    *slog.Logger
	health *common.Health
	// cgroups is where the command gets a cgroup of its own at each start,
	// or nil where it runs in a process group only.
	cgroups atomic.Pointer[common.Cgroups]
	// leaseDir holds lease, the command's lease file.
	leaseDir string
	lease    *driverclient.LeaseFile
	// leaseFailing is set while the lease file cannot be written, so that
	// only the first failure and the recovery are logged. Only
	// LeaseChanged, which driverclient calls from one goroutine, uses it.
	leaseFailing bool

	mu     sync.Mutex
	cur    *tenure // the command's supervision while master, or nil
	closed bool
}

// tenure is the supervision of the command during one term as master.
type tenure struct {
	state    driverclient.State
	stop     chan struct{} // closed to ask the supervisor to stop
	stopOnce sync.Once
	deadline time.Time       // by which stopping must be done, or zero; set before stop is closed
	hurry    <-chan struct{} // closed when stopping must end now; set before stop is closed
	done     chan struct{}   // closed when the supervisor has ended
	err      error           // why stopping failed, set before done is closed
	// overrun says the command stopped, but after deadline; set before
	// done is closed.
	overrun error

	mu sync.Mutex
	g  *common.Group // the command's current run, nil between runs
}

// requestStop asks the supervisor to stop the command by deadline (zero
// for none), and to kill it at once when hurry is closed (nil for never).
// Only the first request counts.
func (t *tenure) requestStop(deadline time.Time, hurry <-chan struct{}) {
	t.stopOnce.Do(func() {
		t.deadline, t.hurry = deadline, hurry
		close(t.stop)
	})
}

// New checks opts, fills in the defaults and returns a Driver.
func New(opts Options) (*Driver, error) {
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, errors.New("execdriver: no command")
	}
	if opts.StopSignal == 0 {
		opts.StopSignal = DefaultStopSignal
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.StableAfter == 0 {
		opts.StableAfter = DefaultStableAfter
	}
	switch {
	case opts.StopTimeout < 0:
		return nil, fmt.Errorf("execdriver: stop timeout %v: must be positive", opts.StopTimeout)
	case opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff:
		return nil, fmt.Errorf("execdriver: backoff from %v to %v: need 0 < MinBackoff <= MaxBackoff", opts.MinBackoff, opts.MaxBackoff)
	case opts.StableAfter < 0:
		return nil, fmt.Errorf("execdriver: StableAfter %v: must be positive", opts.StableAfter)
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	opts.Command = append([]string(nil), opts.Command...)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{
		opts:   opts,
		name:   opts.Command[0],
		log:    log.With("command", opts.Command[0]),
		health: common.NewHealth(opts.SetHealth),
	}
	if err := d.makeLeaseDir(opts.RuntimeDir); err != nil {
		return nil, err
	}
	d.openCgroups()
	return d, nil
}

// makeLeaseDir makes the directory of the command's lease file, private to
// the driver's user, under base (see Options.RuntimeDir).
func (d *Driver) makeLeaseDir(base string) error {
	if base == "" {
		base = os.Getenv("XDG_RUNTIME_DIR")
	}
	if fi, err := os.Stat("/dev/shm"); base == "" && err == nil && fi.IsDir() {
		// Memory, not a disk: a renewal's write and rename cost 13 µs
		// there against 160 µs on ext4, and they are made on the
		// goroutine that enforces the lease.
		base = "/dev/shm"
	}
	if base == "" {
		base = os.TempDir()
	}
	removeStaleLeaseDirs(base)
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%s%d-", leaseDirPrefix, os.Getpid()))
	if err != nil {
		return fmt.Errorf("execdriver: a directory for the command's lease file: %w (set XDG_RUNTIME_DIR or TMPDIR to a writable directory)", err)
	}
	d.leaseDir = dir
	d.lease = &driverclient.LeaseFile{Path: filepath.Join(dir, "lease")}
	return nil
}

// leaseDirPrefix starts the name of a driver's lease directory, followed
// by the driver's process id, a dash and a random suffix.
const leaseDirPrefix = "clustd-exec-"

// removeStaleLeaseDirs removes, in base, the lease directories of drivers
// that are gone (killed with SIGKILL, which leaves no time to clean up),
// so that they do not pile up.
func removeStaleLeaseDirs(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, leaseDirPrefix+"*-*"))
	for _, dir := range dirs {
		id, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), leaseDirPrefix), "-")
		pid, err := strconv.Atoi(id)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// LeaseFile returns the path of the command's lease file, which its
// environment names in CLUSTD_LEASE_FILE.
func (d *Driver) LeaseFile() string { return d.lease.Path }

// LeaseChanged keeps the command's lease file up to date. It implements
// driverclient.LeaseWatcher.
func (d *Driver) LeaseChanged(l driverclient.Lease) {
	err := d.lease.Write(l)
	if errors.Is(err, os.ErrNotExist) && os.Mkdir(d.leaseDir, 0o700) == nil {
		// Something cleaned the temporary directory: make ours again.
		err = d.lease.Write(l)
	}
	switch {
	case err != nil && !d.leaseFailing:
		d.log.Error("the command's lease file cannot be written: a command that checks it holds back as if it had no lease", "err", err)
	case err == nil && d.leaseFailing:
		d.log.Info("the command's lease file is written again", "path", d.lease.Path)
	}
	d.leaseFailing = err != nil
}

// openCgroups decides, once, whether the command runs in cgroups, and says
// so: a command that calls setsid escapes a process group, and whoever
// runs the driver must know whether that is stopped too.
func (d *Driver) openCgroups() {
	if d.opts.NoCgroup {
		d.log.Info("the command runs in a process group of its own (cgroups not wanted); processes that leave the group, as with setsid, are not stopped with it")
		return
	}
	cgs, err := common.OpenCgroups("exec")
	if err != nil {
		d.log.Warn("cgroup v2 unavailable: the command runs in a process group of its own instead, and processes that leave the group, as with setsid, are not stopped with it", "reason", err.Error())
		return
	}
	d.cgroups.Store(cgs)
	d.log.Info("the command runs in a cgroup v2 of its own, and stopping it stops everything it started", "under", cgs.Dir())
	removed, err := cgs.RemoveStale()
	for _, dir := range removed {
		d.log.Warn("killed and removed the cgroup of a driver that died without cleaning up", "cgroup", dir)
	}
	if err != nil {
		d.log.Error("cgroups left by a dead driver cannot be cleaned up", "err", err)
	}
}

// DemoteTimeout returns the longest a demote may take: the stop timeout,
// then the wait for the processes to vanish after SIGKILL. The driver
// declares it to the daemon (driverclient.Options.DemoteTimeout).
func (d *Driver) DemoteTimeout() time.Duration {
	return d.opts.StopTimeout + common.KillWait
}

// Cgroups returns where the command gets a cgroup of its own, or nil where
// it runs in a process group only.
func (d *Driver) Cgroups() *common.Cgroups { return d.cgroups.Load() }

// Trigger starts the command when s.IsMaster and stops it otherwise.
//
// A promote returns once the command has been started, with the start's
// error if it could not be (it is retried with backoff all the same). A
// promote whose ctx has already ended starts nothing: it was overtaken by
// a demote or by the end of the lease. A master state of the same term as
// the running command changes nothing; one of a newer term, which means
// the demote in between was skipped, restarts the command so that it sees
// the new term.
//
// A demote returns once no process of the command is left. If ctx has a
// deadline, the command is killed shortly before it (common.KillAt) if it
// has not stopped by then, and at once if ctx ends sooner: the demote was
// cut short. A demote that still ends after the deadline is logged as an
// error and returns one, for the daemon to count. It never gives up when
// ctx ends: stopping is bounded by the stop timeout and common.KillWait,
// and a demote that returned early would let the daemon start the service
// elsewhere while it still runs here.
func (d *Driver) Trigger(ctx context.Context, s driverclient.State) error {
	if !s.IsMaster {
		return d.stop(common.Deadline(ctx), ctx.Done())
	}
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	if cur != nil {
		if cur.state.Term == s.Term {
			return nil
		}
		d.log.Warn("term changed while master: restarting the command with the new term", "old_term", cur.state.Term, "term", s.Term)
		if err := d.Stop(); err != nil {
			// Starting a second copy beside a survivor is what this
			// driver exists to prevent.
			return fmt.Errorf("not started for term %d: %w", s.Term, err)
		}
	}
	if err := ctx.Err(); err != nil {
		d.log.Info("promote cancelled before the command was started", "term", s.Term)
		return err
	}
	// Started under the lock, so that a Close racing with this promote
	// either comes first and prevents it or comes after and stops it.
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("execdriver: the driver is closed")
	}
	g, err := d.start(s)
	t := &tenure{state: s, stop: make(chan struct{}), done: make(chan struct{}), g: g}
	d.cur = t
	d.mu.Unlock()
	go d.supervise(t, g, err)
	if err != nil {
		return fmt.Errorf("starting %s: %w", d.name, err)
	}
	return nil
}

// Stop stops the command if it runs and returns once no process of it is
// left, or with an error if some survived SIGKILL. Stopping ends a crash
// loop too, so the driver reports itself healthy again: what failed was the
// command on this node as master, which it no longer is.
func (d *Driver) Stop() error { return d.stop(time.Time{}, nil) }

// stop is Stop with a deadline, zero for none, and a channel closed when
// the stop must end now, nil for none.
func (d *Driver) stop(deadline time.Time, hurry <-chan struct{}) error {
	d.mu.Lock()
	t := d.cur
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	t.requestStop(deadline, hurry)
	<-t.done
	d.mu.Lock()
	if d.cur == t {
		d.cur = nil
	}
	d.mu.Unlock()
	if t.err != nil {
		d.health.Set(false, t.err.Error())
		return t.err
	}
	// An overrun is the daemon's to count, not a reason to keep the node
	// from becoming master again: the command did stop.
	d.health.Set(true, "")
	return t.overrun
}

// Close stops the command, as Stop does, and makes later promotes fail. It
// is what a driver shutting down calls after driverclient's Run returned,
// in case the final demote did not finish.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	err := d.Stop()
	if err == nil {
		// Only with the command gone: a survivor reading the file must
		// find no lease, and it finds none either way.
		os.RemoveAll(d.leaseDir)
	}
	return err
}

// Running returns the process id of the running command, or 0.
func (d *Driver) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return 0
	}
	return d.cur.pid()
}

// start starts the command for state s.
func (d *Driver) start(s driverclient.State) (*common.Group, error) {
	cmd := exec.Command(d.opts.Command[0], d.opts.Command[1:]...)
	cmd.Env = append(common.Env(d.opts.Env, s), common.EnvLeaseFile+"="+d.lease.Path)
	cmd.Dir = d.opts.Dir
	// A nil *os.File must stay a nil interface, or os/exec would try to
	// use it.
	if d.opts.Stdout != nil {
		cmd.Stdout = d.opts.Stdout
	}
	if d.opts.Stderr != nil {
		cmd.Stderr = d.opts.Stderr
	}
	// Should the driver itself be killed (the OOM killer, kill -9), its
	// lease enforcement dies with it; the command must not run on as an
	// unsupervised master.
	common.KillWithParent(cmd)
	cgs := d.cgroups.Load()
	g, err := common.StartIn(cmd, cgs)
	if err != nil && cgs != nil {
		// The kernel reports a refused cgroup and a missing program alike.
		// If the command starts without the cgroup, the cgroup was at
		// fault: say so, once, and use process groups from now on.
		retry := exec.Command(cmd.Path, cmd.Args[1:]...)
		retry.Env, retry.Dir, retry.Stdout, retry.Stderr = cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr
		common.KillWithParent(retry)
		if g2, err2 := common.Start(retry); err2 == nil {
			if d.cgroups.CompareAndSwap(cgs, nil) {
				d.log.Error("the command cannot be started in a cgroup: it runs in a process group of its own from now on, and processes that leave the group, as with setsid, are not stopped with it", "err", err)
			}
			g, err = g2, nil
		}
	}
	if err != nil {
		return nil, err
	}
	d.log.Info("command started", "pid", g.Pid(), "term", s.Term, "cgroup", g.Cgroup())
	return g, nil
}

// release removes the cgroup of g, a run that is over.
func (d *Driver) release(g *common.Group) {
	if err := g.Release(); err != nil {
		d.log.Warn("the command's cgroup cannot be removed", "err", err)
	}
}

// supervise runs one tenure: it restarts the command whenever it exits,
// until asked to stop. g is the command started by the promote, or nil
// with the reason in startErr.
func (d *Driver) supervise(t *tenure, g *common.Group, startErr error) {
	defer close(t.done)
	delay := d.opts.MinBackoff
	for restarts := 1; ; restarts++ {
		if g != nil {
			started := time.Now()
			if !d.watch(t, g) {
				return
			}
			ran := time.Since(started).Round(time.Millisecond)
			status := exitStatus(g.Err())
			t.setGroup(nil)
			d.stopLeftovers(t, g)
			if ran >= d.opts.StableAfter {
				// A long run ends a crash loop: this exit starts a new count.
				delay, restarts = d.opts.MinBackoff, 1
				d.log.Warn("command exited while master; restarting", "status", status, "ran", ran.String(), "in", delay.String())
			} else {
				reason := fmt.Sprintf("%s %s after %v; restart %d in %v", d.name, status, ran, restarts, delay)
				d.log.Warn("command exited while master; restarting", "status", status, "ran", ran.String(), "restart", restarts, "in", delay.String())
				d.health.Set(false, reason)
			}
		} else {
			d.log.Error("command cannot start", "err", startErr, "restart", restarts, "in", delay.String())
			d.health.Set(false, fmt.Sprintf("cannot start %s: %v; restart %d in %v", d.name, startErr, restarts, delay))
		}
		wait := time.NewTimer(delay)
		select {
		case <-t.stop:
			wait.Stop()
			return
		case <-wait.C:
		}
		delay = min(2*delay, d.opts.MaxBackoff)
		g, startErr = d.start(t.state)
		t.setGroup(g)
	}
}

// leftoverPoll is how often stopLeftovers looks for a demote while it
// waits for the processes a command left behind.
const leftoverPoll = 20 * time.Millisecond

// stopLeftovers ends what the command left in its cgroup or process group
// when it exited by itself, before a second copy starts beside it. A
// demote that comes meanwhile cuts the stop timeout short, as for a
// running command, and fails if the leftovers outlive SIGKILL or is late.
func (d *Driver) stopLeftovers(t *tenure, g *common.Group) {
	if g.Gone() {
		d.release(g)
		return
	}
	d.log.Warn("the command exited and left processes behind: stopping them", "pid", g.Pid(), "signal", signalName(d.opts.StopSignal), "timeout", d.opts.StopTimeout.String())
	_ = g.Signal(d.opts.StopSignal)
	_ = g.Signal(syscall.SIGCONT)
	killAt := time.Now().Add(d.opts.StopTimeout)
	stop, stopping := t.stop, false
	var hurry <-chan struct{}
	for !g.WaitGone(leftoverPoll) {
		select {
		case <-stop:
			stop, stopping, hurry = nil, true, t.hurry
			if !t.deadline.IsZero() {
				if k := common.KillAt(t.deadline, time.Now()); k.Before(killAt) {
					killAt = k
				}
			}
		case <-hurry:
			killAt = time.Now()
		default:
		}
		if !time.Now().Before(killAt) {
			break
		}
	}
	if !g.Gone() {
		if _, err := g.Stop(syscall.SIGKILL, 0); err != nil {
			d.log.Error("processes left by the command do not stop", "err", err)
			if stopping {
				t.err = fmt.Errorf("stopping what %s left behind: %w", d.name, err)
			}
			return
		}
		d.log.Warn("processes left by the command killed: they did not stop in time", "pid", g.Pid())
	}
	d.release(g)
	select {
	case <-t.stop:
		if late := time.Since(t.deadline); !t.deadline.IsZero() && late > 0 {
			d.log.Error("demote overran its deadline: processes the command left behind may have run beside the next master's", "late_by", late.Round(time.Millisecond).String())
			t.overrun = fmt.Errorf("stopping what %s left behind ended %v past the demote's deadline", d.name, late.Round(time.Millisecond))
		}
	default:
	}
}

// watch waits while g runs. It returns true when the command exited by
// itself, and false when asked to stop, after stopping it (t.err says
// whether that worked). A command that stays up StableAfter makes the
// driver healthy again.
func (d *Driver) watch(t *tenure, g *common.Group) (exited bool) {
	stable := time.NewTimer(d.opts.StableAfter)
	defer stable.Stop()
	for {
		select {
		case <-g.Done():
			return true
		case <-stable.C:
			if ok, _ := d.health.Get(); !ok {
				d.log.Info("command stayed up; healthy again", "pid", g.Pid())
				d.health.Set(true, "")
			}
		case <-t.stop:
			began := time.Now()
			grace := common.Grace(d.opts.StopTimeout, t.deadline, began)
			sig := d.opts.StopSignal
			if grace <= 0 || closed(t.hurry) {
				// No time to stop: a stop signal would only race SIGKILL.
				sig = syscall.SIGKILL
			}
			args := []any{"pid", g.Pid(), "signal", signalName(sig), "timeout", grace.String()}
			if !t.deadline.IsZero() {
				args = append(args, "deadline_in", t.deadline.Sub(began).Round(time.Millisecond).String())
			}
			d.log.Info("stopping the command", args...)
			killed, err := g.StopOrHurry(sig, grace, t.hurry)
			ended := time.Now()
			took := ended.Sub(began).Round(time.Millisecond).String()
			switch {
			case err != nil:
				d.log.Error("command does not stop", "pid", g.Pid(), "err", err)
				t.err = fmt.Errorf("stopping %s: %w", d.name, err)
			case killed:
				d.log.Warn("command killed: it did not stop in time", "pid", g.Pid(), "signal", signalName(d.opts.StopSignal), "grace", grace.String(), "took", took)
			default:
				d.log.Info("command stopped", "pid", g.Pid(), "status", exitStatus(g.Err()), "took", took)
			}
			if err == nil {
				d.release(g)
			}
			if !t.deadline.IsZero() && ended.After(t.deadline) {
				late := ended.Sub(t.deadline).Round(time.Millisecond)
				d.log.Error("demote overran its deadline: the command may have run beside the next master's", "pid", g.Pid(), "took", took, "late_by", late.String())
				if t.err == nil {
					t.overrun = fmt.Errorf("stopping %s took %s, %v past the demote's deadline", d.name, took, late)
				}
			}
			return false
		}
	}
}

// closed reports whether c is closed; a nil c never is.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// setGroup records the running group, nil between runs, for Running.
func (t *tenure) setGroup(g *common.Group) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.g = g
}

func (t *tenure) pid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.g == nil {
		return 0
	}
	return t.g.Pid()
}

// exitStatus describes how a command ended: "exit status 3", "signal:
// killed".
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// signals are the stop signals accepted by name.
var signals = []struct {
	name string
	sig  syscall.Signal
}{
	{"TERM", syscall.SIGTERM},
	{"INT", syscall.SIGINT},
	{"HUP", syscall.SIGHUP},
	{"QUIT", syscall.SIGQUIT},
	{"KILL", syscall.SIGKILL},
	{"USR1", syscall.SIGUSR1},
	{"USR2", syscall.SIGUSR2},
	{"WINCH", syscall.SIGWINCH},
}

// ParseSignal parses a stop signal the way people write it in a unit
// file: TERM, SIGTERM or sigterm, or its number.
func ParseSignal(s string) (syscall.Signal, error) {
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	for _, e := range signals {
		if e.name == name {
			return e.sig, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	names := make([]string, len(signals))
	for i, e := range signals {
		names[i] = e.name
	}
	return 0, fmt.Errorf("unknown signal %q: use one of %s, or a number", s, strings.Join(names, ", "))
}

// signalName names a signal for logs.
func signalName(sig syscall.Signal) string {
	for _, e := range signals {
		if e.sig == sig {
			return "SIG" + e.name
		}
	}
	return fmt.Sprintf("signal %d", int(sig))
}
