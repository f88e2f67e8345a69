package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// IdleConfig describes an idle measurement.
type IdleConfig struct {
	Bin, Dir string
	Nodes    int
	Profile  string
	// Drivers connects one driver per daemon, as in production.
	Drivers bool
	// Settle is how long the cluster runs after it is stable before the
	// window opens; Window is how long it is measured.
	Settle, Window time.Duration
	// RunBin and RunArgs run the daemons with another executable (a
	// profiling build); see Cluster.
	RunBin  string
	RunArgs func(i int) []string
	// Timing overrides the profile's timing (KEY=VALUE, as in the
	// configuration file's timing section), for experiments.
	Timing []string
	// Env is added to the daemons' environment.
	Env []string
	Log io.Writer
}

// RunIdle starts a cluster, lets it settle and measures what each daemon
// costs while nothing happens: CPU, memory and wakeups from /proc, traffic
// on each peer connection from the kernel's socket counters (ss) and the
// daemons' message counters (/metrics). The metrics are scraped just
// before the window opens and just after it closes, so that the scrapes'
// own cost falls outside the CPU and socket figures.
func RunIdle(ctx context.Context, ic IdleConfig) (*IdleResult, error) {
	log := ic.Log
	if log == nil {
		log = io.Discard
	}
	c, rec, err := Launch(ctx, LaunchOptions{
		Bin: ic.Bin, Dir: ic.Dir, Nodes: ic.Nodes, Profile: ic.Profile, Timing: ic.Timing, Env: ic.Env,
		RunBin: ic.RunBin, RunArgs: ic.RunArgs, Drivers: ic.Drivers, Log: log,
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if rec != nil {
		defer rec.Stop()
	}
	res := &IdleResult{Nodes: ic.Nodes, Profile: ic.Profile, Timing: timingOf(c.Timing), Drivers: ic.Drivers, LinkBytesPerS: map[string]float64{}}
	master, term, err := WaitStable(ctx, c, rec, startWait)
	if err != nil {
		return res, c.explain(err)
	}
	fmt.Fprintf(log, "  idle (%d nodes, %s, drivers %v): master %s; settling %v, then measuring %v\n",
		ic.Nodes, ic.Profile, ic.Drivers, c.IDs[master], ic.Settle, ic.Window)
	if err := sleepCtx(ctx, ic.Settle); err != nil {
		return res, err
	}
	procs := processesOf(c)
	w, err := watchIdle(ctx, c, procs, ic.Window)
	if err != nil {
		return res, err
	}
	res.WindowS = round3(w.win)
	if err := res.addDaemons(ctx, c, w, master, term); err != nil {
		return res, err
	}
	res.addLinks(c, w, procs, master)
	return res, nil
}

// processes finds a cluster's daemons by their process IDs and peer ports.
type processes struct {
	pids      []int
	byPID     map[int]int
	peerPorts []int
	byPort    map[int]int
}

func processesOf(c *Cluster) processes {
	p := processes{pids: make([]int, len(c.IDs)), byPID: map[int]int{}, byPort: map[int]int{}}
	for i := range c.IDs {
		p.pids[i] = c.PID(i)
		p.byPID[p.pids[i]] = i
	}
	for i, a := range c.Peer {
		p.peerPorts = append(p.peerPorts, portOf(a))
		p.byPort[portOf(a)] = i
	}
	return p
}

// idleWindow is the counters read at both ends of the window: metrics
// (m), /proc (p) and sockets (s); win is the length of the window by the
// /proc and socket readings and mwin by the scrapes, in seconds.
type idleWindow struct {
	m0, m1    [][]Metric
	p0, p1    []procSample
	s0, s1    []socket
	win, mwin float64
}

// watchIdle reads every counter, waits for window and reads them again,
// the metrics outermost.
func watchIdle(ctx context.Context, c *Cluster, procs processes, window time.Duration) (*idleWindow, error) {
	var w idleWindow
	m0, tm0, err := scrapeAll(ctx, c)
	if err != nil {
		return nil, err
	}
	p0, s0, t0, err := readAll(ctx, procs.pids, procs.peerPorts)
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, window); err != nil {
		return nil, err
	}
	p1, s1, t1, err := readAll(ctx, procs.pids, procs.peerPorts)
	if err != nil {
		if ex := c.exited(); ex != nil {
			return nil, ex
		}
		return nil, err
	}
	m1, tm1, err := scrapeAll(ctx, c)
	if err != nil {
		return nil, err
	}
	w.m0, w.m1, w.p0, w.p1, w.s0, w.s1 = m0, m1, p0, p1, s0, s1
	w.win, w.mwin = (t1 - t0).Seconds(), (tm1 - tm0).Seconds()
	return &w, nil
}

// addDaemons adds each daemon's cost over the window and the maxima. The
// window counts as stable if the master kept its role and term.
func (res *IdleResult) addDaemons(ctx context.Context, c *Cluster, w *idleWindow, master int, term uint64) error {
	res.Stable = true
	for i := range c.IDs {
		st, err := c.Status(ctx, i)
		if err != nil {
			return err
		}
		if (i == master) != (st.Role == "master") || st.Term != term {
			res.Stable = false
		}
		d := w.daemon(i)
		d.Node, d.Role = c.IDs[i], st.Role
		res.Daemons = append(res.Daemons, d)
		res.MaxCPUPct = max(res.MaxCPUPct, d.CPUPct)
		res.MaxRSSMB = max(res.MaxRSSMB, d.RSSMB)
		if i == master {
			res.MasterCPUPct = d.CPUPct
		} else {
			res.MaxFollowerCPUPct = max(res.MaxFollowerCPUPct, d.CPUPct)
		}
	}
	return nil
}

// daemon is daemon i's cost over the window, without its name and role.
func (w *idleWindow) daemon(i int) DaemonIdle {
	p0, p1, win := w.p0[i], w.p1[i], w.win
	d := DaemonIdle{
		CPUPct:          round3(100 * float64(p1.CPUTicks-p0.CPUTicks) / clockTicks / win),
		RSSMB:           round3(float64(p1.RSSKB) / 1024),
		PeakRSSMB:       round3(float64(p1.HWMKB) / 1024),
		AnonMB:          round3(float64(p1.AnonKB) / 1024),
		FileMB:          round3(float64(p1.FileKB) / 1024),
		PSSMB:           round3(float64(p1.PSSKB) / 1024),
		Threads:         p1.Threads,
		CtxSwitchesPerS: round3(float64(p1.CtxSwitches-p0.CtxSwitches) / win),
		ReadBytesPerS:   round3(float64(p1.ReadBytes-p0.ReadBytes) / win),
		WriteBytesPerS:  round3(float64(p1.WriteBytes-p0.WriteBytes) / win),
	}
	g0, _ := Find(w.m0[i], "go_gc_duration_seconds_count")
	g1, _ := Find(w.m1[i], "go_gc_duration_seconds_count")
	d.GCsPerS = round3((g1 - g0) / w.mwin)
	d.Goroutines, _ = Find(w.m1[i], "go_goroutines")
	return d
}

// addLinks adds the traffic of every peer connection open through the
// whole window, in order of sender and receiver, and each kind's average.
func (res *IdleResult) addLinks(c *Cluster, w *idleWindow, procs processes, master int) {
	before := map[string]socket{}
	for _, s := range w.s0 {
		before[s.key()] = s
	}
	kinds := map[string][]float64{}
	for _, s := range w.s1 {
		b, ok := before[s.key()]
		if !ok || len(s.PIDs) == 0 {
			continue // opened during the window (a reconnect): not comparable
		}
		from, okFrom := procs.byPID[s.PIDs[0]]
		to, okTo := procs.byPort[portOf(s.Remote)]
		if !okFrom || !okTo {
			continue
		}
		l := LinkIdle{
			From:         c.IDs[from],
			To:           c.IDs[to],
			Kind:         linkKind(from == master, to == master),
			BytesPerS:    round3(float64(s.BytesSent-b.BytesSent) / w.win),
			SegmentsPerS: round3(float64(s.SegsOut-b.SegsOut) / w.win),
		}
		v0, _ := Find(w.m0[from], "clustd_peer_messages_sent_total", "peer", c.IDs[to])
		v1, _ := Find(w.m1[from], "clustd_peer_messages_sent_total", "peer", c.IDs[to])
		l.MessagesPerS = round3((v1 - v0) / w.mwin)
		res.Links = append(res.Links, l)
		kinds[l.Kind] = append(kinds[l.Kind], l.BytesPerS)
	}
	slices.SortFunc(res.Links, func(a, b LinkIdle) int {
		if a.From != b.From {
			return cmp.Compare(a.From, b.From)
		}
		return cmp.Compare(a.To, b.To)
	})
	for k, v := range kinds {
		var sum float64
		for _, x := range v {
			sum += x
		}
		res.LinkBytesPerS[k] = round3(sum / float64(len(v)))
	}
}

func linkKind(fromMaster, toMaster bool) string {
	switch {
	case fromMaster:
		return "master_to_follower"
	case toMaster:
		return "follower_to_master"
	}
	return "follower_to_follower"
}

// readAll reads every daemon's /proc counters and the peer sockets, and
// the time in between.
func readAll(ctx context.Context, pids, peerPorts []int) ([]procSample, []socket, time.Duration, error) {
	at := boottime.Now()
	ps := make([]procSample, len(pids))
	for i, pid := range pids {
		p, err := readProc(pid)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("reading /proc of pid %d: %w", pid, err)
		}
		ps[i] = p
	}
	socks, err := listSockets(ctx, peerPorts)
	if err != nil {
		return nil, nil, 0, err
	}
	return ps, socks, at, nil
}

// scrapeAll reads every daemon's metrics and the time in the middle.
func scrapeAll(ctx context.Context, c *Cluster) ([][]Metric, time.Duration, error) {
	start := boottime.Now()
	out := make([][]Metric, len(c.IDs))
	for i := range c.IDs {
		s, err := c.Metrics(ctx, i)
		if err != nil {
			return nil, 0, err
		}
		out[i] = s
	}
	return out, start + (boottime.Now()-start)/2, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
