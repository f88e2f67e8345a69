package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// copyScanEvery is how often the copy poller scans /proc for the exec
// driver's command.
const copyScanEvery = 5 * time.Millisecond

// cmdCopy is one running copy of the command, as the poller saw it.
type cmdCopy struct {
	pid   int
	start uint64 // the start time in /proc/PID/stat, which tells a reused pid apart
	node  int    // the node whose driver is its parent, or -1
	// first and last are the CLOCK_MONOTONIC instants of the first and the
	// last sighting: the copy certainly ran all the time in between.
	first, last time.Duration
}

// copyScan is one pass over /proc.
type copyScan struct {
	from, to time.Duration // CLOCK_MONOTONIC at the start and the end of the pass
	copies   []*cmdCopy    // the copies seen in it
}

// copyPoller scans /proc every copyScanEvery for processes whose argument
// list is /bin/sh -c SCRIPT MARKER, and keeps every sighting.
//
// A sighting proves that the process ran at that instant. Each pass reads
// every process once and then reads again the copies it found, so a copy
// seen by a pass is known to have run from its first reading to its second.
// Two copies whose known lifetimes intersect certainly ran at the same
// instant: that is the failure the poller exists to catch, and it never
// reports one wrongly. A hand-over whose stop and start both fall between
// two passes is not an overlap, and the poller does not call it one; an
// overlap shorter than a pass (about a millisecond) can go unseen.
type copyPoller struct {
	marker  string
	parents map[int]int // driver pid to node
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	copies []*cmdCopy
	byKey  map[[2]uint64]*cmdCopy
	scans  []copyScan
}

