package sim

import (
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestRegressionSeeds covers situations that once failed; the fix is in
// the commit that added each. A seed pins a situation only as long as the
// simulator and the core draw the same schedule from it, and every seed
// once pinned here stopped reaching its situation (the drivers' stop times
// changed the draws). So each situation now has a check that finds it in a
// run, and the test searches the first seeds of both profiles for one that
// reaches it: it fails if none does within the bound, and if that run
// breaks an invariant. Situations a search cannot find have scripted
// schedules instead: the stale heartbeats of seeds 10, 77 and 26 are
// staleHeartbeatsScenario, and the deposed master that voted during its
// lease (seed 82) is TestMutantsCaught's NoSelfLoyalty.
func TestRegressionSeeds(t *testing.T) {
	cases := []struct {
		why     string
		reached func(*Sim, []transition) bool
	}{
		// Not linearizable, wrongly: a node won term 20's vote after
		// another had won term 21's, and a follower accepted its first
		// round. It never became master; the history had recorded the
		// vote, not becoming master, as the end of its write (seed 8511).
		// And a follower that accepted the first round of such a winner,
		// a candidate never master, after others had accepted the next
		// term's master, was counted as observing a master (seed 787).
		{"a follower follows a winner that never became master", candidateFollowed},
	}
	const bound = 200
	for _, c := range cases {
		for _, p := range []string{election.ProfileFast, election.ProfileDefault} {
			t.Run(c.why+"/"+p, func(t *testing.T) {
				for seed := uint64(1); seed <= bound; seed++ {
					var states []transition
					r, err := Run(RunConfig{Nodes: 5, Seed: seed, Duration: time.Minute, Faults: true, Mix: DefaultMix(), Profile: p, Linearizability: true,
						OnState: func(at time.Duration, node int, st election.State) { states = append(states, transition{at, node, st}) }})
					if err != nil {
						t.Fatal(err)
					}
					if !r.OK() {
						report(t, r)
						return
					}
					if c.reached(r.Sim(), states) {
						t.Logf("seed %d reaches it, and passes", seed)
						return
					}
				}
				t.Fatalf("none of seeds 1-%d reaches the situation: give it a scripted schedule", bound)
			})
		}
	}
}

// candidateFollowed reports whether, in the states seen, a follower took
// a node for its master in a term that node never became master of: it
// heard the first round of a winner that a higher term overtook before a
// majority acknowledged it. The history must not count that as seeing a
// master. Rare: seeds 1 and 2 of either profile never get there.
func candidateFollowed(s *Sim, states []transition) bool {
	for _, tr := range states {
		st := tr.st
		if st.Role != election.Follower || st.Master == "" {
			continue
		}
		if _, ok := s.nodes[s.Index(st.Master)].masterSince[st.Term]; !ok {
			return true
		}
	}
	return false
}
