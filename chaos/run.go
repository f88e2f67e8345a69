package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clustd/clustd/internal/fault"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/netnsutil"
	"github.com/clustd/clustd/sim"
)

// Config is one chaos run.
type Config struct {
	// Nodes is the cluster size, 3 to 9.
	Nodes int
	// Duration is how long faults are injected.
	Duration time.Duration
	// Seed draws the fault schedule; 0 draws a seed (printed).
	Seed uint64
	// Profile is the timing profile, default or fast.
	Profile string
	// Unsafe builds clustd with -tags chaos_unsafe, which removes
	// stickiness from the election: the run must then report an overlap.
	Unsafe bool
	// Kinds restricts the faults drawn; empty means all.
	Kinds []fault.Kind
	// Dir is where the run's folder is made; empty means os.TempDir().
	Dir string
	// Keep keeps the run's folder even when the run passes.
	Keep bool
	// Loopback skips network namespaces even where they could be made.
	Loopback bool
	// NoExec leaves out the exec driver and its singleton check.
	NoExec bool
	// Roles, above 1, configures that many roles (r1, r2, …): the faults,
	// the exec probe, porcupine and the liveness checks follow the first,
	// and a recorder per node and per other role checks that role's
	// drivers for overlaps and terms that go back.
	Roles int
	// StopOnOverlap ends the fault phase as soon as two drivers were seen
	// master at once, for runs that look for one.
	StopOnOverlap bool
	// Log receives progress lines; nil is quiet.
	Log io.Writer
	// ModuleRoot is the clustd source tree to build from; empty asks the
	// go command where the current module is.
	ModuleRoot string
}

// faultRecord is a fault as it was applied.
type faultRecord struct {
	Kind fault.Kind `json:"kind"`
	Text string     `json:"text"`
	// Target is the node index aimed at, or -1; Master is the node acting
	// as master when the fault was applied, or -1.
	Target int `json:"target"`
	Master int `json:"master"`
	// Start is when the fault took effect; Heal when it was undone (for a
	// transfer, Start).
	Start time.Duration `json:"start_ns"`
	Heal  time.Duration `json:"heal_ns"`
	// LosesMaster says the fault took the master away (killed, paused,
	// cut off); HandOver that it asked the master to hand over.
	LosesMaster bool   `json:"loses_master,omitempty"`
	HandOver    bool   `json:"hand_over,omitempty"`
	Err         string `json:"error,omitempty"`
}

// livenessBound is how long after a heal, with every node up and
// connected, a master's driver must be acting: the simulator's bound (the
// old lease and stickiness run out, ranked candidates take their turns, a
// split vote costs one randomised timeout) plus what real processes add —
// reconnecting after a restart or a cut (the dial backoff is capped at the
// election timeout), and one more timeout of slack for a loaded machine.
func livenessBound(t election.Timing, nodes int) time.Duration {
	return sim.DefaultLivenessBound(t, nodes) + t.ElectionMin + t.ElectionMax + time.Second
}

// Run runs the cluster under the fault schedule of cfg.Seed and checks what
// its drivers recorded. The error is for a run that could not be made (a
// build failed, a process would not start, ctx ended); violations of the
// contract are in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Nodes < 3 || cfg.Nodes > 9 {
		return nil, fmt.Errorf("nodes: %d; chaos runs 3 to 9 nodes (fewer have no majority left after a fault)", cfg.Nodes)
	}
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("duration %v: must be positive", cfg.Duration)
	}
	if cfg.Profile == "" {
		cfg.Profile = election.ProfileDefault
	}
	timing, err := election.ProfileTiming(cfg.Profile)
	if err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		cfg.Seed = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	r := &runner{cfg: cfg, timing: timing, log: logw, bound: livenessBound(timing, cfg.Nodes)}
	return r.run(ctx)
}

