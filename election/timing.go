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
		return Timing{
			Heartbeat:     100 * time.Millisecond,
			ElectionMin:   500 * time.Millisecond,
			ElectionMax:   1000 * time.Millisecond,
			Step:          50 * time.Millisecond,
			MaxClockDrift: DefaultMaxClockDrift,
		}, nil
	case ProfileFast:
		return Timing{
			Heartbeat:     10 * time.Millisecond,
			ElectionMin:   100 * time.Millisecond,
			ElectionMax:   200 * time.Millisecond,
			Step:          10 * time.Millisecond,
			MaxClockDrift: DefaultMaxClockDrift,
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
	return t.leaseDuration(false)
}

func (t Timing) leaseDuration(noDrift bool) time.Duration {
	eps := t.MaxClockDrift
	if noDrift {
		return t.ElectionMin
	}
	d := time.Duration(float64(t.ElectionMin) * (1 - eps) / (1 + eps))
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
