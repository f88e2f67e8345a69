package vipnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Fault is what is done to the master.
type Fault string

// The faults.
const (
	Kill     Fault = "kill"     // kill -9 of every process of the node, and its link cut
	Stop     Fault = "sigstop"  // SIGSTOP of the master's daemon
	Isolate  Fault = "isolate"  // the master cut off the bridge, its link still up
	Transfer Fault = "transfer" // clustd transfer (keepalived: none)
)

// Result is what the client and the watchers saw of one fault.
type Result struct {
	Fault Fault
	// At is when the fault was applied.
	At       time.Time
	From, To string
	// Outage is from the last answer of the old master to the first of
	// the new, as the client received them.
	Outage time.Duration
	// Promote is when the address appeared on the new master, relative to
	// the fault.
	Promote time.Duration
	// Neigh is from the promote to the client's neighbour entry naming the
	// new master's MAC; -1 if it never did within the observation.
	Neigh time.Duration
	// Gap is from the address leaving the old master to its appearing on
	// the new one, as polled: the margin the lease left. Negative when it
	// was on both. Unknown (0, GapKnown false) when the old master's
	// address was not seen to go, as after kill -9, where the dead node's
	// namespace keeps it.
	Gap      time.Duration
	GapKnown bool
	// Interleaved lists answers from the old master received after the
	// first answer from the new one.
	Interleaved int
	// Overlaps counts polls that saw the address on two nodes at once, and
	// FirstOverlap says when the first was, relative to the fault.
	Overlaps     int
	FirstOverlap time.Duration
	// Evidence, when there were overlaps, is what the address movers
	// logged about the address from a second before the fault.
	Evidence []string
}

func (res Result) String() string {
	return fmt.Sprintf("%-8s %s->%s outage %7.1f ms, promote at +%7.1f ms, neighbour entry +%5.1f ms after it, interleaved %d, overlaps %d",
		res.Fault, res.From, res.To, ms(res.Outage), ms(res.Promote), ms(res.Neigh), res.Interleaved, res.Overlaps) + res.overlapText()
}

func (res Result) overlapText() string {
	s := ""
	if res.GapKnown {
		s = fmt.Sprintf(", gap %.1f ms", ms(res.Gap))
	}
	if res.Overlaps == 0 {
		return s
	}
	s += fmt.Sprintf(" (first overlap at +%.1f ms)", ms(res.FirstOverlap))
	for _, l := range res.Evidence {
		s += "\n    " + l
	}
	return s
}