type runner struct {
	cfg    Config
	timing election.Timing
	log    io.Writer
	bound  time.Duration
	dir    string
	c      *testbed
	track  *tracker
	faults []faultRecord
	start  time.Time
	// firstMaster is when the first driver acted as master.
	firstMaster time.Duration
	netNote     string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%7.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) run(ctx context.Context) (rep *Report, err error) {
	r.start = time.Now()
	if err := r.makeDir(); err != nil {
		return nil, err
	}
	defer func() { err = r.cleanUp(rep, err) }()

	ids := make([]string, r.cfg.Nodes)
	for i := range ids {
		ids[i] = string(rune('a' + i))
	}
	sched := newSchedule(r.cfg.Seed, r.cfg.Nodes, r.timing, r.cfg.Kinds)
	r.logf("seed %d, %d nodes, %s timing, folder %s", r.cfg.Seed, r.cfg.Nodes, r.cfg.Profile, r.dir)
	r.logf("swarm: %s", sched.Swarm())

	clustdBin, recorderBin, err := r.build(ctx)
	if err != nil {
		return nil, err
	}
	nw, err := r.openNetwork(ids)
	if err != nil {
		return nil, err
	}
	defer nw.close()
	c, err := r.newTestbed(ctx, nw, ids, clustdBin, recorderBin)
	if err != nil {
		return nil, err
	}
	// Deferred calls run last first: thaw, kill, then remove the cgroups,
	// which must be empty by then.
	defer c.freeze.remove(c.nodes)
	defer c.killAll()
	defer c.freeze.thaw(c.nodes)

	nw.links().SetBase(sched.Weather.Link)
	if err := r.startCluster(ctx); err != nil {
		return nil, err
	}
	faultTime, err := r.injectFaults(ctx, sched)
	if err != nil {
		return nil, err
	}
	end := c.stopDrivers()
	c.stopDaemons()
	r.logf("stopped; checking the history")
	return r.analyse(faultTime, end, nw)
}

