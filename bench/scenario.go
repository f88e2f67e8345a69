package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// Limits of one trial.
const (
	// promoteWait is how long a trial waits for a new master's driver to
	// be promoted before it counts as failed.
	promoteWait = 10 * time.Second
	// stableWait bounds the wait for the cluster to settle between trials;
	// a cluster that does not settle in this time ends the scenario.
	stableWait = 30 * time.Second
	// startWait bounds the first election of a new cluster.
	startWait = 60 * time.Second
)

// ScenarioConfig describes a cluster to run failover and transfer trials on.
type ScenarioConfig struct {
	// Bin is the clustd executable; Dir a directory for the cluster's
	// files (configuration, state, logs).
	Bin, Dir string
	Nodes    int
	Profile  string
	// FailoverTrials and TransferTrials are how many kills and how many
	// planned transfers to make.
	FailoverTrials, TransferTrials int
	// Timing overrides the profile's timing (KEY=VALUE, as in the
	// configuration file's timing section), for experiments.
	Timing []string
	// Env is added to the daemons' environment; LogLevel is the daemons'
	// log level (their logs are DIR/ID.log).
	Env      []string
	LogLevel string
	// Log receives a line per trial.
	Log io.Writer
}

// RunScenario starts a cluster with a driver per daemon, makes the
// transfer trials, then the failover trials, and stops everything. The
// results hold what was measured even when an error ends it early.
func RunScenario(ctx context.Context, sc ScenarioConfig) (*TransferResult, *FailoverResult, error) {
	log := sc.Log
	if log == nil {
		log = io.Discard
	}
	c, rec, err := Launch(ctx, LaunchOptions{
		Bin: sc.Bin, Dir: sc.Dir, Nodes: sc.Nodes, Profile: sc.Profile,
		Timing: sc.Timing, Env: sc.Env, LogLevel: sc.LogLevel, Drivers: true, Log: log,
	})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	defer rec.Stop()
	timing := timingOf(c.Timing)
	tr := &TransferResult{Nodes: sc.Nodes, Profile: sc.Profile, Timing: timing, FailureNotes: []string{}, Samples: []Sample{}}
	fr := &FailoverResult{Nodes: sc.Nodes, Profile: sc.Profile, Timing: timing, FailureNotes: []string{}, Samples: []Sample{}}
	s := &scenario{c: c, rec: rec, log: log, name: fmt.Sprintf("%d nodes, %s", sc.Nodes, sc.Profile)}

	var gaps, totals []time.Duration
	for k := 1; k <= sc.TransferTrials; k++ {
		gap, total, note, err := s.transfer(ctx)
		if err != nil {
			tr.Gap, tr.Total = summarize(gaps), summarize(totals)
			return tr, fr, err
		}
		tr.Trials++
		switch {
		case note != "":
			tr.Failures++
			tr.FailureNotes = append(tr.FailureNotes, note)
			fmt.Fprintf(log, "  transfer %2d/%d (%s): FAILED: %s\n", k, sc.TransferTrials, s.name, note)
		default:
			if gap < 0 {
				tr.Overlaps++
			}
			gaps, totals = append(gaps, gap), append(totals, total)
			tr.Samples = append(tr.Samples, Sample{MS: millis(gap), PressurePct: s.pressure})
			fmt.Fprintf(log, "  transfer %2d/%d (%s) at %s: gap %7.2f ms, request to promote %7.2f ms; CPU pressure %s\n",
				k, sc.TransferTrials, s.name, s.at.Format(clock), millis(gap), millis(total), pct(s.pressure))
		}
	}
	tr.Gap, tr.Total = summarize(gaps), summarize(totals)

	var fails, margins, daemons []time.Duration
	for k := 1; k <= sc.FailoverTrials; k++ {
		d, margin, daemon, note, err := s.failover(ctx)
		if err != nil {
			fr.Failover, fr.LeaseGap, fr.Daemon = summarize(fails), summarize(margins), summarize(daemons)
			return tr, fr, err
		}
		fr.Trials++
		switch {
		case note != "":
			fr.Failures++
			fr.FailureNotes = append(fr.FailureNotes, note)
			fmt.Fprintf(log, "  failover %2d/%d (%s): FAILED: %s\n", k, sc.FailoverTrials, s.name, note)
		default:
			if margin < 0 {
				fr.Overlaps++
			}
			fails, margins = append(fails, d), append(margins, margin)
			if daemon > 0 {
				daemons = append(daemons, daemon)
			}
			fr.Samples = append(fr.Samples, Sample{MS: millis(d), DaemonMS: millis(daemon), PressurePct: s.pressure})
			fmt.Fprintf(log, "  failover %2d/%d (%s) at %s: %7.1f ms (daemon %5.0f ms); the old master's driver demoted itself %6.1f ms after the kill, %6.1f ms before the promote; CPU pressure %s\n",
				k, sc.FailoverTrials, s.name, s.at.Format(clock), millis(d), millis(daemon), millis(d-margin), millis(margin), pct(s.pressure))
		}
	}
	fr.Failover, fr.LeaseGap, fr.Daemon = summarize(fails), summarize(margins), summarize(daemons)
	return tr, fr, nil
}

