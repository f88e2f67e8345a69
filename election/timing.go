package election

import (
	"fmt"
	"time"
)

// Timing holds the durations the election runs on. All of them are measured
// on the node's own monotonic clock; no two clocks are assumed to agree, only
// that their rates differ from real time by less than MaxClockDrift.
type Timing struct {
	// Heartbeat is the interval between the master's heartbeat rounds.
	Heartbeat time.Duration
	// ElectionMin is the shortest election timeout. It is also how long a
	// follower stays loyal to a master it heard from (stickiness) and how long
	// a freshly started node refuses to vote, and so it bounds the lease.
	ElectionMin time.Duration
	// ElectionMax bounds the randomised timeout a candidate uses after a
	// campaign that did not settle.
	ElectionMax time.Duration
	// Step is the delay between ranked candidates: the follower ranked r
	// times out at ElectionMin + r×Step after the master went silent.
	Step time.Duration
	// MaxClockDrift is the largest difference, as a fraction, between any
	// node's clock rate and real time (0.05 means ±5%).
	MaxClockDrift float64
	// StopBudget is how long a deposed master's drivers have to stop once
	// their lease has run out. A new master's drivers start only once
	// StopBudget has passed since it became master, so a service that
	// takes up to that long to stop never runs on two machines. Failover
	// costs it: a new master's drivers act about ElectionMin + StopBudget
	// after the old master went silent.
	StopBudget time.Duration
}

// Profile names accepted by ProfileTiming.
const (
	ProfileDefault = "default"
	ProfileFast    = "fast"
)

// DefaultMaxClockDrift is the clock-rate bound used by the named profiles.
const DefaultMaxClockDrift = 0.05

// ProfileTiming returns the timing of a named profile.
func ProfileTiming(name string) (Timing, error) {
	switch name {
	case ProfileDefault, "":
		// A heartbeat of ElectionMin/5 rather than the /10 first planned
		// (docs/election.md, "Timing"): half the frames of an idle cluster
		// (the master of five nodes used 0.78 % of a core at 50 ms, 0.51 %
		// at 100 ms, side by side), still four rounds per lease, and
		// failover, which follows ElectionMin, is no slower. BENCHMARKS.md
		// has the measurements.
		//
		// A stop budget of 300 ms lets a service close its listener and
		// finish short requests, and keeps a failover (about ElectionMin +
		// StopBudget) under a second.
		return Timing{
			Heartbeat:     100 * time.Millisecond,
			ElectionMin:   500 * time.Millisecond,
			ElectionMax:   1000 * time.Millisecond,
			Step:          50 * time.Millisecond,
			MaxClockDrift: DefaultMaxClockDrift,
			StopBudget:    300 * time.Millisecond,
		}, nil
	case ProfileFast:
		// Half an election timeout to stop: what fast is chosen for is
		// the failover, about 150 ms with it.
		return Timing{
			Heartbeat:     10 * time.Millisecond,
			ElectionMin:   100 * time.Millisecond,
			ElectionMax:   200 * time.Millisecond,
			Step:          10 * time.Millisecond,
			MaxClockDrift: DefaultMaxClockDrift,
			StopBudget:    50 * time.Millisecond,
		}, nil
	}
	return Timing{}, fmt.Errorf("unknown timing profile %q: expected %q or %q", name, ProfileDefault, ProfileFast)
}

// MustProfile is ProfileTiming for names known to be valid.
func MustProfile(name string) Timing {
	t, err := ProfileTiming(name)
	if err != nil {
		panic(err)
	}
	return t
}