// makeDir makes the run's folder.
func (r *runner) makeDir() error {
	base := r.cfg.Dir
	if base == "" {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	var err error
	r.dir, err = os.MkdirTemp(base, fmt.Sprintf("clustd-chaos-%d-", r.cfg.Seed))
	return err
}

// cleanUp decides whether the run's folder stays, removes what does not,
// and returns err, naming the folder when it was kept.
func (r *runner) cleanUp(rep *Report, err error) error {
	// A run that failed, or could not be made, keeps its folder: the
	// logs are what explains it.
	keep := r.cfg.Keep || err != nil || rep == nil || rep.Failed()
	if rep != nil && keep {
		rep.Dir = r.dir
	}
	// The binaries are large and rebuilt by the replay command.
	os.RemoveAll(filepath.Join(r.dir, "bin"))
	if !keep {
		os.RemoveAll(r.dir)
	} else if err != nil {
		err = fmt.Errorf("%w (logs in %s)", err, r.dir)
	}
	return err
}

// openNetwork puts the nodes in network namespaces, or on loopback where
// that cannot be done or was not wanted; r.netNote says which and why.
func (r *runner) openNetwork(ids []string) (network, error) {
	var nw network
	if r.cfg.Loopback {
		r.netNote = "namespaces not tried (loopback asked for)"
	} else if why := netnsAvailable(); why != nil {
		r.netNote = "cannot make network namespaces: " + why.Error() + "; falling back to loopback"
	} else {
		netnsutil.RemoveStale(netnsPrefix)
		var err error
		if nw, err = newNsNet(ids, r.cfg.Seed); err != nil {
			r.netNote = "cannot make network namespaces: " + err.Error() + "; falling back to loopback"
			nw = nil
		}
	}
	if nw == nil {
		var err error
		if nw, err = newLoNet(ids, r.cfg.Seed); err != nil {
			return nil, err
		}
	}
	if r.netNote != "" {
		r.logf("%s", r.netNote)
	}
	r.logf("%s", nw.describe())
	return nw, nil
}

// newTestbed lays out the nodes' folders and configuration on nw.
func (r *runner) newTestbed(ctx context.Context, nw network, ids []string, clustdBin, recorderBin string) (*testbed, error) {
	c := &testbed{net: nw, dir: r.dir, clustd: clustdBin, recorder: recorderBin,
		execFile: filepath.Join(r.dir, "exec.jsonl"), noExec: r.cfg.NoExec, roles: r.cfg.Roles, drain: probeDrain(r.cfg.Seed, r.timing), freeze: newFreezer()}
	c.late = driverLateness(r.cfg.Seed, r.timing)
	r.logf("exec probe drains for %v after its stop signal; the chaos drivers' timers fire %v late", c.drain, c.late)
	r.logf("%s", c.freeze.describe())
	r.c = c
	for i, id := range ids {
		n := &node{idx: i, id: id, dir: filepath.Join(r.dir, id)}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.writeConfigs(ctx, r.cfg.Profile); err != nil {
		return c, err
	}
	r.track = newTracker(c.nodes)
	return c, nil
}

// startCluster starts every node's daemon and drivers and waits for the
// first master.
func (r *runner) startCluster(ctx context.Context) error {
	c := r.c
	for _, n := range c.nodes {
		if err := c.startDaemon(n); err != nil {
			return err
		}
		if err := c.startDrivers(n); err != nil {
			return err
		}
	}
	// The first election waits out every node's start-up hold-off.
	startBound := r.bound + 5*time.Second
	if m, _ := r.waitMaster(ctx, startBound); m < 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("no master within %v of starting the cluster", startBound)
	}
	r.firstMaster = Now()
	r.logf("%s is master; faults start", c.nodes[r.track.master()].id)
	return nil
}

// injectFaults applies the schedule's faults one after the other for the
// run's duration, and returns how long that took.
func (r *runner) injectFaults(ctx context.Context, sched *schedule) (time.Duration, error) {
	faultStart := time.Now()
	deadline := faultStart.Add(r.cfg.Duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.cfg.StopOnOverlap && r.track.overlapSeen {
			r.logf("two masters at once seen: ending the fault phase")
			break
		}
		f := sched.Next()
		if err := r.inject(ctx, f, sched.Weather.Link); err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			break
		}
		r.sleep(ctx, f.Settle)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return time.Since(faultStart), nil
}

// build compiles clustd (with the unsafe tag if asked) and the recorder
// into the run's folder.
func (r *runner) build(ctx context.Context) (string, string, error) {
	root := r.cfg.ModuleRoot
	if root == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			return "", "", fmt.Errorf("go env GOMOD: %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return "", "", errors.New("not inside the clustd module: run from its source tree")
		}
		root = filepath.Dir(gomod)
	}
	binDir := filepath.Join(r.dir, "bin")
	clustdBin := filepath.Join(binDir, "clustd")
	recorderBin := filepath.Join(binDir, "chaos-recorder")
	clustdArgs := []string{"build", "-o", clustdBin}
	if r.cfg.Unsafe {
		clustdArgs = append(clustdArgs, "-tags", "chaos_unsafe")
	}
	for _, args := range [][]string{append(clustdArgs, "./cmd/clustd"), {"build", "-o", recorderBin, "./chaos/recorder"}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return clustdBin, recorderBin, nil
}

// sleep waits d or until ctx ends, following the histories meanwhile.
// Faults last real time; this is the schedule's clock, not
// synchronisation.
func (r *runner) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			r.track.poll()
		}
	}
}

// waitMaster waits until a driver acts as master, up to bound. It returns
// the master and how long it took, or -1.
func (r *runner) waitMaster(ctx context.Context, bound time.Duration) (int, time.Duration) {
	start := time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		r.track.poll()
		if m := r.track.master(); m >= 0 {
			return m, time.Since(start)
		}
		if time.Since(start) > bound {
			return -1, time.Since(start)
		}
		select {
		case <-ctx.Done():
			return -1, time.Since(start)
		case <-t.C:
		}
	}
}