func startCopyPoller(t *testing.T, marker string, drivers []*driverProc) *copyPoller {
	p := &copyPoller{
		marker:  marker,
		parents: map[int]int{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		byKey:   map[[2]uint64]*cmdCopy{},
	}
	for _, d := range drivers {
		p.parents[d.Pid()] = d.node
	}
	go p.run()
	t.Cleanup(p.close)
	return p
}

func (p *copyPoller) run() {
	defer close(p.done)
	tick := time.NewTicker(copyScanEvery)
	defer tick.Stop()
	for {
		p.scanOnce()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

func (p *copyPoller) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// procInfo reads what the poller needs of process pid: whether it is a
// copy of the command, its parent and its start time. ok is
// false if the process is gone, is a zombie (whose argument list reads
// empty) or is not a copy.
func (p *copyPoller) procInfo(pid string) (ppid int, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return 0, 0, false
	}
	// The command is /bin/sh -c SCRIPT MARKER; the drivers, whose own
	// arguments end with it, are not copies.
	argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(argv) != 4 || argv[0] != "/bin/sh" || argv[3] != p.marker {
		return 0, 0, false
	}
	st, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After ") ": state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime.
	f := bytes.Fields(st[i+1:])
	if len(f) < 20 || f[0][0] == 'Z' || f[0][0] == 'X' {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return ppid, start, true
}

func (p *copyPoller) scanOnce() {
	from := mono()
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	type found struct {
		pid, ppid int
		start     uint64
		at        time.Duration
	}
	var all []found
	pids := map[int]bool{}
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		ppid, start, ok := p.procInfo(name)
		if !ok {
			continue
		}
		pid, _ := strconv.Atoi(name)
		all = append(all, found{pid: pid, ppid: ppid, start: start, at: mono()})
		pids[pid] = true
	}
	var seen []*cmdCopy
	for _, f := range all {
		// A shell forks before it execs what it runs, and for that
		// moment the child has the parent's argument list: it is part
		// of the copy that forked it, not another one.
		if pids[f.ppid] {
			continue
		}
		pid, ppid, start, at := f.pid, f.ppid, f.start, f.at
		key := [2]uint64{uint64(pid), start}
		cp := p.byKey[key]
		if cp == nil {
			node, known := p.parents[ppid]
			if !known {
				node = -1
			}
			cp = &cmdCopy{pid: pid, start: start, node: node, first: at}
			p.byKey[key] = cp
			p.copies = append(p.copies, cp)
		}
		cp.last = at
		seen = append(seen, cp)
	}
	// The second reading of the copies found.
	for _, cp := range seen {
		if _, start, ok := p.procInfo(strconv.Itoa(cp.pid)); ok && start == cp.start {
			cp.last = mono()
		}
	}
	p.scans = append(p.scans, copyScan{from: from, to: mono(), copies: seen})
}

// latest returns the copies seen by the last pass that began after since.
func (p *copyPoller) latest(since time.Duration) ([]*cmdCopy, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.scans) == 0 || p.scans[len(p.scans)-1].from <= since {
		return nil, false
	}
	return p.scans[len(p.scans)-1].copies, true
}

// waitOne waits until a pass that began after since sees exactly one copy,
// started by the driver of node i, and returns it.
func (p *copyPoller) waitOne(c *testCluster, i int, since time.Duration, timeout time.Duration) *cmdCopy {
	c.t.Helper()
	var cs []*cmdCopy
	_, ok := poll(timeout, func() bool {
		var fresh bool
		cs, fresh = p.latest(since)
		return fresh && len(cs) == 1 && cs[0].node == i
	})
	if !ok {
		var seen []string
		for _, cp := range cs {
			seen = append(seen, fmt.Sprintf("pid %d of node %d", cp.pid, cp.node))
		}
		c.t.Fatalf("timed out after %v waiting for exactly one copy of the command, on %s; the last pass saw %v",
			timeout, c.ids[i], seen)
	}
	return cs[0]
}

// copyReport is what the poller saw over the whole test.
type copyReport struct {
	scans      int
	maxSpacing time.Duration // the longest time between the starts of two passes
	maxPass    time.Duration // the longest pass
	maxSeen    int           // the most copies one pass saw
	overlaps   []string      // pairs of copies that certainly ran at once
}

func (p *copyPoller) report(c *testCluster) copyReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := copyReport{scans: len(p.scans)}
	for k, s := range p.scans {
		r.maxPass = max(r.maxPass, s.to-s.from)
		r.maxSeen = max(r.maxSeen, len(s.copies))
		if k > 0 {
			r.maxSpacing = max(r.maxSpacing, s.from-p.scans[k-1].from)
		}
	}
	name := func(cp *cmdCopy) string {
		if cp.node < 0 {
			return fmt.Sprintf("pid %d (no driver's child)", cp.pid)
		}
		return fmt.Sprintf("pid %d on %s", cp.pid, c.ids[cp.node])
	}
	for k, a := range p.copies {
		for _, b := range p.copies[k+1:] {
			from, till := max(a.first, b.first), min(a.last, b.last)
			if from <= till {
				r.overlaps = append(r.overlaps, fmt.Sprintf("%s and %s both ran for at least %v", name(a), name(b), till-from))
			}
		}
	}
	return r
}

// killLeftovers kills, by process group, every copy still running: the
// drivers should have stopped them all.
func (p *copyPoller) killLeftovers(t *testing.T) {
	p.mu.Lock()
	copies := slices.Clone(p.copies)
	p.mu.Unlock()
	for _, cp := range copies {
		if _, start, ok := p.procInfo(strconv.Itoa(cp.pid)); ok && start == cp.start {
			t.Errorf("copy pid %d still runs after its driver stopped; killing its process group", cp.pid)
			syscall.Kill(-cp.pid, syscall.SIGKILL)
		}
	}
}

// execStart is one line the command writes when it starts.
type execStart struct {
	pid        int
	node, role string
	term       uint64
}

// readStarts parses the lines "PID NODE ROLE TERM" the command appends to
// its file.
func readStarts(t *testing.T, path string) map[int]execStart {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading what the command wrote: %v", err)
	}
	out := map[int]execStart{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Errorf("the command wrote %q; want PID NODE ROLE TERM", line)
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		term, err2 := strconv.ParseUint(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			t.Errorf("the command wrote %q; want PID NODE ROLE TERM", line)
			continue
		}
		out[pid] = execStart{pid: pid, node: f[1], role: f[2], term: term}
	}
	return out
}

// execRig is a test rig: a three-node cluster with `clustd driver exec` beside
// every node, all running the same command, and a poller counting the
// command's copies.
type execRig struct {
	*testCluster
	starts  string // the file the command writes to, also its marker
	drivers []*driverProc
	copies  *copyPoller
}

