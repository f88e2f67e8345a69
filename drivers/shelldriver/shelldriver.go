// Package shelldriver runs the classic pair of scripts of a failover setup:
// one when this node becomes the clustd master, one when it stops being
// master.
//
// The scripts run with /bin/sh -c and the CLUSTD_* variables in their
// environment (see package common), one at a time and in order, each
// bounded by a timeout. Their output goes to the driver's log line by line.
// A script that fails or times out fails the Trigger, so the daemon hears
// of it in the acknowledgement, and makes the driver unhealthy until a
// later script succeeds.
package shelldriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/drivers/common"
)

// Defaults of Options.
const (
	DefaultShell   = "/bin/sh"
	DefaultTimeout = 30 * time.Second
)

// Script names, as they appear in logs and errors.
const (
	OnMaster  = "on-master"
	OnStandby = "on-standby"
)

// outputDrain is how long a script's output is awaited after the script
// exits, so that its last lines are logged before the line saying how it
// ended. Processes the script left in the background may hold the output
// open for much longer; their lines are still logged as they come, but
// nobody waits for them.
const outputDrain = 100 * time.Millisecond

// Options configures a Driver. OnMaster and OnStandby are required.
type Options struct {
	// OnMaster is run when the node becomes master.
	OnMaster string
	// OnStandby is run when the node stops being master, and once at the
	// first state if that is not master, so that the machine starts out in
	// a known state.
	OnStandby string
	// Shell runs the scripts as Shell -c SCRIPT; the default is /bin/sh.
	Shell string
	// Timeout bounds each script; at the timeout its whole process group
	// is killed and the script counts as failed. The default is 30s.
	Timeout time.Duration
	// Dir is the scripts' working directory; empty means the driver's.
	Dir string
	// Env is the scripts' environment before the CLUSTD_* variables are
	// added; nil means the driver's own environment.
	Env []string
	// Logger receives the driver's logs and the scripts' output; the
	// default is slog.Default().
	Logger *slog.Logger
	// SetHealth, if set, receives the driver's health as it changes; the
	// command-line driver passes driverclient.Client.SetHealth.
	SetHealth func(ok bool, reason string)
}

// Driver runs Options.OnMaster and Options.OnStandby as the node's role
// changes. It implements driverclient.Driver.
type Driver struct {
	opts   Options
	log    *slog.Logger
	health *common.Health

	// mu is held for a whole Trigger: driverclient never overlaps them,
	// and this keeps the scripts from overlapping even when the Driver is
	// used without it.
	mu sync.Mutex
	// acted says a script has run; master and term say which state it
	// brought the machine to. standbyFailed asks the next non-master
	// state to run on-standby again.
	acted         bool
	master        bool
	term          uint64
	standbyFailed bool
}

// New checks opts, fills in the defaults and returns a Driver.
func New(opts Options) (*Driver, error) {
	if opts.OnMaster == "" || opts.OnStandby == "" {
		return nil, errors.New("shelldriver: both the on-master and the on-standby script are required")
	}
	if opts.Shell == "" {
		opts.Shell = DefaultShell
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("shelldriver: timeout %v: must be positive", opts.Timeout)
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{opts: opts, log: log, health: common.NewHealth(opts.SetHealth)}, nil
}

// Trigger runs on-master when the node becomes master, and on-standby when
// it stops being master or, at the first state, is not master. Other
// changes (a follower becoming candidate, a new master elsewhere) run
// nothing. A master state of a newer term than the one on-master ran for
// means the demote in between was skipped: on-standby runs, then on-master
// with the new term.
//
// A failed on-master is not run again for the same term: start scripts are
// seldom safe to repeat, and the unhealthy report will move the role
// elsewhere. The on-standby that follows still runs, to clean up. A failed
// on-standby runs again at the next state that is not master.
//
// On-master is killed when ctx ends: the promote was overtaken by a demote
// or by the end of the lease. On-standby is bounded by its timeout and by
// ctx's deadline, if any, by which the demote must be over (the next master
// may start soon after): an on-standby still running shortly before that
// deadline (common.KillAt) is killed with its whole process group, and so
// is one whose ctx, with a deadline, ends sooner: the demote was cut short.
// A ctx without a deadline bounds nothing, and its end is ignored, since
// stopping is what must happen then. A demote that ends after its deadline
// all the same is logged as an error and returns one, for the daemon to
// count.
func (d *Driver) Trigger(ctx context.Context, s driverclient.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.IsMaster {
		if d.acted && d.master {
			if d.term == s.Term {
				return nil
			}
			d.log.Warn("term changed while master: running on-standby, then on-master with the new term", "old_term", d.term, "term", s.Term)
			down := s
			down.IsMaster, down.Role = false, driverproto.RoleFollower
			down.Reason = fmt.Sprintf("term %d ended while master (now term %d)", d.term, s.Term)
			if err := d.standby(ctx, down); err != nil {
				return err
			}
		}
		// From here on the machine may be master in part: on-standby must
		// run at the next demote, whatever on-master does.
		d.acted, d.master, d.term = true, true, s.Term
		return d.run(ctx, OnMaster, d.opts.OnMaster, s)
	}
	if d.acted && !d.master && !d.standbyFailed {
		return nil
	}
	return d.standby(ctx, s)
}

// DemoteTimeout returns the longest a demote may take: the timeout of
// on-standby. The driver declares it to the daemon
// (driverclient.Options.DemoteTimeout).
func (d *Driver) DemoteTimeout() time.Duration { return d.opts.Timeout }

// standby runs on-standby for s, killing it shortly before ctx's deadline
// or when ctx ends, if ctx has a deadline, and immune to ctx otherwise.
func (d *Driver) standby(ctx context.Context, s driverclient.State) error {
	d.acted, d.master = true, false
	deadline := common.Deadline(ctx)
	sctx := context.WithoutCancel(ctx)
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		sctx, cancel = context.WithDeadline(ctx, common.KillAt(deadline, time.Now()))
		defer cancel()
	}
	err := d.run(sctx, OnStandby, d.opts.OnStandby, s)
	if !deadline.IsZero() {
		if late := time.Since(deadline); late > 0 {
			d.log.Error("demote overran its deadline: on-standby may have run beside the next master's on-master", "script", OnStandby, "late_by", late.Round(time.Millisecond).String())
			if err == nil {
				err = fmt.Errorf("%s finished %v past the demote's deadline", OnStandby, late.Round(time.Millisecond))
			}
		}
	}
	d.standbyFailed = err != nil
	return err
}

