package chaos

import (
	"fmt"
	"github.com/clustd/clustd/internal/fault"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
)

// linkParams shape one direction of the traffic between two nodes in the
// proxies.
type linkParams struct {
	// Delay is added to every chunk of data; Jitter adds up to that much
	// more, uniformly. TCP delivers in order, so jitter never reorders.
	Delay, Jitter time.Duration
	// Loss is the probability that a chunk is "lost": delivered one
	// retransmission timeout late, holding up what follows — which is how
	// packet loss looks to a program reading a TCP stream.
	Loss float64
	// Block holds all data until the link is unblocked, as a dropped
	// route would (used where the kernel cannot cut links).
	Block bool
}

func (p linkParams) String() string {
	if p.Block {
		return "blocked"
	}
	return fmt.Sprintf("delay %v jitter %v loss %.1f%%", p.Delay, p.Jitter, 100*p.Loss)
}

// plannedFault is one step of a schedule. It names its targets abstractly, since
// who is master is known only when the fault is applied: Pick is a
// permutation of the node indexes drawn with the schedule, and the fault
// resolves its targets from it and the master of the moment.
type plannedFault struct {
	Kind fault.Kind
	// OnMaster aims the fault at the master when there is one; otherwise
	// (and when there is none) at Pick[0].
	OnMaster bool
	Pick     []int
	// Size is how many nodes are on the cut side of a split or partial
	// partition.
	Size int
	// For is how long the fault lasts before it heals (or, for kill and
	// stop, how long the daemon stays down).
	For time.Duration
	// LossPct is the share of packets a one-way fault drops: 100 cuts the
	// direction entirely.
	LossPct int
	// ToMaster turns a one-way fault around: traffic to the master is lost
	// rather than traffic from it.
	ToMaster bool
	// Link is the shaping a latency fault puts on every link.
	Link linkParams
	// Settle is how long the cluster is left alone after it has a master
	// again, before the next fault.
	Settle time.Duration
}

// Describe says what the fault does, with its targets resolved.
func (f plannedFault) Describe(ids []string, master int) string {
	name := func(i int) string { return ids[i] }
	names := func(is []int) string {
		s := make([]string, len(is))
		for k, i := range is {
			s[k] = ids[i]
		}
		return strings.Join(s, ",")
	}
	t := f.Target(master)
	switch f.Kind {
	case fault.Crash:
		return fmt.Sprintf("kill -9 %s's daemon, restart after %v", name(t), f.For)
	case fault.Pause:
		return fmt.Sprintf("SIGSTOP %s's daemon for %v", name(t), f.For)
	case fault.Freeze:
		return fmt.Sprintf("freeze all of %s (daemon and drivers) for %v", name(t), f.For)
	case fault.Stop:
		return fmt.Sprintf("SIGTERM %s's daemon, restart after %v", name(t), f.For)
	case fault.Isolate:
		return fmt.Sprintf("isolate %s for %v", name(t), f.For)
	case fault.Split:
		side, rest := f.Sides(master)
		return fmt.Sprintf("split {%s} | {%s} for %v", names(side), names(rest), f.For)
	case fault.Partial:
		side, _ := f.Sides(master)
		return fmt.Sprintf("cut %s from {%s} only, for %v", name(t), names(side), f.For)
	case fault.OneWay:
		from, to := f.OneWay(master)
		return fmt.Sprintf("drop %d%% of %s→%s for %v", f.LossPct, name(from), name(to), f.For)
	case fault.Latency:
		return fmt.Sprintf("every link: %v for %v", f.Link, f.For)
	case fault.Transfer:
		if len(f.Pick) > 1 && f.Size > 0 {
			return fmt.Sprintf("transfer from %s to %s", name(t), name(f.TransferTo(master)))
		}
		return fmt.Sprintf("transfer from %s to the best node", name(t))
	case fault.Maintenance:
		return fmt.Sprintf("maintenance on %s for %v", name(t), f.For)
	}
	return string(f.Kind)
}

// Target is the node the fault is aimed at, given the current master (-1
// for none).
func (f plannedFault) Target(master int) int {
	if f.OnMaster && master >= 0 {
		return master
	}
	return f.Pick[0]
}

// Sides resolves a split or a partial partition: the cut side (Size nodes)
// and the rest. For a split the target is on the cut side when the fault
// is aimed at the master; otherwise the master stays in the majority. For
// a partial partition the target is the master and the cut side is the
// followers it loses; the others reach both.
func (f plannedFault) Sides(master int) (side, rest []int) {
	t := f.Target(master)
	order := make([]int, 0, len(f.Pick))
	switch {
	case f.Kind == fault.Partial:
		for _, i := range f.Pick {
			if i != t {
				order = append(order, i)
			}
		}
		return slices.Clone(order[:f.Size]), append([]int{t}, order[f.Size:]...)
	case f.OnMaster:
		order = append(order, t)
		for _, i := range f.Pick {
			if i != t {
				order = append(order, i)
			}
		}
	default:
		for _, i := range f.Pick {
			if i != master {
				order = append(order, i)
			}
		}
		if master >= 0 {
			order = append(order, master)
		}
	}
	return slices.Clone(order[:f.Size]), slices.Clone(order[f.Size:])
}

