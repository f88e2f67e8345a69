package sim

import (
	"fmt"
	"time"

	"github.com/clustd/clustd/election"
)

// Fault kinds, as counted in Stats.Faults and switched in FaultMix.
const (
	FaultCrash       = "crash"
	FaultRestart     = "restart"
	FaultPause       = "pause"
	FaultPartition   = "partition"
	FaultOneWay      = "one-way"
	FaultLoss        = "loss"
	FaultDup         = "duplication"
	FaultReorder     = "reorder"
	FaultDelay       = "delay"
	FaultDrift       = "drift"
	FaultTransfer    = "transfer"
	FaultMaintenance = "maintenance"
	FaultHealth      = "health"
)

// FaultMix switches each kind of fault. The zero value injects nothing.
type FaultMix struct {
	Delay, Loss, Dup, Reorder bool
	Partition, OneWay         bool
	Crash, Restart, Pause     bool
	Drift                     bool
	Transfer, Maintenance     bool
	Health                    bool
}

// DefaultMix has every fault on.
func DefaultMix() FaultMix {
	return FaultMix{
		Delay: true, Loss: true, Dup: true, Reorder: true,
		Partition: true, OneWay: true,
		Crash: true, Restart: true, Pause: true,
		Drift: true, Transfer: true, Maintenance: true, Health: true,
	}
}

func (s *Sim) fault(i int, kind, detail string) {
	s.stats.Faults[kind]++
	if i >= 0 {
		s.record(s.nodes[i], tlFault, kind+" "+detail, 0)
	} else if s.opts.Verbose != nil {
		fmt.Fprintf(s.opts.Verbose, "%12.6fs *    FAULT %s %s\n", s.now.Seconds(), kind, detail)
	}
}

// Crash kills node i, every role of it: everything but its durable hard
// state is lost. Its drivers keep acting until the lease they hold runs out.
func (s *Sim) Crash(i int) {
	if !s.nodes[i].up {
		return
	}
	s.masterLost(i)
	for _, n := range s.replicas(i) {
		if n.acting {
			// Nobody tells the drivers: they stop when their lease runs out.
			n.acting = false
			n.holdUntil = max(n.holdUntil, s.stopBy(n, n.driverLease, forever))
		}
	}
	s.fault(i, FaultCrash, "")
	for _, n := range s.replicas(i) {
		n.up, n.paused, n.core, n.inbox = false, false, nil, nil
		n.ackDue = false
		s.driversFallBack(n)
		n.state = election.State{}
		n.timerGen++
	}
}

// Restart starts node i again from its durable state.
func (s *Sim) Restart(i int) {
	n := s.nodes[i]
	if n.up {
		return
	}
	s.fault(i, FaultRestart, "")
	for _, n := range s.replicas(i) {
		if err := s.start(n); err != nil {
			s.check.violate(i, "restart failed: "+err.Error())
		}
	}
}

// Pause freezes node i's process, every role of it: no timers, no messages
// (they queue); its clock goes on.
func (s *Sim) Pause(i int) {
	n := s.nodes[i]
	if !n.up || n.paused {
		return
	}
	s.masterLost(i)
	s.fault(i, FaultPause, "")
	for _, n := range s.replicas(i) {
		n.paused = true
		s.driversFallBack(n)
	}
}

// Resume lets a paused node run again: it sees how much time passed, then
// its queued messages.
func (s *Sim) Resume(i int) {
	n := s.nodes[i]
	if !n.up || !n.paused {
		return
	}
	for _, n := range s.replicas(i) {
		n.paused = false
	}
	s.record(n, tlFault, "resume", 0)
	for _, n := range s.replicas(i) {
		if !n.up || n.paused {
			break
		}
		n.core.Tick(s.local(n, s.now))
		if n.ackDue {
			n.ackDue = false
			n.core.DemoteDone(s.local(n, s.now))
		}
		s.drain(n, 0)
		inbox := n.inbox
		n.inbox = nil
		for k := range inbox {
			if !n.up || n.paused {
				break
			}
			s.deliver(n, &inbox[k])
		}
	}
}

// Isolate cuts node i off from everyone, both ways.
func (s *Sim) Isolate(i int) {
	s.masterLost(i)
	s.fault(i, FaultPartition, "isolated")
	for j := range s.nodes {
		if j != i {
			s.cut[i][j], s.cut[j][i] = true, true
		}
	}
}

// Split cuts the nodes in group off from the rest, both ways.
func (s *Sim) Split(group []int) {
	in := make([]bool, len(s.nodes))
	for _, i := range group {
		in[i] = true
	}
	s.fault(-1, FaultPartition, fmt.Sprintf("split %v", s.ids(group)))
	for i := range s.nodes {
		for j := range s.nodes {
			if in[i] != in[j] {
				s.cut[i][j] = true
			}
		}
	}
}

// CutOneWay drops messages from node from to node to.
func (s *Sim) CutOneWay(from, to int) {
	s.fault(from, FaultOneWay, "to "+s.nodes[to].id)
	s.cut[from][to] = true
}

// Heal restores every link.
func (s *Sim) Heal() {
	for i := range s.cut {
		clear(s.cut[i])
	}
}