// evidence returns the lines of every node's address-mover log that
// mention the addresses, from a second before t0.
func (r *Rig) evidence(t0 time.Time) []string {
	var out []string
	from := t0.Add(-time.Second).UTC().Format("2006-01-02T15:04:05.000")
	for _, n := range r.nodes {
		name := n.id + ".vip.log"
		if r.cfg.Kind == Keepalived {
			name = n.id + ".keepalived.log"
		}
		b, err := os.ReadFile(filepath.Join(r.cfg.Dir, name))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
			if r.cfg.Kind == Clustd && ts < from {
				continue
			}
			if strings.Contains(l, "addresses") || strings.Contains(l, "lease") || strings.Contains(l, "STATE") {
				out = append(out, n.id+": "+l)
			}
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Apply does f to the current master, waits for another node to hold the
// address and answer, measures, then undoes the fault and waits for the
// old master to be back as a standby.
func (r *Rig) Apply(f Fault) (Result, error) {
	old, err := r.WaitMaster(-1, 30*time.Second)
	if err != nil {
		return Result{}, err
	}
	// Let the client's view settle: a run of answers from the master.
	time.Sleep(300 * time.Millisecond)
	o := r.nodes[old]
	t0 := time.Now()
	switch f {
	case Kill:
		// The link goes first: a machine that dies leaves nothing that
		// answers, while processes killed one by one would leave a kernel
		// that still answers ARP for the address for a moment.
		if err := r.linkDown(o); err != nil {
			return Result{}, err
		}
		for _, c := range []*exec.Cmd{o.daemon, o.vip, o.resp, o.check} {
			signalGroup(c, syscall.SIGKILL)
		}
		r.watch.setIgnore(old, true)
	case Stop:
		if err := signalGroup(o.daemon, syscall.SIGSTOP); err != nil {
			return Result{}, err
		}
	case Isolate:
		if err := r.partition(o); err != nil {
			return Result{}, err
		}
	case Transfer:
		if r.cfg.Kind != Clustd {
			return Result{}, fmt.Errorf("keepalived has no planned transfer")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", o.ns, r.cfg.Clustd, "transfer", "--config", o.config).CombinedOutput()
		cancel()
		if err != nil {
			return Result{}, fmt.Errorf("clustd transfer: %v: %s", err, out)
		}
	}
	nu, err := r.WaitMaster(old, 60*time.Second)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", f, err)
	}
	// Watch a little longer for late answers from the old master.
	time.Sleep(500 * time.Millisecond)
	res := r.measure(f, old, nu, t0)
	err = r.undo(f, old)
	// Overlaps count until the old master is back as a standby: a
	// returning master that still holds the address is the failure that
	// matters most.
	ov := r.watch.overlapsSince(t0)
	res.Overlaps = len(ov)
	if len(ov) > 0 {
		res.FirstOverlap = ov[0].At.Sub(t0)
		res.Evidence = r.evidence(t0)
	}
	return res, err
}

// signalGroup signals c's process group: keepalived's VRRP process is a
// child of the one started.
func signalGroup(c *exec.Cmd, sig syscall.Signal) error {
	if c == nil || c.Process == nil {
		return nil
	}
	return syscall.Kill(-c.Process.Pid, sig)
}

func (r *Rig) measure(f Fault, old, nu int, t0 time.Time) Result {
	res := Result{Fault: f, At: t0, From: r.nodes[old].id, To: r.nodes[nu].id, Neigh: -1}
	// From a little before the fault, to have the old master's last
	// answer.
	ans := r.client.since(t0.Add(-time.Second))
	var lastOld, firstNew time.Time
	for _, a := range ans {
		switch a.Node {
		case r.nodes[old].id:
			if firstNew.IsZero() {
				lastOld = a.Got
			} else {
				res.Interleaved++
			}
		case r.nodes[nu].id:
			if firstNew.IsZero() && !a.Got.Before(t0) {
				firstNew = a.Got
			}
		}
	}
	if !lastOld.IsZero() && !firstNew.IsZero() {
		res.Outage = firstNew.Sub(lastOld)
	}
	if p, ok := r.watch.firstHeld(nu, t0); ok {
		res.Promote = p.Sub(t0)
		if g, ok := r.watch.firstGone(old, t0); ok && f != Kill {
			res.Gap, res.GapKnown = p.Sub(g), true
		}
		if m, ok := r.watch.macSince(r.nodes[nu].mac, t0); ok {
			res.Neigh = max(0, m.Sub(p))
		}
	}
	return res
}

// undo ends the fault and waits for the old master to be a standby again.
func (r *Rig) undo(f Fault, old int) error {
	o := r.nodes[old]
	switch f {
	case Kill:
		// The address mover starts first and removes what its killed
		// predecessor left; only then does the node come back on the
		// network.
		if err := r.restartNode(o); err != nil {
			return err
		}
	case Stop:
		if err := signalGroup(o.daemon, syscall.SIGCONT); err != nil {
			return err
		}
	case Isolate:
		if err := r.rejoin(o); err != nil {
			return err
		}
	}
	return r.waitStandby(old, 60*time.Second)
}

func (r *Rig) linkDown(n *node) error {
	return run("ip", "-n", r.hub, "link", "set", n.hubSide, "down")
}
func (r *Rig) linkUp(n *node) error { return run("ip", "-n", r.hub, "link", "set", n.hubSide, "up") }

// partition takes n's port off the bridge: n is cut off from everyone,
// but its link keeps carrier, as when a switch between machines fails.
// (Taking the link down instead would tell keepalived, which drops its
// addresses when its interface goes down, and hide the case that matters.)
func (r *Rig) partition(n *node) error {
	return run("ip", "-n", r.hub, "link", "set", n.hubSide, "nomaster")
}

func (r *Rig) rejoin(n *node) error {
	return run("ip", "-n", r.hub, "link", "set", n.hubSide, "master", "br0")
}

// restartNode starts a killed node again with its link down until its
// address mover has removed the leftover address.
func (r *Rig) restartNode(n *node) error {
	if r.cfg.Kind == Keepalived {
		// A killed keepalived leaves its address too; the machine coming
		// back from the dead has none.
		run("ip", "-n", n.ns, "addr", "del", VIP+"/24", "dev", ifName)
		// Nor the pid files of /run: with them keepalived would refuse
		// to start, taking them for a copy still running.
		for _, ext := range []string{".kpid", ".vpid", ".cpid"} {
			os.Remove(filepath.Join(r.cfg.Dir, n.id+ext))
		}
		if err := r.startNode(n); err != nil {
			return err
		}
	} else {
		var err error
		if n.vip, err = r.start(n, "vip", r.cfg.Clustd, r.vipArgs(n)...); err != nil {
			return err
		}
		if err := r.waitGone(n, 20*time.Second); err != nil {
			return err
		}
		resp, err := r.command(n.ns, n.id+".responder.log", r.self)
		if err != nil {
			return err
		}
		resp.Env = append(resp.Environ(), envResponder+"="+n.id+","+VIP)
		if err := resp.Start(); err != nil {
			return err
		}
		go resp.Wait()
		n.resp = resp
		if r.cfg.CheckURL != "" {
			args := append([]string{"driver", "check", "--config", n.config, "--required", "--name", "web", "--http", r.cfg.CheckURL}, r.cfg.CheckArgs...)
			if n.check, err = r.start(n, "check", r.cfg.Clustd, args...); err != nil {
				return err
			}
		}
		if n.daemon, err = r.start(n, "daemon", r.cfg.Clustd, "run", "--config", n.config, "--log-level", "debug"); err != nil {
			return err
		}
	}
	if err := r.waitGone(n, 20*time.Second); err != nil {
		return err
	}
	r.watch.setIgnore(n.idx, false)
	return r.linkUp(n)
}

// waitGone waits until node n no longer holds the address.
func (r *Rig) waitGone(n *node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !r.watch.heldNow(n.idx) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s still holds %s after %v", n.id, VIP, timeout)
}

// waitStandby waits until node i is back: for clustd its daemon follows
// the master; for keepalived a fixed settling time, since it has no
// status to ask.
func (r *Rig) waitStandby(i int, timeout time.Duration) error {
	if r.cfg.Kind == Keepalived {
		time.Sleep(3*r.cfg.Advert + time.Second)
		return nil
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := r.status(i)
		if err == nil && st["role"] == "follower" && st["master"] != "" && st["master"] != r.nodes[i].id {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come back as a follower within %v", r.nodes[i].id, timeout)
}
