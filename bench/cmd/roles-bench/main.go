// Command roles-bench measures what roles cost (BENCHMARKS.md, "Roles"):
// the idle CPU of the master of a five-node cluster holding 1, 10 and 100
// roles, and the failover of ten roles after kill -9 of the node holding
// them all, each role's time to a new master.
//
//	go run ./bench/cmd/roles-bench [-roles 1,10,100] [-window 20s] [-trials 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clustd/clustd/bench"
	"github.com/clustd/clustd/internal/boottime"
)

func main() {
	rolesFlag := flag.String("roles", "1,10,100", "idle: the numbers of roles to measure")
	window := flag.Duration("window", 20*time.Second, "idle: the measured window")
	settle := flag.Duration("settle", 5*time.Second, "idle: how long the cluster runs before the window")
	trials := flag.Int("trials", 10, "failover: kills of the node holding every role (0 skips)")
	failRoles := flag.Int("failover-roles", 10, "failover: the number of roles")
	keep := flag.Bool("keep", false, "keep the clusters' folders (logs, configuration) and print where")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "roles-bench-")
	if err != nil {
		fail(err)
	}
	if *keep {
		fmt.Println("folders kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "clustd")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/clustd").CombinedOutput(); err != nil {
		fail(fmt.Errorf("building clustd: %v\n%s", err, out))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at the start: %s", load)
	for _, f := range strings.Split(*rolesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-roles: %q", f))
		}
		if err := idle(ctx, bin, filepath.Join(dir, "idle-"+f), n, *settle, *window); err != nil {
			fail(err)
		}
	}
	if *trials > 0 {
		if err := failover(ctx, bin, filepath.Join(dir, "failover"), *failRoles, *trials); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "roles-bench:", err)
	os.Exit(1)
}

// withRoles writes n roles, all preferring n1, into every file of c.
func withRoles(c *bench.Cluster, n int, holdDown time.Duration) error {
	var b strings.Builder
	b.WriteString("\nroles:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    priorities: {n1: 100}\n    preempt: true\n    hold_down: %v\n", i, holdDown)
	}
	for _, path := range c.Configs {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(b.String())
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// holdsAll waits until node i is master of every role as every running
// node sees it.
func holdsAll(ctx context.Context, c *bench.Cluster, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for j := range c.IDs {
			if !c.Running(j) {
				continue
			}
			s, err := c.Status(ctx, j)
			if err != nil || len(s.Roles) == 0 {
				ok = false
				break
			}
			for _, r := range s.Roles {
				if r.Master != c.IDs[i] || (j == i) != (r.Role == "master") {
					ok = false
				}
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come to hold every role within %v", c.IDs[i], timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func idle(ctx context.Context, bin, dir string, roles int, settle, window time.Duration) error {
	c, err := bench.NewCluster(ctx, bin, dir, 5, "default")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := withRoles(c, roles, time.Second); err != nil {
		return err
	}
	if err := c.StartAll(); err != nil {
		return err
	}
	if err := holdsAll(ctx, c, 0, 60*time.Second); err != nil {
		return err
	}
	time.Sleep(settle)
	before := make([]int64, len(c.IDs))
	for i := range c.IDs {
		if before[i], err = cpuTicks(c.PID(i)); err != nil {
			return err
		}
	}
	start := boottime.Now()
	time.Sleep(window)
	elapsed := boottime.Now() - start
	pct := make([]float64, len(c.IDs))
	for i := range c.IDs {
		after, err := cpuTicks(c.PID(i))
		if err != nil {
			return err
		}
		pct[i] = float64(after-before[i]) * 10 * float64(time.Millisecond) / float64(elapsed) * 100
	}
	if err := holdsAll(ctx, c, 0, 5*time.Second); err != nil {
		return fmt.Errorf("the roles moved during the window: %w", err)
	}
	follower := 0.0
	for _, p := range pct[1:] {
		follower += p
	}
	fmt.Printf("idle, 5 nodes, default profile, %3d roles all on n1: master %.2f %% of a core, followers %.2f %% each (mean), over %v\n",
		roles, pct[0], follower/float64(len(pct)-1), elapsed.Round(time.Millisecond))
	return nil
}

func failover(ctx context.Context, bin, dir string, roles, trials int) error {
	c, err := bench.NewCluster(ctx, bin, dir, 5, "default")
	if err != nil {
		return err
	}
	defer c.Close()
	const holdDown = 2 * time.Second
	if err := withRoles(c, roles, holdDown); err != nil {
		return err
	}
	if err := c.StartAll(); err != nil {
		return err
	}
	times := make([][]time.Duration, roles)
	for k := range trials {
		if err := holdsAll(ctx, c, 0, 60*time.Second); err != nil {
			return err
		}
		killed, err := c.Kill(0)
		if err != nil {
			return err
		}
		got := make([]time.Duration, roles)
		left := roles
		for left > 0 {
			if boottime.Now()-killed > 30*time.Second {
				return fmt.Errorf("trial %d: %d roles without a master 30 s after the kill", k+1, left)
			}
			for j := 1; j < len(c.IDs); j++ {
				s, err := c.Status(ctx, j)
				if err != nil {
					continue
				}
				now := boottime.Now()
				for ri, r := range s.Roles {
					if got[ri] == 0 && r.Role == "master" {
						got[ri] = now - killed
						left--
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		for ri, d := range got {
			times[ri] = append(times[ri], d)
		}
		slow := slices.Index(got, slices.Max(got))
		fmt.Printf("  trial %d: new masters after %v … %v (the last: r%d)\n", k+1, slices.Min(got).Round(time.Millisecond), slices.Max(got).Round(time.Millisecond), slow)
		if err := c.Start(0); err != nil {
			return err
		}
	}
	st, err := c.Status(ctx, 1)
	if err != nil {
		return err
	}
	bound := time.Duration(float64(st.ElectionTimeoutMS)*1.3)*time.Millisecond + time.Duration(st.StopBudgetMS)*time.Millisecond
	var all []time.Duration
	worst := time.Duration(0)
	for ri := range times {
		p := p99(times[ri])
		worst = max(worst, p)
		all = append(all, times[ri]...)
	}
	fmt.Printf("failover, 5 nodes, default profile, kill -9 of the node holding %d roles, %d trials: new master per role p50 %v, p99 of the worst role %v; "+
		"drivers act a stop budget (%d ms) later: %v, against 1.3 × election timeout + stop budget = %v\n",
		roles, trials, p50(all).Round(time.Millisecond), worst.Round(time.Millisecond), st.StopBudgetMS,
		(worst + time.Duration(st.StopBudgetMS)*time.Millisecond).Round(time.Millisecond), bound)
	return nil
}

// cpuTicks reads a process's user and system time, in clock ticks of
// 10 ms, from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + s, nil
}

func p99(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

func p50(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}
