package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/fault"
)

// Fault kinds, as counted in Stats.Faults and switched in FaultMix: the
// names of internal/fault's vocabulary, which chaos shares.
const (
	FaultCrash       = string(fault.Crash)
	FaultRestart     = string(fault.Restart)
	FaultPause       = string(fault.Pause)
	FaultPartition   = string(fault.Partition)
	FaultOneWay      = string(fault.OneWay)
	FaultLoss        = string(fault.Loss)
	FaultDup         = string(fault.Dup)
	FaultReorder     = string(fault.Reorder)
	FaultDelay       = string(fault.Delay)
	FaultDrift       = string(fault.Drift)
	FaultTransfer    = string(fault.Transfer)
	FaultMaintenance = string(fault.Maintenance)
	FaultHealth      = string(fault.Health)
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
	s.swarm = &sw
	if s.opts.Verbose != nil {
		fmt.Fprintf(s.opts.Verbose, "seed %d swarm: %v\n", s.opts.Seed, sw)
	}
	s.HealAll(sw.Calm)
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
			s.net = sw.Rough
			s.inject(sw, window)
		}
		s.cleanWindow = false
		s.RunUntil(min(end, s.now+window))
		if s.stopped || s.now >= end {
			break
		}
		s.HealAll(sw.Calm)
	}
	s.stats.Window = d
}

// Swarm is what one seed drew for its run, as plain data: the network's
// weather in calm stretches and in fault windows, and the fault windows'
// kinds, each as many times as it is likely to come (a seed makes some
// faults frequent and others rare). It is printed beside the seed, so a
// run can be read, and repeated, knowing what it was exposed to.
type Swarm struct {
	Calm  NetParams    `json:"calm"`
	Rough NetParams    `json:"rough"`
	Kinds []fault.Kind `json:"kinds"`
}

func (p NetParams) String() string {
	return fmt.Sprintf("delay %v jitter %v loss %g dup %g reorder %g", p.Delay, p.Jitter, p.Loss, p.Dup, p.Reorder)
}

// String lists the swarm on one line: weather, then each kind with how
// many of the draws it holds.
func (sw Swarm) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "calm {%v}, rough {%v}, faults", sw.Calm, sw.Rough)
	if len(sw.Kinds) == 0 {
		b.WriteString(" none")
	}
	for i, k := range sw.Kinds {
		if i > 0 && sw.Kinds[i-1] == k {
			continue
		}
		n := 0
		for _, o := range sw.Kinds[i:] {
			if o != k {
				break
			}
			n++
		}
		fmt.Fprintf(&b, " %s×%d", k, n)
	}
	return b.String()
}

// On says whether mix switches kind k on. The loss window is bad weather
// alone, so any of loss, duplication and reordering switches it on.
func (m FaultMix) On(k fault.Kind) bool {
	switch k {
	case fault.Crash:
		return m.Crash
	case fault.Restart:
		return m.Restart
	case fault.Pause:
		return m.Pause
	case fault.Partition:
		return m.Partition
	case fault.OneWay:
		return m.OneWay
	case fault.Transfer:
		return m.Transfer
	case fault.Maintenance:
		return m.Maintenance
	case fault.Health:
		return m.Health
	case fault.Loss:
		return m.Loss || m.Dup || m.Reorder
	case fault.Delay:
		return m.Delay
	case fault.Dup:
		return m.Dup
	case fault.Reorder:
		return m.Reorder
	case fault.Drift:
		return m.Drift
	}
	return false
}

// drawSwarm draws the seed's weather, then its kinds of fault window.
func (s *Sim) drawSwarm(mix FaultMix) Swarm {
	sw := Swarm{Calm: s.drawCalm(mix)}
	sw.Rough = s.drawRough(mix, sw.Calm)
	for _, spec := range fault.Table {
		if spec.Sim > 0 && mix.On(spec.Kind) {
			for range 1 + s.rnd.IntN(spec.Sim+1) {
				sw.Kinds = append(sw.Kinds, spec.Kind)
			}
		}
	}
	return sw
}

// drawCalm draws the weather between fault windows.
func (s *Sim) drawCalm(mix FaultMix) NetParams {
	var calm NetParams
	if mix.Delay {
		calm.Delay = time.Duration(50+s.rnd.IntN(2000)) * time.Microsecond
		calm.Jitter = time.Duration(s.rnd.IntN(5000)+1) * time.Microsecond
		s.stats.Faults[FaultDelay]++
	}
	return calm
}