// run runs one script for state s and reports the outcome as health.
func (d *Driver) run(ctx context.Context, name, script string, s driverclient.State) error {
	err := d.exec(ctx, name, script, s)
	if err != nil {
		d.health.Set(false, err.Error())
		return err
	}
	d.health.Set(true, "")
	return nil
}

func (d *Driver) exec(ctx context.Context, name, script string, s driverclient.State) error {
	// Which of the two ended the script tells the user what to fix.
	deadline, early := ctx.Deadline()
	early = early && time.Until(deadline) < d.opts.Timeout
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	log := d.log.With("script", name)

	log.Info("running", "role", common.Role(s), "term", s.Term, "master", s.Master)
	began := time.Now()
	g, output, err := d.start(script, s, log)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var why string
	select {
	case <-g.Done():
	case <-ctx.Done():
		why = d.killReason(ctx, name, began, early)
		// A script that overran gets no second chance to misbehave.
		if _, err := g.Stop(syscall.SIGKILL, 0); err != nil {
			log.Error("script does not die", "pid", g.Pid(), "err", err)
		}
	}
	// Waiting for output is not worth overrunning a deadline.
	drain := outputDrain
	if early {
		drain = max(0, min(drain, time.Until(deadline)))
	}
	waitAtMost(output, drain)

	took := time.Since(began).Round(time.Millisecond).String()
	switch {
	case why != "":
		log.Error("script "+why, "took", took)
		return fmt.Errorf("%s %s", name, why)
	case g.Err() != nil:
		log.Error("script failed", "status", g.Err().Error(), "took", took)
		return fmt.Errorf("%s failed: %v", name, g.Err())
	}
	log.Info("script done", "took", took)
	return nil
}

// start starts script for state s, logging its output lines to log until
// the returned group is done.
func (d *Driver) start(script string, s driverclient.State, log *slog.Logger) (*common.Group, *sync.WaitGroup, error) {
	// The output goes through pipes of our own rather than os/exec's, so
	// that a daemon the script starts in the background, which inherits
	// them, cannot make the script look unfinished.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	cmd := exec.Command(d.opts.Shell, "-c", script)
	cmd.Env = common.Env(d.opts.Env, s)
	cmd.Dir = d.opts.Dir
	cmd.Stdout, cmd.Stderr = outW, errW
	g, err := common.Start(cmd)
	// The child has its own copies; ours would keep the pipes open.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, nil, err
	}
	output := &sync.WaitGroup{}
	output.Go(func() {
		defer outR.Close()
		common.LogLines(outR, log, slog.LevelInfo, "output", "stream", "stdout")
	})
	output.Go(func() {
		defer errR.Close()
		common.LogLines(errR, log, slog.LevelWarn, "output", "stream", "stderr")
	})
	return g, output, nil
}

// killReason says why ctx ended the script name, started at began: early
// means the caller's deadline came before the script's own timeout.
func (d *Driver) killReason(ctx context.Context, name string, began time.Time, early bool) string {
	after := time.Since(began).Round(time.Millisecond).String()
	switch {
	case errors.Is(ctx.Err(), context.Canceled) && name == OnStandby:
		return "killed after " + after + ": the demote was cut short"
	case errors.Is(ctx.Err(), context.Canceled):
		return "cancelled: the promote was overtaken by a demote or the end of the lease"
	case early && name == OnStandby:
		return "killed after " + after + ": the demote must be over by its deadline"
	case early:
		return "killed after " + after + ": the promote's deadline came"
	}
	return "timed out after " + d.opts.Timeout.String()
}

// waitAtMost waits for wg, but no longer than d.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