// inject applies f, waits out its duration, heals it and waits for a
// master.
func (r *runner) inject(ctx context.Context, f plannedFault, base linkParams) error {
	c := r.c
	r.track.poll()
	master := r.track.master()
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		ids[i] = n.id
	}
	rec := faultRecord{Kind: f.Kind, Text: f.Describe(ids, master), Target: f.Target(master), Master: master}
	rec.LosesMaster = master >= 0 && rec.Target == master
	before := Now()
	heal, applyErr := r.apply(ctx, f, &rec, base)
	// The fault counts from when it was asked for: the kernel or the
	// daemon acts a few milliseconds later, so failover times err long.
	rec.Start = before
	if applyErr != nil {
		rec.Err = applyErr.Error()
	}
	r.logf("%-11s %s%s", f.Kind, rec.Text, errNote(rec.Err))
	if heal != nil {
		r.sleep(ctx, f.For)
		if err := heal(); err != nil {
			// A node that cannot be restarted or reconnected ends the run:
			// everything after would measure the harness, not clustd.
			return fmt.Errorf("healing %q: %w", rec.Text, err)
		}
	}
	rec.Heal = Now()
	r.faults = append(r.faults, rec)
	if m, took := r.waitMaster(ctx, r.bound); m < 0 && ctx.Err() == nil {
		r.logf("no master within %v of healing", r.bound)
	} else if m >= 0 && took > r.bound/2 {
		r.logf("master %s after %v", c.nodes[m].id, took.Round(time.Millisecond))
	}
	return nil
}

// apply applies f, aimed as rec says, and corrects rec's LosesMaster and
// HandOver for its kind. It returns how to heal the fault (nil: nothing
// to heal) and the error applying it, which is recorded, not fatal.
func (r *runner) apply(ctx context.Context, f plannedFault, rec *faultRecord, base linkParams) (heal func() error, err error) {
	c := r.c
	target := c.nodes[rec.Target]
	heal = func() error { return c.net.heal() }
	switch f.Kind {
	case fault.Crash:
		target.daemon.Kill()
		heal = func() error { return c.startDaemon(target) }
	case fault.Stop:
		// SIGTERM: a master hands over before it exits. It is down for
		// f.For, or until it has exited if that takes longer.
		err = target.daemon.Signal(syscall.SIGTERM)
		rec.HandOver, rec.LosesMaster = rec.LosesMaster, false
		heal = func() error {
			target.daemon.Stop(r.timing.LeaseDuration() + r.timing.ElectionMax + 2*time.Second)
			return c.startDaemon(target)
		}
	case fault.Pause:
		err = target.daemon.Signal(syscall.SIGSTOP)
		heal = func() error { return target.daemon.Signal(syscall.SIGCONT) }
	case fault.Freeze:
		err = c.freeze.set(target, true)
		heal = func() error { return c.freeze.set(target, false) }
	case fault.Isolate:
		err = c.net.isolate(rec.Target)
	case fault.Split, fault.Partial:
		err = r.cut(f, rec)
	case fault.OneWay:
		from, to := f.OneWay(rec.Master)
		rec.LosesMaster = false
		err = c.net.drop(linkDrop{from, to, f.LossPct})
	case fault.Latency:
		rec.LosesMaster = false
		c.net.links().SetBase(f.Link)
		heal = func() error {
			c.net.links().SetBase(base)
			return nil
		}
	case fault.Transfer:
		var args []string
		if f.Size > 0 {
			args = []string{"--to", c.nodes[f.TransferTo(rec.Master)].id}
		}
		rec.HandOver, rec.LosesMaster = rec.LosesMaster, false
		err = c.admin(ctx, target, "transfer", args...)
		heal = nil
	case fault.Maintenance:
		rec.HandOver, rec.LosesMaster = rec.LosesMaster, false
		err = c.admin(ctx, target, "maintenance", "on")
		heal = func() error { return c.admin(ctx, target, "maintenance", "off") }
	}
	return heal, err
}