// drawRough draws the weather of fault windows that are not clean.
func (s *Sim) drawRough(mix FaultMix, calm NetParams) NetParams {
	r := s.rnd
	rough := calm
	if mix.Delay {
		rough.Jitter = time.Duration(r.IntN(40000)+1) * time.Microsecond
	}
	if mix.Loss {
		rough.Loss = []float64{0, 0.01, 0.05, 0.2, 0.5}[r.IntN(5)]
	}
	if mix.Dup {
		rough.Dup = []float64{0, 0.01, 0.05, 0.2}[r.IntN(4)]
	}
	if mix.Reorder {
		rough.Reorder = []float64{0, 0.05, 0.3}[r.IntN(3)]
	}
	return rough
}

// apply injects one fault of kind k into a window of length w.
func (s *Sim) apply(k fault.Kind, w time.Duration) {
	switch k {
	case fault.Crash:
		i := s.masterOrAny()
		if s.rnd.IntN(3) == 0 {
			i = s.rnd.IntN(len(s.nodes))
		}
		s.Crash(i)
	case fault.Restart:
		// A quick restart: the node comes back before the old lease could
		// have run out, which is what the start-up vote hold-off is for.
		i := s.rnd.IntN(len(s.nodes))
		s.Crash(i)
		s.At(s.now+s.dur(0, s.opts.Timing.ElectionMin/2), func() { s.Restart(i) })
	case fault.Pause:
		i := s.masterOrAny()
		s.Pause(i)
		// Longer than the lease, and sometimes resumed inside the window.
		s.At(s.now+s.dur(s.opts.Timing.ElectionMin, 2*w), func() { s.Resume(i) })
	case fault.Partition:
		s.applyPartition()
	case fault.OneWay:
		s.applyOneWay()
	case fault.Transfer:
		s.applyTransfer()
	case fault.Maintenance:
		s.SetMaintenance(s.masterOrAny(), true)
	case fault.Health:
		s.SetHealthy(s.masterOrAny(), false)
	case fault.Loss:
		s.fault(-1, FaultLoss, "weather only")
	}
}

// masterOrAny is the master (of a role drawn at random when there are
// several), or a node drawn at random when there is none.
func (s *Sim) masterOrAny() int {
	if m := s.MasterOf(s.pickRole()); m >= 0 {
		return m
	}
	return s.rnd.IntN(len(s.nodes))
}

// otherThan draws a node other than not (not itself in a cluster of one).
func (s *Sim) otherThan(not int) int {
	if len(s.nodes) == 1 {
		return not
	}
	j := s.rnd.IntN(len(s.nodes) - 1)
	if j >= not {
		j++
	}
	return j
}

// applyPartition isolates the master or splits the cluster at random.
func (s *Sim) applyPartition() {
	if s.rnd.IntN(2) == 0 {
		s.Isolate(s.masterOrAny())
		return
	}
	var group []int
	for i := range s.nodes {
		if s.rnd.IntN(2) == 0 {
			group = append(group, i)
		}
	}
	s.Split(group)
}

// applyOneWay cuts the master's sending, or its hearing, or one random
// link in one direction.
func (s *Sim) applyOneWay() {
	m := s.masterOrAny()
	switch s.rnd.IntN(3) {
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
		i := s.rnd.IntN(len(s.nodes))
		s.CutOneWay(i, s.otherThan(i))
	}
}

// applyTransfer asks the master (of a role drawn at random when there are
// several) to hand over, to a named node half the time.
func (s *Sim) applyTransfer() {
	r := s.pickRole()
	m := s.MasterOf(r)
	if m < 0 {
		return
	}
	target := ""
	if s.rnd.IntN(2) == 0 {
		target = s.nodes[s.otherThan(m)].id
	}
	_ = s.TransferRole(r, m, target)
}

func (s *Sim) inject(sw Swarm, window time.Duration) {
	if len(sw.Kinds) == 0 {
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
		s.apply(sw.Kinds[s.rnd.IntN(len(sw.Kinds))], window)
	}
}

func (s *Sim) injectOne(sw Swarm, window time.Duration) {
	if len(sw.Kinds) > 0 {
		s.apply(sw.Kinds[s.rnd.IntN(len(sw.Kinds))], window)
	}
}

// dur draws a duration uniformly from [lo, hi).
func (s *Sim) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rnd.Int64N(int64(hi-lo)))
}
