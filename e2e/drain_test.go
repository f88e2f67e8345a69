package e2e

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/drainlog"
)

// drainTick is how often drainsvc logs that it is active. A run killed
// with SIGKILL counts as active for one tick after its last line.
const drainTick = 5 * time.Millisecond

// TestDrainingServiceNeverOnTwoNodes runs `clustd driver exec` on each of
// three nodes (default profile) with drainsvc, a service that keeps working
// for 300 ms after SIGTERM and logs when it is active. Through a SIGSTOP of
// the master's daemon past its lease (its driver keeps running), a kill -9
// of the master's daemon alone, a kill -9 of the master's daemon and its
// driver, and a planned transfer, the logs of the three nodes must never
// show the service active on two at once: with the profile's stop budget,
// with one larger than the drain (then every SIGTERM is drained to the
// end), and with one smaller (then the service is killed at the budget).
//
// Without the stop budget, a new master promoted its drivers at once and
// started the service while the old master's copy was still draining:
// after the SIGSTOP and after the kill -9 of the daemon alone, the service
// ran on two nodes, for 90 to 240 ms each time.
func TestDrainingServiceNeverOnTwoNodes(t *testing.T) {
	const drain = 300 * time.Millisecond
	// The parallel subtests share drainsvc: it goes once they all ended.
	t.Cleanup(drainlog.Cleanup)
	for _, tt := range []struct {
		name   string
		budget time.Duration // 0: the profile's
	}{
		{"profile budget", 0},
		{"budget above the drain", time.Second},
		{"budget below the drain", 100 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var configure func(*testCluster)
			if tt.budget > 0 {
				configure = func(c *testCluster) {
					for i := range c.ids {
						c.editConfig(i, "timing:\n", fmt.Sprintf("timing:\n  stop_budget: %v\n", tt.budget))
					}
				}
			}
			runs := drainFaults(t, drain, configure)
			var total, worst time.Duration
			overlaps := drainlog.Overlaps(runs, drainTick)
			for _, o := range overlaps {
				t.Errorf("the service ran on two nodes at once for %v: %s [%v] and %s [%v]", o.Len(), o.A, endOf(o.A), o.B, endOf(o.B))
				total += o.Len()
				worst = max(worst, o.Len())
			}
			var drained, killed int
			for _, r := range runs {
				switch {
				case r.Stopped == 0:
					// Killed with its driver, or still running.
				case r.Exited:
					drained++
				default:
					killed++
					if tt.budget > drain {
						t.Errorf("with a stop budget of %v the service was killed %v after SIGTERM, before its %v drain was over: %s", tt.budget, r.Last-r.Stopped, drain, r)
					}
				}
			}
			if tt.budget > 0 && tt.budget < drain && killed == 0 {
				t.Errorf("with a stop budget of %v below the %v drain, no run of the service was killed: %v", tt.budget, drain, runs)
			}
			gaps, best := handOvers(runs)
			t.Logf("%d runs of the service in all, %d drained to the end, %d killed after SIGTERM; %d overlaps, %v in all, %v at worst; from one run's end to the next one's start: %s (closest %v)",
				len(runs), drained, killed, len(overlaps), total, worst, gaps, best.Round(100*time.Microsecond))
		})
	}
}