// SetNet changes the network's weather.
func (s *Sim) SetNet(p NetParams) { s.net = p }

// Transfer asks node i (its first role) to hand over to target ("" for the
// best node); TransferRole asks another role.
func (s *Sim) Transfer(i int, target string) error {
	return s.transfer(s.nodes[i], target)
}

func (s *Sim) transfer(n *node, target string) error {
	if !n.up || n.paused {
		return fmt.Errorf("%s is not running", n.id)
	}
	detail := "to " + target
	if rl := s.roles[n.role]; rl.name != "" {
		detail = "role " + rl.name + " " + detail
	}
	s.fault(n.idx, FaultTransfer, detail)
	err := n.core.Transfer(s.local(n, s.now), target)
	if err == nil {
		s.roles[n.role].stats.handoverFrom(s.now, n.idx)
	}
	s.drain(n, 0)
	return err
}

// SetMaintenance turns maintenance on node i, every role of it, on or off.
func (s *Sim) SetMaintenance(i int, on bool) {
	if n := s.nodes[i]; !n.up || n.paused {
		return
	}
	if on {
		s.fault(i, FaultMaintenance, "on")
	}
	for _, n := range s.replicas(i) {
		if on && n.core.IsMaster(s.local(n, s.now)) {
			s.roles[n.role].stats.handoverFrom(s.now, i)
		}
		n.core.SetMaintenance(s.local(n, s.now), on)
		s.drain(n, 0)
	}
}

// SetHealthy reports node i's health to its cores, one per role.
func (s *Sim) SetHealthy(i int, ok bool) {
	if n := s.nodes[i]; !n.up || n.paused {
		return
	}
	if !ok {
		s.fault(i, FaultHealth, "unhealthy")
	}
	for _, n := range s.replicas(i) {
		if !ok && n.core.IsMaster(s.local(n, s.now)) {
			s.roles[n.role].stats.handoverFrom(s.now, i)
		}
		n.core.SetHealthy(s.local(n, s.now), ok)
		s.drain(n, 0)
	}
}

// masterLost starts a failover measurement in every role node i is master
// of: it was crashed, paused or cut off.
func (s *Sim) masterLost(i int) {
	for _, rl := range s.roles {
		if n := rl.nodes[i]; s.claims(n) {
			rl.stats.masterLost(s.now, i, n.state.Term, s.cleanWindow)
		}
	}
}

// Master returns the node whose core holds a lease now, or -1.
func (s *Sim) Master() int {
	for i := range s.nodes {
		if s.claimsCore(i) {
			return i
		}
	}
	return -1
}

func (s *Sim) claimsCore(i int) bool {
	n := s.nodes[i]
	return n.up && n.core.IsMaster(s.local(n, s.now))
}

func (s *Sim) ids(idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = s.nodes[i].id
	}
	return out
}

// HealAll ends every fault: links restored, weather calm, crashed nodes
// restarted, paused ones resumed, maintenance off, health good. Then a
// master must appear within the liveness bound.
func (s *Sim) HealAll(calm NetParams) {
	inFlight := s.net.maxDelay()
	s.Heal()
	s.net = calm
	for i, n := range s.nodes {
		switch {
		case !n.up:
			s.Restart(i)
		case n.paused:
			s.Resume(i)
		}
	}
	for _, n := range s.allReplicas() {
		if n.up && (n.core.Maintenance() || !n.core.Healthy()) {
			n.core.SetMaintenance(s.local(n, s.now), false)
			n.core.SetHealthy(s.local(n, s.now), true)
			s.drain(n, 0)
		}
	}
	s.check.expectMaster(inFlight)
}

// maxDelay is the longest a message sent now may take.
func (p NetParams) maxDelay() time.Duration {
	d := p.Delay + p.Jitter
	if p.Reorder > 0 {
		d += 10 * p.Jitter
	}
	return d
}

// RunFaults runs the swarm: for d of simulated time it alternates calm
// stretches, in which a master must appear within the liveness bound, with
// fault windows drawn from mix. Each seed also draws its own weather: how
// lossy, how slow, which faults are frequent.
func (s *Sim) RunFaults(d time.Duration, mix FaultMix) {
	end := s.now + d
	sw := s.drawSwarm(mix)
	s.HealAll(sw.calm)
	t := s.opts.Timing
	for s.now < end && !s.stopped {
		// Calm: wait for a master, then let it settle.
		for s.check.awaiting && !s.stopped && s.now < end {
			s.RunUntil(min(end, s.now+t.Heartbeat))
		}
		s.RunUntil(min(end, s.now+s.dur(t.Heartbeat, 3*t.ElectionMax)))
		if s.stopped || s.now >= end {
			break
		}
		// A fault window; one in four is a single fault in calm weather,
		// which is where failover time is measured cleanly.
		window := s.dur(t.ElectionMin/2, 4*t.ElectionMax)
		s.cleanWindow = s.rnd.IntN(4) == 0
		if s.cleanWindow {
			s.injectOne(sw, window)
		} else {
			s.net = sw.rough
			s.inject(sw, window)
		}
		s.cleanWindow = false
		s.RunUntil(min(end, s.now+window))
		if s.stopped || s.now >= end {
			break
		}
		s.HealAll(sw.calm)
	}
	s.stats.Window = d
}