// OneWay resolves a one-way fault into the direction that loses traffic.
func (f plannedFault) OneWay(master int) (from, to int) {
	t := f.Target(master)
	other := f.Pick[0]
	if other == t {
		other = f.Pick[1]
	}
	if f.ToMaster {
		return other, t
	}
	return t, other
}

// TransferTo is the target of a transfer (when Size > 0; else the master
// chooses).
func (f plannedFault) TransferTo(master int) int {
	t := f.Target(master)
	for _, i := range f.Pick {
		if i != t {
			return i
		}
	}
	return t
}

// weather is the network's background for a whole run, drawn per seed
// (swarm testing: seeds differ in more than their dice).
type weather struct {
	Name string
	Link linkParams
}

// schedule draws faults from a seed. The seed fixes the sequence of faults
// and their parameters; when each one starts depends on how fast the
// cluster recovers from the one before.
type schedule struct {
	rnd     *rand.Rand
	nodes   int
	timing  election.Timing
	kinds   []fault.Kind
	total   int
	Weather weather
}

// newSchedule returns the schedule of seed for a cluster of nodes nodes
// with timing t, drawing only kinds (fault.ChaosDefaults() when empty).
func newSchedule(seed uint64, nodes int, t election.Timing, kinds []fault.Kind) *schedule {
	s := &schedule{rnd: rand.New(rand.NewPCG(seed, seed^0x636c75737464)), nodes: nodes, timing: t}
	if len(kinds) == 0 {
		kinds = fault.ChaosDefaults()
	}
	for _, k := range fault.ChaosKinds() {
		if slices.Contains(kinds, k) {
			s.kinds = append(s.kinds, k)
			s.total += fault.Weight(k)
		}
	}
	// A third of the seeds run on a clean network; the rest on mild
	// latency or on rare stalls, in the background of every fault. Mild:
	// the liveness bound holds under it.
	switch s.rnd.IntN(3) {
	case 0:
		s.Weather = weather{Name: "clean"}
	case 1:
		d := time.Duration(1+s.rnd.IntN(5)) * time.Millisecond
		s.Weather = weather{Name: "latency", Link: linkParams{Delay: d, Jitter: d}}
	default:
		s.Weather = weather{Name: "lossy", Link: linkParams{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.002 + 0.008*s.rnd.Float64()}}
	}
	return s
}

// Swarm says, on one line, what the seed drew for the whole run and what
// the faults are drawn from: the weather, and each kind with its weight.
// It is printed beside the seed, so the run can be read and repeated.
func (s *schedule) Swarm() string {
	var b strings.Builder
	fmt.Fprintf(&b, "weather %s {%v}, faults", s.Weather.Name, s.Weather.Link)
	for _, k := range s.kinds {
		fmt.Fprintf(&b, " %s×%d", k, fault.Weight(k))
	}
	return b.String()
}

// between draws a duration uniformly from [lo, hi).
func (s *schedule) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rnd.Int64N(int64(hi-lo)))
}

// Next draws the next fault.
func (s *schedule) Next() plannedFault {
	r := s.rnd.IntN(s.total)
	kind := s.kinds[len(s.kinds)-1]
	for _, k := range s.kinds {
		if r < fault.Weight(k) {
			kind = k
			break
		}
		r -= fault.Weight(k)
	}
	et := s.timing.ElectionMin
	f := plannedFault{
		Kind:   kind,
		Pick:   s.rnd.Perm(s.nodes),
		Settle: s.between(200*time.Millisecond, 1500*time.Millisecond),
	}
	minority := (s.nodes - 1) / 2
	switch kind {
	case fault.Crash:
		f.OnMaster = s.rnd.IntN(4) != 0
		f.For = s.between(et/2, 6*et)
	case fault.Pause, fault.Freeze:
		// Longer than the lease, and often longer than the election
		// timeout, so that the others take over while it sleeps.
		f.OnMaster = s.rnd.IntN(5) != 0
		f.For = s.between(s.timing.LeaseDuration()+et/10, 5*et)
	case fault.Stop:
		f.OnMaster = s.rnd.IntN(2) == 0
		f.For = s.between(et, 4*et)
	case fault.Isolate:
		f.OnMaster = s.rnd.IntN(5) != 0
		f.For = s.between(2*et, 8*et)
	case fault.Split:
		f.OnMaster = s.rnd.IntN(2) == 0
		f.Size = 1 + s.rnd.IntN(minority)
		f.For = s.between(2*et, 8*et)
	case fault.Partial:
		f.OnMaster = true
		f.Size = 1 + s.rnd.IntN(minority)
		f.For = s.between(3*et, 10*et)
	case fault.OneWay:
		f.OnMaster = true
		f.ToMaster = s.rnd.IntN(2) == 0
		f.LossPct = []int{100, 100, 60, 30}[s.rnd.IntN(4)]
		f.For = s.between(3*et, 8*et)
	case fault.Latency:
		d := time.Duration(2+s.rnd.IntN(int(et/time.Millisecond)/10)) * time.Millisecond
		f.Link = linkParams{Delay: d, Jitter: d, Loss: 0.03 * s.rnd.Float64()}
		f.For = s.between(4*et, 12*et)
	case fault.Transfer:
		f.OnMaster = true
		if s.rnd.IntN(3) != 0 {
			f.Size = 1 // a named target; 0 lets the master choose
		}
	case fault.Maintenance:
		f.OnMaster = true
		f.For = s.between(2*et, 6*et)
	}
	return f
}