type scenario struct {
	c    *Cluster
	rec  *Recorder
	log  io.Writer
	name string
	// at is the wall-clock time of the last trial's kill or request, to
	// find it in the daemons' logs; pressure is the CPU pressure from
	// then to the promote.
	at       time.Time
	pressure *float64
}

// pct formats an optional percentage.
func pct(p *float64) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", *p)
}

// clock formats wall-clock times in progress lines as the daemons' logs do.
const clock = "15:04:05.000"

// pause waits a few heartbeats and a random fraction of two more, so that
// the measured event falls at a random point of the heartbeat cycle.
func (s *scenario) pause(ctx context.Context) error {
	hb := s.c.Timing.Heartbeat
	d := 4*hb + rand.N(2*hb)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// transfer makes one planned transfer from the master to the node it
// picks. A non-empty note is a failed trial; an error ends the scenario.
func (s *scenario) transfer(ctx context.Context) (gap, total time.Duration, note string, err error) {
	m, term, err := WaitStable(ctx, s.c, s.rec, stableWait)
	if err != nil {
		return 0, 0, "", s.c.explain(err)
	}
	if err := s.pause(ctx); err != nil {
		return 0, 0, "", err
	}
	id := s.c.IDs[m]
	if t, ok := s.rec.Last(id); !ok || !t.IsMaster || t.Term != term {
		// The master changed during the pause; try again.
		return s.transfer(ctx)
	}
	from := s.rec.Len()
	reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	s.at = time.Now()
	psi := startPressure()
	sent := boottime.Now()
	err = s.c.Admin(m).Transfer(reqCtx, "")
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, "", ctx.Err()
		}
		return 0, 0, fmt.Sprintf("transfer request to %s refused: %v", id, err), nil
	}
	wctx, cancel := context.WithTimeout(ctx, promoteWait)
	defer cancel()
	p, ok := s.rec.WaitFor(wctx, from, func(t Trigger) bool { return t.IsMaster && t.Node != id && t.Term > term })
	s.pressure = psi.percent()
	if !ok {
		if ctx.Err() != nil {
			return 0, 0, "", ctx.Err()
		}
		return 0, 0, fmt.Sprintf("no driver promoted within %v of the transfer request to %s (term %d)", promoteWait, id, term), nil
	}
	// The daemon waits for its drivers' acknowledgements before it hands
	// over, so the demote is already recorded; should it come after the
	// promote, the drivers overlapped, which the negative gap shows.
	dctx, cancel := context.WithTimeout(ctx, s.c.Timing.ElectionMax+time.Second)
	defer cancel()
	dem, ok := s.rec.WaitFor(dctx, from, func(t Trigger) bool { return t.Node == id && !t.IsMaster })
	switch {
	case ctx.Err() != nil:
		return 0, 0, "", ctx.Err()
	case !ok:
		return 0, 0, fmt.Sprintf("%s's driver was promoted in term %d, but %s's driver saw no demote", p.Node, p.Term, id), nil
	}
	return p.Called - dem.Returned, p.Called - sent, "", nil
}

