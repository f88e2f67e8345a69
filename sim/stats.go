package sim

import (
	"slices"
	"time"

	"github.com/clustd/clustd/internal/percentile"
)

// Stats are the figures a run gathers.
type Stats struct {
	// Elections counts campaigns that raised a term.
	Elections int
	// MasterChanges counts leases acquired by a new (term, master).
	MasterChanges int
	// Failovers are the times from losing a master (crash, pause, cut off)
	// to the next master.
	Failovers []time.Duration
	// Handovers are the times from a planned hand-over (transfer,
	// maintenance, health) to the next master.
	Handovers []time.Duration
	// Recoveries are the times from a heal to a master.
	Recoveries []time.Duration
	// MasterTime is the time during which some node acted as master, out of
	// Elapsed.
	MasterTime, Elapsed time.Duration
	// Window is the simulated time of the fault run.
	Window time.Duration
	// Faults counts injected faults by kind.
	Faults map[string]int
	// Messages sent, dropped by the network, duplicated by it.
	Messages, Dropped, Duplicated int

	// CleanFailovers are the failovers after a crash of the master in a
	// window with calm weather and no other fault: the figure the ranked
	// candidacy is designed for.
	CleanFailovers []time.Duration

	lost, handing  bool
	lostClean      bool
	lostAt, handAt time.Duration
	lostNode       int
	lostTerm       uint64
}

func newStats() Stats { return Stats{Faults: map[string]int{}} }

// masterLost starts a failover measurement when master node of term was
// crashed, paused or cut off; clean says nothing else is wrong.
func (st *Stats) masterLost(now time.Duration, node int, term uint64, clean bool) {
	if !st.lost {
		st.lost, st.lostAt, st.lostNode, st.lostTerm, st.lostClean = true, now, node, term, clean
	}
}

// masterSurvived ends a measurement without a failover: the fault healed
// before the master's lease ran out.
func (st *Stats) masterSurvived(node int, term uint64) {
	if st.lost && st.lostNode == node && st.lostTerm == term {
		st.lost = false
	}
}

func (st *Stats) handoverFrom(now time.Duration, _ int) {
	if !st.handing {
		st.handing, st.handAt = true, now
	}
}

func (st *Stats) masterAcquired(now time.Duration, _ int) {
	st.MasterChanges++
	if st.lost {
		st.Failovers = append(st.Failovers, now-st.lostAt)
		if st.lostClean {
			st.CleanFailovers = append(st.CleanFailovers, now-st.lostAt)
		}
		st.lost = false
	}
	if st.handing {
		st.Handovers = append(st.Handovers, now-st.handAt)
		st.handing = false
	}
}

// Availability is the fraction of time some node acted as master.
func (st *Stats) Availability() float64 {
	if st.Elapsed == 0 {
		return 0
	}
	return float64(st.MasterTime) / float64(st.Elapsed)
}

// Percentiles summarises a set of durations.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize computes the nearest-rank percentiles of ds.
func Summarize(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		v, _ := percentile.NearestRank(s, p)
		return v
	}
	return Percentiles{N: len(s), P50: rank(50), P99: rank(99), Max: s[len(s)-1]}
}
