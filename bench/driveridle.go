package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DriverIdleConfig sets up a measurement of what drivers cost while
// nothing happens: one `clustd driver shell` with no-op scripts per
// daemon, each a process of its own, so that a master's driver (which
// gets the lease renewals) can be set beside a follower's (which gets
// only pings).
type DriverIdleConfig struct {
	Bin, Dir       string
	Nodes          int
	Profile        string
	Timing         []string
	Settle, Window time.Duration
	Log            io.Writer
}

// DriverIdleResult is the drivers' idle cost, in percent of one core.
type DriverIdleResult struct {
	Nodes   int     `json:"nodes"`
	Profile string  `json:"profile"`
	WindowS float64 `json:"window_s"`
	// Stable is false if the master changed during the window.
	Stable                   bool         `json:"stable"`
	MasterCPUPct             float64      `json:"master_cpu_pct"`
	MaxFollowerCPUPct        float64      `json:"max_follower_cpu_pct"`
	MasterCtxSwitchesPS      float64      `json:"master_ctx_switches_per_s"`
	MaxFollowerCtxSwitchesPS float64      `json:"max_follower_ctx_switches_per_s"`
	Drivers                  []DriverIdle `json:"drivers"`
	Timing                   Timing       `json:"timing"`
}

// DriverIdle is one driver process's idle cost.
type DriverIdle struct {
	Node          string  `json:"node"`
	Master        bool    `json:"master"`
	CPUPct        float64 `json:"cpu_pct"`
	CtxSwitchesPS float64 `json:"ctx_switches_per_s"`
	RSSMB         float64 `json:"rss_mb"`
}

// startIdleDrivers starts a `clustd driver shell` with no-op scripts for
// each daemon of c; stop ends them (and may be called after an error).
func startIdleDrivers(c *Cluster) (drivers []*Proc, stop func(), err error) {
	stop = func() {
		for _, p := range drivers {
			p.Stop(15 * time.Second)
		}
	}
	for i := range c.IDs {
		p, err := c.StartDriver(i, "shell", "--name", "idle", "--on-master", "true", "--on-standby", "true")
		if err != nil {
			return drivers, stop, err
		}
		drivers = append(drivers, p)
	}
	return drivers, stop, nil
}

// RunDriverIdle measures the drivers of an idle cluster.
func RunDriverIdle(ctx context.Context, dc DriverIdleConfig) (*DriverIdleResult, error) {
	log := dc.Log
	if log == nil {
		log = io.Discard
	}
	c, _, err := Launch(ctx, LaunchOptions{Bin: dc.Bin, Dir: dc.Dir, Nodes: dc.Nodes, Profile: dc.Profile, Timing: dc.Timing, Log: log})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res := &DriverIdleResult{Nodes: dc.Nodes, Profile: dc.Profile, Timing: timingOf(c.Timing)}
	drivers, stop, err := startIdleDrivers(c)
	defer stop()
	if err != nil {
		return res, err
	}
	master, term, err := WaitStable(ctx, c, nil, startWait)
	if err != nil {
		return res, c.explain(err)
	}
	fmt.Fprintf(log, "  driver idle (%d nodes, %s): master %s; settling %v, then measuring %v\n", dc.Nodes, dc.Profile, c.IDs[master], dc.Settle, dc.Window)
	if err := sleepCtx(ctx, dc.Settle); err != nil {
		return res, err
	}
	read := func() ([]procSample, time.Time, error) {
		s := make([]procSample, len(drivers))
		for i, d := range drivers {
			p, err := readProc(d.Pid())
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("%s's driver: %w", c.IDs[i], err)
			}
			s[i] = p
		}
		return s, time.Now(), nil
	}
	p0, t0, err := read()
	if err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, dc.Window); err != nil {
		return res, err
	}
	p1, t1, err := read()
	if err != nil {
		return res, err
	}
	win := t1.Sub(t0).Seconds()
	res.WindowS = round3(win)
	res.Stable = true
	for i := range c.IDs {
		st, err := c.Status(ctx, i)
		if err != nil {
			return res, err
		}
		if (i == master) != (st.Role == "master") || st.Term != term {
			res.Stable = false
		}
		d := DriverIdle{
			Node:          c.IDs[i],
			Master:        i == master,
			CPUPct:        round3(100 * float64(p1[i].CPUTicks-p0[i].CPUTicks) / clockTicks / win),
			CtxSwitchesPS: round3(float64(p1[i].CtxSwitches-p0[i].CtxSwitches) / win),
			RSSMB:         round3(float64(p1[i].RSSKB) / 1024),
		}
		res.Drivers = append(res.Drivers, d)
		if d.Master {
			res.MasterCPUPct, res.MasterCtxSwitchesPS = d.CPUPct, d.CtxSwitchesPS
		} else {
			res.MaxFollowerCPUPct = max(res.MaxFollowerCPUPct, d.CPUPct)
			res.MaxFollowerCtxSwitchesPS = max(res.MaxFollowerCtxSwitchesPS, d.CtxSwitchesPS)
		}
	}
	return res, nil
}