// newExecRig starts the cluster, the drivers and the poller. script is
// run with /bin/sh -c; it gets the marker as $0, and must append
// "$$ $CLUSTD_NODE $CLUSTD_ROLE $CLUSTD_TERM" to the file "$0" as it
// starts.
func newExecRig(t *testing.T, script string, driverArgs ...string) *execRig {
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	suffix := make([]byte, 6)
	rand.Read(suffix)
	ec := &execRig{testCluster: c, starts: filepath.Join(c.dir, "exec-starts-"+hex.EncodeToString(suffix))}
	// Registered before the drivers, so that it runs after they stopped.
	t.Cleanup(func() {
		if ec.copies != nil {
			ec.copies.close()
			ec.copies.killLeftovers(t)
		}
	})
	for i := range c.ids {
		args := append(slices.Clone(driverArgs), "--", "/bin/sh", "-c", script, ec.starts)
		ec.drivers = append(ec.drivers, c.startDriverProc(i, "exec", args...))
	}
	ec.copies = startCopyPoller(t, ec.starts, ec.drivers)
	return ec
}

// checkStart checks what copy cp wrote when it started: the node it runs
// on, role master, and the term that node is master in.
func (ec *execRig) checkStart(cp *cmdCopy, st api.Status) {
	ec.t.Helper()
	s, ok := readStarts(ec.t, ec.starts)[cp.pid]
	switch {
	case !ok:
		ec.t.Errorf("copy pid %d on %s wrote no start line", cp.pid, ec.ids[cp.node])
	case s.node != ec.ids[cp.node] || s.role != "master" || s.term != st.Term:
		ec.t.Errorf("copy pid %d on %s was started with CLUSTD_NODE=%s CLUSTD_ROLE=%s CLUSTD_TERM=%d; want %s, master, %d",
			cp.pid, ec.ids[cp.node], s.node, s.role, s.term, ec.ids[cp.node], st.Term)
	}
}

