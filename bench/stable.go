package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/clustd/clustd/node/api"
)

// pollEvery is how often the cluster's status is read while waiting.
const pollEvery = 25 * time.Millisecond

// WaitStable waits until the running daemons agree on one master that holds
// a lease, the master reaches every running node, every running daemon has
// its driver connected, and the drivers' last states match (the master's
// driver was promoted in the master's term, no other driver is master). It
// returns the master's index and term.
func WaitStable(ctx context.Context, c *Cluster, rec *Recorder, timeout time.Duration) (int, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	why := "no answer yet"
	for {
		if err := c.exited(); err != nil {
			return -1, 0, err
		}
		m, term, reason := stableOnce(ctx, c, rec)
		if reason == "" {
			return m, term, nil
		}
		why = reason
		select {
		case <-ctx.Done():
			return -1, 0, fmt.Errorf("cluster not stable after %v: %s", timeout, why)
		case <-time.After(pollEvery):
		}
	}
}

// stableOnce checks once; it returns why the cluster is not stable, or "".
func stableOnce(ctx context.Context, c *Cluster, rec *Recorder) (int, uint64, string) {
	sts := make([]*api.Status, len(c.IDs))
	master := -1
	for i := range c.IDs {
		if !c.Running(i) {
			continue
		}
		st, err := c.Status(ctx, i)
		if err != nil {
			return -1, 0, fmt.Sprintf("%s: %v", c.IDs[i], err)
		}
		sts[i] = st
		if st.Role == "master" && st.LeaseMS > 0 {
			if master >= 0 {
				return -1, 0, fmt.Sprintf("%s and %s both say master", c.IDs[master], c.IDs[i])
			}
			master = i
		}
	}
	if master < 0 {
		return -1, 0, "no master: " + describeStatuses(c, sts)
	}
	ms := sts[master]
	for i, st := range sts {
		if st == nil || i == master {
			continue
		}
		if st.Role != "follower" || st.Master != ms.Node || st.Term != ms.Term {
			return -1, 0, "not settled: " + describeStatuses(c, sts)
		}
	}
	for _, m := range ms.Members {
		if i := c.Index(m.ID); i >= 0 && c.Running(i) && !m.Reachable {
			return -1, 0, fmt.Sprintf("master %s does not reach %s yet", ms.Node, m.ID)
		}
	}
	if rec != nil {
		for i, id := range c.IDs {
			if !c.Running(i) {
				continue
			}
			t, ok := rec.Last(id)
			if i == master && (!ok || !t.IsMaster || t.Term != ms.Term) {
				return -1, 0, fmt.Sprintf("driver of master %s not promoted in term %d yet", id, ms.Term)
			}
			if i != master && ok && t.IsMaster {
				return -1, 0, fmt.Sprintf("driver of %s still master (term %d)", id, t.Term)
			}
		}
		for i, id := range c.IDs {
			if !c.Running(i) {
				continue
			}
			samples, err := c.Metrics(ctx, i)
			if err != nil {
				return -1, 0, fmt.Sprintf("%s metrics: %v", id, err)
			}
			if v, _ := Find(samples, "clustd_drivers_connected"); v != 1 {
				return -1, 0, fmt.Sprintf("%s has %v drivers connected", id, v)
			}
		}
	}
	return master, ms.Term, ""
}

func describeStatuses(c *Cluster, sts []*api.Status) string {
	var parts []string
	for i, st := range sts {
		if st == nil {
			parts = append(parts, c.IDs[i]+"=down")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%s/t%d/m%q", c.IDs[i], st.Role, st.Term, st.Master))
	}
	return strings.Join(parts, " ")
}

// ExitedError is a daemon that exited when it should be running.
type ExitedError struct {
	Node, Status, Log string
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("daemon %s exited (%s); the end of its log:\n%s", e.Node, e.Status, e.Log)
}

// exited returns an *ExitedError for the first daemon that was started and
// is no longer running.
func (c *Cluster) exited() error {
	for i, id := range c.IDs {
		if p := c.Proc(i); p != nil && !p.Running() {
			return &ExitedError{Node: id, Status: p.State().String(), Log: c.LogTail(i, 8)}
		}
	}
	return nil
}

// LaunchOptions describes a cluster to start.
type LaunchOptions struct {
	Bin, Dir string
	Nodes    int
	Profile  string
	// Timing, Env, LogLevel, RunBin and RunArgs are as in Cluster and
	// NewCluster.
	Timing   []string
	Env      []string
	LogLevel string
	RunBin   string
	RunArgs  func(i int) []string
	// Drivers starts one driver per daemon.
	Drivers bool
	Log     io.Writer
}

// Launch configures and starts a cluster (and its drivers) and waits for
// its first master. A daemon that exits while the cluster starts has most
// likely found one of its ports taken since they were checked (by another
// program on this machine): Launch then tries again on other ports, up to
// three times in all. The caller must Close the cluster and Stop the
// recorder (nil without drivers).
func Launch(ctx context.Context, lo LaunchOptions) (*Cluster, *Recorder, error) {
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		dir := lo.Dir
		if attempt > 1 {
			dir = fmt.Sprintf("%s-attempt%d", lo.Dir, attempt)
		}
		c, err := NewCluster(ctx, lo.Bin, dir, lo.Nodes, lo.Profile, lo.Timing...)
		if err != nil {
			return nil, nil, err
		}
		c.RunBin, c.RunArgs, c.Env, c.LogLevel = lo.RunBin, lo.RunArgs, lo.Env, lo.LogLevel
		var rec *Recorder
		err = c.StartAll()
		if err == nil && lo.Drivers {
			rec, err = StartDrivers(ctx, c)
		}
		if err == nil {
			if _, _, err = WaitStable(ctx, c, rec, startWait); err == nil {
				return c, rec, nil
			}
		}
		if rec != nil {
			rec.Stop()
		}
		c.Close()
		var ex *ExitedError
		if ctx.Err() != nil || !errors.As(err, &ex) {
			return nil, nil, c.explain(err)
		}
		if lo.Log != nil {
			fmt.Fprintf(lo.Log, "  a daemon exited while the cluster started; trying again on other ports: %v\n", err)
		}
		last = err
	}
	return nil, nil, last
}
