package sim

import (
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestRegressionSeeds replays seeds that once failed. Each comment says what
// went wrong; the fix is in the commit that added the seed.
func TestRegressionSeeds(t *testing.T) {
	cases := []struct {
		why     string
		nodes   int
		seed    uint64
		profile string
		d       time.Duration
	}{
		// No master after a heal: delayed heartbeats from a master that had
		// given up kept followers loyal, and the two survivors both ranked
		// first and split the vote again and again.
		{"stale heartbeats, equal ranks", 2, 10, election.ProfileFast, time.Minute},
		{"stale heartbeats, equal ranks", 2, 77, election.ProfileFast, time.Minute},
		{"stale heartbeats", 4, 26, election.ProfileFast, time.Minute},
		// Not linearizable, wrongly: a node won term 20's vote after
		// another had won term 21's, and a follower accepted its first
		// round. It never became master; the history had recorded the
		// vote, not becoming master, as the end of its write.
		{"vote won late, never master", 5, 8511, election.ProfileDefault, 3 * time.Minute},
		// Two masters: a master deposed by a higher term in a refused
		// heartbeat acknowledgement voted at once for that term's
		// candidate, completing its majority while the deposed master's
		// drivers still acted under its lease.
		{"deposed master voted during its lease", 5, 82, election.ProfileFast, 105 * time.Second},
		// Not linearizable, wrongly: a follower accepted the first round
		// of a term-508 winner (a candidate, never master) after others
		// had accepted term 509's master; the history counted it as
		// observing a master.
		{"candidate's first round is no master", 5, 787, election.ProfileFast, 10 * time.Minute},
	}
	for _, c := range cases {
		r, err := Run(RunConfig{Nodes: c.nodes, Seed: c.seed, Duration: c.d, Faults: true, Mix: DefaultMix(), Profile: c.profile, Linearizability: true})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			report(t, r)
		}
	}
}