// Validate reports the first inconsistent value, naming it and saying why.
func (t Timing) Validate() error {
	switch {
	case t.Heartbeat <= 0:
		return fmt.Errorf("heartbeat %v: must be positive", t.Heartbeat)
	case t.ElectionMin <= 0:
		return fmt.Errorf("election timeout min %v: must be positive", t.ElectionMin)
	case t.ElectionMin >= t.ElectionMax:
		return fmt.Errorf("election timeout min %v must be below max %v", t.ElectionMin, t.ElectionMax)
	case t.Heartbeat > t.ElectionMin/3:
		// The lease is a little under ElectionMin; a master must get at least
		// two heartbeat rounds through before it runs out, or one lost round
		// costs the cluster its master.
		return fmt.Errorf("heartbeat %v must be at most a third of election timeout min %v (leases need several rounds to renew)", t.Heartbeat, t.ElectionMin)
	case t.Step < 0:
		return fmt.Errorf("rank step %v: must not be negative", t.Step)
	case t.Step > t.ElectionMin:
		return fmt.Errorf("rank step %v must not exceed election timeout min %v", t.Step, t.ElectionMin)
	case !(t.MaxClockDrift >= 0 && t.MaxClockDrift < 0.5):
		return fmt.Errorf("max clock drift %v: must be in [0, 0.5)", t.MaxClockDrift)
	case t.StopBudget < 0 || t.StopBudget > MaxStopBudget:
		return fmt.Errorf("stop budget %v: must be between 0 and %v", t.StopBudget, MaxStopBudget)
	}
	if t.LeaseDuration() <= t.Heartbeat {
		return fmt.Errorf("lease %v (election timeout min %v shrunk for clock drift %v) must exceed heartbeat %v", t.LeaseDuration(), t.ElectionMin, t.MaxClockDrift, t.Heartbeat)
	}
	return nil
}

// LeaseDuration is how far a heartbeat round acknowledged by a majority
// extends the master's lease, counted from when the round was sent.
//
// A voter that acknowledged the round refuses votes for ElectionMin on its own
// clock, which is at least ElectionMin/(1+ε) of real time if its clock runs
// fast. The master's clock may run slow, so its lease of L local time lasts up
// to L/(1−ε) of real time. L = ElectionMin×(1−ε)/(1+ε) makes the two meet;
// the margin makes the lease end strictly first.
func (t Timing) LeaseDuration() time.Duration {
	return t.leaseDuration(false, false)
}

// leaseDuration is LeaseDuration with rules removed (see Unsafe).
func (t Timing) leaseDuration(noDrift, noMargin bool) time.Duration {
	eps := t.MaxClockDrift
	if noDrift {
		return t.ElectionMin
	}
	d := time.Duration(float64(t.ElectionMin) * (1 - eps) / (1 + eps))
	if noMargin {
		return d
	}
	return d - t.leaseMargin()
}

// leaseMargin absorbs rounding and the gap between a clock read and the act
// it dates.
func (t Timing) leaseMargin() time.Duration {
	m := t.ElectionMin / 100
	if m < time.Millisecond {
		m = time.Millisecond
	}
	return m
}

// MaxStopBudget bounds Timing.StopBudget: every failover costs it.
const MaxStopBudget = 10 * time.Minute

// DriverReserve is how much earlier than the master's own lease its
// drivers are told their lease ends, and how much of the stop budget they
// may not use. It absorbs timer lateness: a driver's lease timer, or the
// timer that kills a service that will not stop, may fire late on a busy
// machine, and must still fire before the master's lease (or the stop
// budget) has run out. A twentieth of ElectionMin: 25 ms on the default
// profile, 5 ms on fast, above the timer lateness measured on a loaded
// machine (docs/drivers.md).
func (t Timing) DriverReserve() time.Duration {
	return max(t.ElectionMin/20, time.Millisecond)
}

// DriverLease is the lease deadline a master gives its drivers for its own
// lease deadline lease: the reserve earlier.
func (t Timing) DriverLease(lease time.Duration) time.Duration {
	return lease - t.DriverReserve()
}

// StopDeadline is when drivers whose lease was lease must have stopped if
// their demote begins because that lease ran out.
//
// A new master's drivers start StopBudget after it became master on its
// own clock, which is at least StopBudget/(1+ε) of real time; it became
// master after the old lease ended. The old drivers measure on their own
// machine's clock, which may run slow: S of its time lasts up to S/(1−ε).
// S = StopBudget×(1−ε)/(1+ε) makes the two meet; the reserve makes the
// drivers finish strictly first.
func (t Timing) StopDeadline(lease time.Duration) time.Duration {
	eps := t.MaxClockDrift
	s := time.Duration(float64(t.StopBudget) * (1 - eps) / (1 + eps))
	return lease + s - t.DriverReserve()
}