// cut applies a split or a partial partition: every link between the cut
// side and the rest is dropped both ways.
func (r *runner) cut(f plannedFault, rec *faultRecord) error {
	side, rest := f.Sides(rec.Master)
	if f.Kind == fault.Partial {
		// Only the master loses the cut side; the others reach both.
		rest = rest[:1]
		rec.LosesMaster = false
	} else {
		rec.LosesMaster = rec.Master >= 0 && slices.Contains(side, rec.Master)
	}
	var ds []linkDrop
	for _, a := range side {
		for _, b := range rest {
			ds = append(ds, linkDrop{a, b, 100}, linkDrop{b, a, 100})
		}
	}
	return r.c.net.drop(ds...)
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return " (failed: " + e + ")"
}

// tracker follows the recorders' history files as they grow, to know who
// is master while the run goes on.
type tracker struct {
	files  []string
	off    []int64
	rest   [][]byte
	acting []bool
	// lastAct is each driver's latest act (its promote or an EvActing).
	lastAct []time.Duration
	// overlapSeen is set once two drivers were seen acting at once.
	overlapSeen bool
}

// trackFresh is how recent a driver's last act must be for it to count
// as acting for overlapSeen: a frozen node's driver is master in its file
// until it thaws, but acts no more, and the drivers act every ActEvery.
const trackFresh = 20 * ActEvery

func newTracker(nodes []*node) *tracker {
	t := &tracker{}
	for _, n := range nodes {
		t.files = append(t.files, n.historyFile())
	}
	t.off = make([]int64, len(nodes))
	t.rest = make([][]byte, len(nodes))
	t.acting = make([]bool, len(nodes))
	t.lastAct = make([]time.Duration, len(nodes))
	return t
}

func (t *tracker) poll() {
	for i, path := range t.files {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		f.Seek(t.off[i], io.SeekStart)
		b, _ := io.ReadAll(f)
		f.Close()
		t.off[i] += int64(len(b))
		data := append(t.rest[i], b...)
		for {
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				break
			}
			var rec Record
			if json.Unmarshal(data[:nl], &rec) == nil {
				switch rec.Event {
				case EvPromoteStart, EvPromoteDone:
					t.acting[i] = true
					t.lastAct[i] = max(t.lastAct[i], rec.At())
				case EvActing:
					t.lastAct[i] = max(t.lastAct[i], rec.At())
				case EvDemoteStart, EvDemoteDone:
					t.acting[i] = false
				}
			}
			data = data[nl+1:]
		}
		t.rest[i] = append([]byte(nil), data...)
	}
	n, now := 0, Now()
	for i, a := range t.acting {
		if a && now-t.lastAct[i] < trackFresh {
			n++
		}
	}
	if n > 1 {
		t.overlapSeen = true
	}
}

// master is the node whose driver acts as master, or -1.
func (t *tracker) master() int {
	for i, a := range t.acting {
		if a {
			return i
		}
	}
	return -1
}

// probeDrain draws how long the exec probe goes on after its stop signal,
// like a service finishing its requests: up to what the stop budget leaves
// once the drift and the reserves are taken off (a third of the seeds at
// that bound), from its own stream of the seed so that the fault schedule
// stays the same. Under the unsafe build too: the overlaps it must find
// come from the missing rules, not from the probe.
func probeDrain(seed uint64, t election.Timing) time.Duration {
	usable := t.StopDeadline(0) - t.DriverReserve()
	if usable <= 0 {
		return 0
	}
	r := mrand.New(mrand.NewPCG(seed, 0x647261696e))
	if r.IntN(3) == 0 {
		return usable
	}
	return time.Duration(r.Int64N(int64(usable) + 1)).Round(time.Millisecond)
}