// drainFaults starts three nodes (default profile), each with `clustd
// driver exec` running drainsvc with the given drain, lets configure edit
// the configuration files first if it is not nil, runs the four faults
// against the master of the moment, and returns every run of the service.
func drainFaults(t *testing.T, drain time.Duration, configure func(c *testCluster)) []drainlog.Run {
	t.Helper()
	bin := drainlog.Build(t)
	c := newCluster(t, 3, profileDefault)
	if configure != nil {
		configure(c)
	}
	c.startAll()
	files := make([]string, len(c.ids))
	drivers := make([]*driverProc, len(c.ids))
	startDriver := func(i int) {
		drivers[i] = c.startDriverProc(i, "exec", "--", bin, "--out", files[i], "--drain", drain.String(), "--tick", drainTick.String())
	}
	for i := range c.ids {
		files[i] = filepath.Join(c.dir, "active-"+c.ids[i])
		startDriver(i)
	}
	// active reports whether the service runs on node i now: its latest
	// run logged recently and has not exited.
	active := func(i int) bool {
		runs, err := drainlog.Read(c.ids[i], files[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 {
			return false
		}
		r := runs[len(runs)-1]
		return !r.Exited && drainlog.Now()-r.Last < 20*drainTick
	}
	waitActive := func(i int) {
		t.Helper()
		c.waitFor(15*time.Second, "the service to run on "+c.ids[i], func() bool { return active(i) })
	}

	m, _, _ := c.waitMaster(15 * time.Second)
	waitActive(m)

	fault := func(name string, act func(m int) []int) {
		t.Helper()
		at := drainlog.Now()
		candidates := act(m)
		m2, st, _ := c.waitMaster(15*time.Second, candidates...)
		if m2 == m {
			t.Fatalf("%s: %s is still master", name, c.ids[m])
		}
		waitActive(m2)
		t.Logf("%s of %s: %s is master in term %d, the service runs there %v after the fault", name, c.ids[m], c.ids[m2], st.Term, drainlog.Now()-at)
		m = m2
	}

	var paused int
	fault("SIGSTOP of the daemon", func(m int) []int {
		paused = m
		c.signal(m, syscall.SIGSTOP)
		return c.others(m)
	})
	c.signal(paused, syscall.SIGCONT)
	c.waitFor(15*time.Second, "the resumed node to follow", func() bool {
		s, err := c.status(paused)
		return err == nil && s.Role == "follower" && s.Master == c.ids[m]
	})

	var killed int
	fault("kill -9 of the daemon", func(m int) []int {
		killed = m
		c.kill(m)
		return c.others(m)
	})
	c.start(killed)
	c.waitFor(15*time.Second, "the restarted node to follow and count its driver", func() bool {
		s, err := c.status(killed)
		return err == nil && s.Master == c.ids[m] && c.driversConnected(killed) == 1
	})

	fault("kill -9 of the daemon and its driver", func(m int) []int {
		killed = m
		drivers[m].Signal(syscall.SIGKILL)
		c.kill(m)
		<-drivers[m].Done()
		return c.others(m)
	})
	c.start(killed)
	startDriver(killed)
	c.waitFor(15*time.Second, "the restarted node to follow and count its new driver", func() bool {
		s, err := c.status(killed)
		return err == nil && s.Master == c.ids[m] && c.driversConnected(killed) == 1
	})

	fault("transfer", func(m int) []int {
		out, err := exec.Command(clustdBin, "transfer", "--config", c.cfgPath[m]).CombinedOutput()
		if err != nil {
			t.Fatalf("clustd transfer: %v\n%s", err, out)
		}
		return nil
	})

	var all []drainlog.Run
	for i := range c.ids {
		runs, err := drainlog.Read(c.ids[i], files[i])
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, runs...)
	}
	return all
}

// handOvers describes, in order, the time between the end of each run and
// the start of the next on another node (negative for an overlap), and
// returns the shortest.
func handOvers(runs []drainlog.Run) (string, time.Duration) {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b drainlog.Run) int { return int(a.Start - b.Start) })
	best := time.Duration(math.MaxInt64)
	var parts []string
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if a.Node != b.Node {
			gap := b.Start - a.End(drainTick)
			best = min(best, gap)
			parts = append(parts, fmt.Sprintf("%s→%s %v", a.Node, b.Node, gap.Round(100*time.Microsecond)))
		}
	}
	return strings.Join(parts, ", "), best
}

// endOf describes how a run ended, for failures.
func endOf(r drainlog.Run) string {
	if r.Stopped == 0 {
		return "never signalled"
	}
	return fmt.Sprintf("SIGTERM at %v, last active %v later", r.Stopped, r.Last-r.Stopped)
}