// swarm is one seed's weather.
type swarm struct {
	calm, rough NetParams
	kinds       []func(window time.Duration)
}

func (s *Sim) drawSwarm(mix FaultMix) swarm {
	var sw swarm
	r := s.rnd
	if mix.Delay {
		sw.calm.Delay = time.Duration(50+r.IntN(2000)) * time.Microsecond
		sw.calm.Jitter = time.Duration(r.IntN(5000)+1) * time.Microsecond
		s.stats.Faults[FaultDelay]++
	}
	sw.rough = sw.calm
	if mix.Delay {
		sw.rough.Jitter = time.Duration(r.IntN(40000)+1) * time.Microsecond
	}
	if mix.Loss {
		sw.rough.Loss = []float64{0, 0.01, 0.05, 0.2, 0.5}[r.IntN(5)]
	}
	if mix.Dup {
		sw.rough.Dup = []float64{0, 0.01, 0.05, 0.2}[r.IntN(4)]
	}
	if mix.Reorder {
		sw.rough.Reorder = []float64{0, 0.05, 0.3}[r.IntN(3)]
	}
	add := func(on bool, weight int, f func(time.Duration)) {
		if on {
			for range 1 + r.IntN(weight+1) {
				sw.kinds = append(sw.kinds, f)
			}
		}
	}
	master := func() int {
		if m := s.MasterOf(s.pickRole()); m >= 0 {
			return m
		}
		return r.IntN(len(s.nodes))
	}
	other := func(not int) int {
		if len(s.nodes) == 1 {
			return not
		}
		j := r.IntN(len(s.nodes) - 1)
		if j >= not {
			j++
		}
		return j
	}
	add(mix.Crash, 3, func(w time.Duration) {
		i := master()
		if r.IntN(3) == 0 {
			i = r.IntN(len(s.nodes))
		}
		s.Crash(i)
	})
	add(mix.Restart, 2, func(w time.Duration) {
		// A quick restart: the node comes back before the old lease could
		// have run out, which is what the start-up vote hold-off is for.
		i := r.IntN(len(s.nodes))
		s.Crash(i)
		s.At(s.now+s.dur(0, s.opts.Timing.ElectionMin/2), func() { s.Restart(i) })
	})
	add(mix.Pause, 3, func(w time.Duration) {
		i := master()
		s.Pause(i)
		// Longer than the lease, and sometimes resumed inside the window.
		s.At(s.now+s.dur(s.opts.Timing.ElectionMin, 2*w), func() { s.Resume(i) })
	})
	add(mix.Partition, 3, func(w time.Duration) {
		if r.IntN(2) == 0 {
			s.Isolate(master())
			return
		}
		var group []int
		for i := range s.nodes {
			if r.IntN(2) == 0 {
				group = append(group, i)
			}
		}
		s.Split(group)
	})
	add(mix.OneWay, 2, func(w time.Duration) {
		m := master()
		switch r.IntN(3) {
		case 0: // the master cannot be heard
			s.masterLost(m)
			for j := range s.nodes {
				if j != m {
					s.CutOneWay(m, j)
				}
			}
		case 1: // the master cannot hear
			for j := range s.nodes {
				if j != m {
					s.CutOneWay(j, m)
				}
			}
		default:
			i := r.IntN(len(s.nodes))
			s.CutOneWay(i, other(i))
		}
	})
	add(mix.Transfer, 2, func(w time.Duration) {
		rl := s.pickRole()
		m := s.MasterOf(rl)
		if m < 0 {
			return
		}
		target := ""
		if r.IntN(2) == 0 {
			target = s.nodes[other(m)].id
		}
		_ = s.TransferRole(rl, m, target)
	})
	add(mix.Maintenance, 1, func(w time.Duration) {
		s.SetMaintenance(master(), true)
	})
	add(mix.Health, 1, func(w time.Duration) {
		s.SetHealthy(master(), false)
	})
	if mix.Loss || mix.Dup || mix.Reorder {
		// A window of bad weather alone.
		add(true, 1, func(w time.Duration) { s.fault(-1, FaultLoss, "weather only") })
	}
	return sw
}

func (s *Sim) inject(sw swarm, window time.Duration) {
	if len(sw.kinds) == 0 {
		return
	}
	if s.net.Dup > 0 {
		s.stats.Faults[FaultDup]++
	}
	if s.net.Reorder > 0 {
		s.stats.Faults[FaultReorder]++
	}
	// Sometimes two faults at once.
	for range 1 + s.rnd.IntN(2) {
		sw.kinds[s.rnd.IntN(len(sw.kinds))](window)
	}
}

func (s *Sim) injectOne(sw swarm, window time.Duration) {
	if len(sw.kinds) > 0 {
		sw.kinds[s.rnd.IntN(len(sw.kinds))](window)
	}
}

// dur draws a duration uniformly from [lo, hi).
func (s *Sim) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rnd.Int64N(int64(hi-lo)))
}