// failover kills the master with SIGKILL, waits for another driver to be
// promoted, restarts the killed node and waits for it to rejoin. A
// non-empty note is a failed trial; an error ends the scenario.
func (s *scenario) failover(ctx context.Context) (d, margin, daemon time.Duration, note string, err error) {
	// A node restarted by the previous trial refuses votes for one
	// election timeout after it started; let that pass, so that every
	// trial starts from a cluster whose members can all vote.
	for i := range s.c.IDs {
		if p := s.c.Proc(i); p != nil {
			if wait := p.Started() + 2*s.c.Timing.ElectionMax - boottime.Now(); wait > 0 {
				select {
				case <-ctx.Done():
					return 0, 0, 0, "", ctx.Err()
				case <-time.After(wait):
				}
			}
		}
	}
	m, term, err := WaitStable(ctx, s.c, s.rec, stableWait)
	if err != nil {
		return 0, 0, 0, "", s.c.explain(err)
	}
	if err := s.pause(ctx); err != nil {
		return 0, 0, 0, "", err
	}
	id := s.c.IDs[m]
	if t, ok := s.rec.Last(id); !ok || !t.IsMaster || t.Term != term {
		// The master changed during the pause; try again.
		return s.failover(ctx)
	}
	from := s.rec.Len()
	s.at = time.Now()
	psi := startPressure()
	killed, err := s.c.Kill(m)
	if err != nil {
		return 0, 0, 0, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, promoteWait)
	p, ok := s.rec.WaitFor(wctx, from, func(t Trigger) bool { return t.IsMaster && t.Node != id && t.Term > term })
	cancel()
	s.pressure = psi.percent()
	if !ok {
		if ctx.Err() != nil {
			return 0, 0, 0, "", ctx.Err()
		}
		note = fmt.Sprintf("no driver promoted within %v of killing master %s (term %d)", promoteWait, id, term)
	} else {
		// The killed daemon's driver demotes itself when its lease runs
		// out; that has happened well before a promote, unless something
		// is wrong, so the wait is short.
		wctx, cancel := context.WithTimeout(ctx, s.c.Timing.ElectionMax+time.Second)
		dem, ok := s.rec.WaitFor(wctx, from, func(t Trigger) bool { return t.Node == id && !t.IsMaster })
		cancel()
		switch {
		case ctx.Err() != nil:
			return 0, 0, 0, "", ctx.Err()
		case !ok:
			note = fmt.Sprintf("%s's driver was promoted, but the killed master %s's driver never demoted itself", p.Node, id)
		default:
			d, margin = p.Called-killed, p.Called-dem.Returned
			if at := s.becameMaster(ctx, p); at > 0 {
				daemon = at - killed
			}
		}
	}
	if err := s.c.Start(m); err != nil {
		return 0, 0, 0, "", err
	}
	return d, margin, daemon, note, nil
}

// becameMaster asks the daemon whose driver was promoted by p since when
// it has been master: the reading is the status's since_ms back from when
// the answer arrived, good to a millisecond or two. It returns 0 if the
// daemon is no longer master of p's term.
func (s *scenario) becameMaster(ctx context.Context, p Trigger) time.Duration {
	i := s.c.Index(p.Node)
	st, err := s.c.Status(ctx, i)
	at := boottime.Now()
	if err != nil || st.Role != "master" || st.Term != p.Term {
		return 0
	}
	return at - time.Duration(st.SinceMS)*time.Millisecond
}

// explain adds the end of every node's log to err.
func (c *Cluster) explain(err error) error {
	msg := err.Error()
	for i, id := range c.IDs {
		msg += fmt.Sprintf("\n--- last lines of %s's log (%s/%s.log) ---\n%s", id, c.Dir, id, c.LogTail(i, 8))
	}
	return fmt.Errorf("%s", msg)
}
