// Package check runs a health check on a schedule and reports the result to
// the clustd daemon as the driver's health.
//
// A check driver connected with Required makes its node ineligible while
// the check fails: a master hands over through the planned path, and a
// follower is not elected. The check must fail Fall times in a row before
// it counts as failing, and succeed Rise times in a row before it counts
// as passing again, so that one slow answer does not move the master.
//
// Flap damping: a node that loses the master role to its own failing check
// twice within FlapWindow stays ineligible until FlapWindow has passed
// since the second loss, or until `clustd maintenance off` (an
// EventMaintenance passed to Event), whatever the check says meanwhile, so that a
// service that fails only under load does not bounce the master between
// machines.
package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/drivers/common"
)

// Defaults of Options.
const (
	DefaultInterval   = 2 * time.Second
	DefaultTimeout    = time.Second
	DefaultFall       = 3
	DefaultRise       = 2
	DefaultFlapWindow = 10 * time.Minute
)

// flapLosses is how many losses of the master role within the window
// start the damping.
const flapLosses = 2

// A Probe checks once. It returns nil when the checked thing is well, and
// must return soon after ctx ends.
type Probe func(ctx context.Context) error

// Options configures a Driver. Probe is required.
type Options struct {
	// Name names the check in logs and health reasons.
	Name string
	// Probe is the check.
	Probe Probe
	// Interval is the time from the start of one probe to the start of the
	// next; Timeout bounds each probe.
	Interval, Timeout time.Duration
	// Fall is how many failures in a row make the check fail; Rise how
	// many successes in a row make it pass again.
	Fall, Rise int
	// FlapWindow is the window of flap damping; zero turns damping off.
	FlapWindow time.Duration
	// Logger receives the driver's logs; the default is slog.Default().
	Logger *slog.Logger
	// SetHealth receives the check's result as it changes; the
	// command-line driver passes driverclient.Client.SetHealth.
	SetHealth func(ok bool, reason string)
	// Now reads the wall clock of flap damping; tests replace it.
	Now func() time.Time
}

// Driver runs the check and follows the node's role. It implements
// driverclient.Driver; Run runs the probes.
type Driver struct {
	opts   Options
	log    *slog.Logger
	health *common.Health

	mu sync.Mutex
	// known is false until the first probe's result: until then nothing is
	// reported, and the daemon counts the driver healthy once connected.
	known   bool
	passing bool
	fails   int
	oks     int
	last    error
	master  bool
	// losses are the times the master role was lost to this check, oldest
	// first, within the window.
	losses      []time.Time
	dampedUntil time.Time
}

// New checks opts, fills in the defaults and returns a Driver.
func New(opts Options) (*Driver, error) {
	if opts.Probe == nil {
		return nil, errors.New("check: no probe")
	}
	if opts.Name == "" {
		opts.Name = "check"
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Fall == 0 {
		opts.Fall = DefaultFall
	}
	if opts.Rise == 0 {
		opts.Rise = DefaultRise
	}
	switch {
	case opts.Interval < 0:
		return nil, fmt.Errorf("check: interval %v: must be positive", opts.Interval)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("check: timeout %v: must be positive", opts.Timeout)
	case opts.Fall < 0:
		return nil, fmt.Errorf("check: fall %d: must be at least 1", opts.Fall)
	case opts.Rise < 0:
		return nil, fmt.Errorf("check: rise %d: must be at least 1", opts.Rise)
	case opts.FlapWindow < 0:
		return nil, fmt.Errorf("check: flap window %v: must not be negative", opts.FlapWindow)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{opts: opts, log: log.With("check", opts.Name), health: common.NewHealth(opts.SetHealth)}, nil
}

// Trigger only notes whether the node is master: a check does nothing on
// promote or demote, but a master's failing check is what flap damping
// counts.
func (d *Driver) Trigger(_ context.Context, s driverclient.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.master = s.IsMaster
	return nil
}

// Run probes every Interval until ctx ends, the first time at once.
func (d *Driver) Run(ctx context.Context) {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
		err := d.opts.Probe(pctx)
		if err == nil && pctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %v", d.opts.Timeout)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.Record(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Record counts one probe's result and reports health when the check
// starts or stops failing. Run calls it; tests call it directly.
func (d *Driver) Record(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.opts.Now()
	if err != nil {
		d.fails++
		d.oks = 0
		d.last = err
		if d.fails == 1 || !d.passing {
			d.log.Warn("check failed", "failures", d.fails, "fall", d.opts.Fall, "err", err)
		}
	} else {
		d.oks++
		d.fails = 0
		if !d.passing && d.known {
			d.log.Info("check passed", "successes", d.oks, "rise", d.opts.Rise)
		}
	}
	switch {
	case !d.known:
		// The first result decides: a node whose service is down at start
		// must not win an election while fall probes are counted.
		d.known, d.passing = true, err == nil
		if !d.passing {
			d.log.Warn("check failing from the start: the node is ineligible while it fails", "err", err)
		}
	case d.passing && d.fails >= d.opts.Fall:
		d.passing = false
		d.log.Warn("check failing: the node is ineligible while it fails", "failures", d.fails, "err", err)
		if d.master {
			d.lostMaster(now)
		}
	case !d.passing && d.oks >= d.opts.Rise:
		d.passing = true
		d.log.Info("check passing again", "successes", d.oks)
	}
	d.report(now)
}

// lostMaster counts a master role lost to this check, and starts damping
// at the second within the window.
func (d *Driver) lostMaster(now time.Time) {
	if d.opts.FlapWindow <= 0 {
		return
	}
	keep := d.losses[:0]
	for _, t := range d.losses {
		if now.Sub(t) < d.opts.FlapWindow {
			keep = append(keep, t)
		}
	}
	d.losses = append(keep, now)
	if len(d.losses) >= flapLosses {
		d.dampedUntil = now.Add(d.opts.FlapWindow)
		d.log.Warn("flap damping: this node lost the master role to this check twice within the flap window; it stays ineligible until the window has passed",
			"window", d.opts.FlapWindow, "losses", fmt.Sprint(d.losses), "until", d.dampedUntil.Format(time.RFC3339))
	}
}

// report sends the health the counts give.
func (d *Driver) report(now time.Time) {
	switch {
	case !d.passing:
		d.health.Set(false, fmt.Sprintf("check %s failing: %v", d.opts.Name, d.last))
	case now.Before(d.dampedUntil):
		d.health.Set(false, fmt.Sprintf("check %s flapping: lost the master role to it %d times within %v; ineligible until %s",
			d.opts.Name, flapLosses, d.opts.FlapWindow, d.dampedUntil.Format(time.RFC3339)))
	default:
		if !d.dampedUntil.IsZero() {
			d.log.Info("flap damping over", "since", d.dampedUntil.Format(time.RFC3339))
			d.dampedUntil = time.Time{}
			d.losses = nil
		}
		d.health.Set(true, "")
	}
}

// Event takes the daemon's event stream (driverclient.Options.OnEvent):
// `clustd maintenance off` ends flap damping, since the operator has
// looked at the node.
func (d *Driver) Event(ev driverproto.Event) {
	if ev.Kind != driverproto.EventMaintenance || ev.Detail != "off" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dampedUntil.IsZero() {
		return
	}
	d.log.Info("flap damping cleared: clustd maintenance off", "was_until", d.dampedUntil.Format(time.RFC3339))
	d.dampedUntil, d.losses = time.Time{}, nil
	if d.known {
		d.report(d.opts.Now())
	}
}

// Passing reports whether the check counts as passing now, damping aside.
func (d *Driver) Passing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.known && d.passing
}