// TestExecDriverRunsOneCopy runs `clustd driver exec` on each of three
// nodes with the same command, and a poller that scans /proc every
// copyScanEvery for its copies. Through a kill -9 of the master's daemon, a
// SIGSTOP of the master's daemon and a planned transfer, at no instant may
// two copies run, and after each exactly one copy must run again, on the
// new master and with its term. After the kill and the pause, the old
// master's driver stops its copy by itself when the lease runs out.
func TestExecDriverRunsOneCopy(t *testing.T) {
	t.Parallel()
	ec := newExecRig(t, `echo "$$ $CLUSTD_NODE $CLUSTD_ROLE $CLUSTD_TERM" >> "$0"; sleep 100000`)
	c := ec.testCluster
	lease := c.config(0).Timing.LeaseDuration()

	m, st, _ := c.waitMaster(10 * time.Second)
	cur := ec.copies.waitOne(c, m, 0, 10*time.Second)
	ec.checkStart(cur, st)
	t.Logf("the command runs on %s (pid %d) in term %d", c.ids[m], cur.pid, st.Term)

	// fault runs one fault against the master m and waits for the next
	// master and its copy; it logs how long no copy ran.
	fault := func(name string, act func(m int) []int) {
		t.Helper()
		old := cur
		dmark := len(ec.drivers[m].logText())
		at := mono()
		candidates := act(m)
		m2, st2, _ := c.waitMaster(10*time.Second, candidates...)
		if m2 == m {
			t.Fatalf("%s: %s is still master", name, c.ids[m])
		}
		cur = ec.copies.waitOne(c, m2, at, 10*time.Second)
		ec.checkStart(cur, st2)
		// The old copy's last sighting precedes its end by at most a pass;
		// the new copy's first sighting follows its start by at most one.
		t.Logf("%s of %s: its copy (pid %d) last seen %v after the fault; the copy on %s (pid %d, term %d) first seen %v after; no copy ran for at most %v",
			name, c.ids[m], old.pid, old.last-at, c.ids[m2], cur.pid, st2.Term, cur.first-at, cur.first-old.last)
		if name != "transfer" {
			if !strings.Contains(ec.drivers[m].logText()[dmark:], "lease ran out") {
				t.Errorf("%s: the driver of %s did not log that the lease ran out", name, c.ids[m])
			}
			// A lease granted before the fault ends within the lease
			// duration; the copy is stopped then, give or take a pass and
			// the time SIGTERM takes.
			if old.last-at > lease+100*time.Millisecond {
				t.Errorf("%s: the copy on %s was still seen %v after the fault; the lease is %v", name, c.ids[m], old.last-at, lease)
			}
		}
		m, st = m2, st2
	}

	var killed int
	fault("kill -9", func(m int) []int {
		killed = m
		c.kill(m)
		return c.others(m)
	})
	// The killed node comes back as a follower; its driver reconnects.
	c.start(killed)
	c.waitFor(15*time.Second, "the restarted node to follow and count its driver", func() bool {
		s, err := c.status(killed)
		return err == nil && s.Master == c.ids[m] && c.driversConnected(killed) == 1
	})

	var paused int
	fault("SIGSTOP", func(m int) []int {
		paused = m
		c.signal(m, syscall.SIGSTOP)
		return c.others(m)
	})
	c.signal(paused, syscall.SIGCONT)
	c.waitFor(10*time.Second, "the resumed node to follow", func() bool {
		s, err := c.status(paused)
		return err == nil && s.Role == "follower" && s.Master == c.ids[m]
	})

	fault("transfer", func(m int) []int {
		out, err := exec.Command(clustdBin, "transfer", "--config", c.cfgPath[m]).CombinedOutput()
		if err != nil {
			t.Fatalf("clustd transfer: %v\n%s", err, out)
		}
		return nil
	})

	// A last look after everything settled: still exactly one copy.
	ec.copies.waitOne(c, m, mono(), 10*time.Second)
	ec.copies.close()
	r := ec.copies.report(c)
	t.Logf("/proc scanned %d times, at most %v apart, each pass at most %v; at most %d copies seen in one pass; %d copies in all",
		r.scans, r.maxSpacing, r.maxPass, r.maxSeen, len(ec.copies.copies))
	for _, o := range r.overlaps {
		t.Errorf("two copies of the command ran at once: %s", o)
	}
	// One copy at the start and one after each fault: any other was
	// started when no node should have.
	if n := len(ec.copies.copies); n != 4 {
		t.Errorf("%d copies of the command ran in all; want 4, one at the start and one after each fault", n)
	}
}

// TestExecDriverSlowStopOnTransfer is TestExecDriverRunsOneCopy's planned
// transfer with a command that takes a second to exit after SIGTERM, as a
// service that finishes its work before it stops does; the driver's
// --stop-timeout (10 s) allows that. The exec driver promises that the
// daemon hands the role over only once no process of the command is left,
// so the copy on the new master must not start before the old one ended.
func TestExecDriverSlowStopOnTransfer(t *testing.T) {
	t.Parallel()
	const exitDelay = time.Second
	ec := newExecRig(t, fmt.Sprintf(`trap 'sleep %v; exit 0' TERM; echo "$$ $CLUSTD_NODE $CLUSTD_ROLE $CLUSTD_TERM" >> "$0"; sleep 100000 & wait`,
		exitDelay.Seconds()))
	c := ec.testCluster
	m, st, _ := c.waitMaster(10 * time.Second)
	old := ec.copies.waitOne(c, m, 0, 10*time.Second)
	ec.checkStart(old, st)

	at := mono()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.admin(m).Transfer(ctx, ""); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	m2, st2, _ := c.waitMaster(10*time.Second, c.others(m)...)
	cur := ec.copies.waitOne(c, m2, at, 10*time.Second)
	ec.checkStart(cur, st2)
	ec.copies.close()
	t.Logf("transfer from %s to %s: the old copy (pid %d) last seen %v after the request, the new one (pid %d) first seen %v after",
		c.ids[m], c.ids[m2], old.pid, old.last-at, cur.pid, cur.first-at)
	r := ec.copies.report(c)
	for _, o := range r.overlaps {
		t.Errorf("two copies of the command ran at once: %s", o)
	}
	if l := c.logLines(m, 0, "transferring leadership"); len(l) != 1 {
		t.Errorf("%s logged %d transfers; want 1", c.ids[m], len(l))
	}
}
