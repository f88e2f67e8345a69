package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestSeedSweepRoles is the seed sweep with three roles on every node:
// the same faults hit every role at once, each role prefers another node,
// preemption is on in half the seeds, and every invariant runs per role.
// A tenth of TestSeedSweep's seeds (SIM_SEEDS scales both): each one runs
// three elections, and make sweep stays quick.
func TestSeedSweepRoles(t *testing.T) {
	n := max(1, sweepSeeds(t, 500)/10)
	durations := map[string]time.Duration{election.ProfileDefault: 3 * time.Minute, election.ProfileFast: time.Minute}
	if os.Getenv("SIM_SOAK") != "" {
		durations = map[string]time.Duration{election.ProfileDefault: 10 * time.Minute, election.ProfileFast: 10 * time.Minute}
	}
	for _, p := range []string{election.ProfileDefault, election.ProfileFast} {
		d := durations[p]
		t.Run(p, func(t *testing.T) {
			failed, all := sweep(t, n, func(seed uint64) RunConfig {
				html := filepath.Join(t.TempDir(), fmt.Sprintf("seed-%d.html", seed))
				return RunConfig{Nodes: 5, Roles: 3, Seed: seed, Duration: d, Faults: true, Mix: DefaultMix(), Profile: p, Linearizability: true, HTMLPath: html}
			})
			for i, r := range failed {
				if i == 3 {
					t.Errorf("… and %d more failing seeds", len(failed)-3)
					break
				}
				report(t, r)
			}
			preempt := 0
			var fo []time.Duration
			for _, r := range all {
				if len(r.Roles) != 3 {
					t.Fatalf("seed %d: %d roles reported, want 3", r.Seed, len(r.Roles))
				}
				for _, rr := range r.Roles {
					// A role nobody elected was never checked.
					if rr.MasterChanges == 0 || rr.Linearizable != "Ok" && r.OK() {
						t.Errorf("seed %d: role %s: %d master changes, history %q", r.Seed, rr.Name, rr.MasterChanges, rr.Linearizable)
					}
				}
				if r.Preempt {
					preempt++
				}
				fo = append(fo, r.sim.allRoleStats().Failovers...)
			}
			f := Summarize(fo)
			t.Logf("%d seeds × %v × 3 roles (%d with preemption): failover p50 %v p99 %v max %v (n=%d)", n, d, preempt, f.P50, f.P99, f.Max, f.N)
		})
	}
}

// TestMutantsCaughtRoles removes a safety rule from every role, then from
// role r2 only: the per-role checkers must catch the violation it lets in,
// and name the role it is in. The rules removed from r2 alone are each
// caught by another checker: the lease's promise (stickiness), the drivers'
// (the stop budget) and the cores' hard state (one vote per term).
func TestMutantsCaughtRoles(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under the race detector, as TestMutantsCaught is: make sweep runs it")
	}
	for _, c := range []struct {
		name    string
		unsafe  election.Unsafe
		profile string
		// only limits the rule's removal to one role (index+1), 0 for all.
		only int
		want string
	}{
		{"NoStickiness/every role", election.Unsafe{NoStickiness: true}, election.ProfileFast, 0, "two masters at once"},
		{"NoStickiness/r2 only", election.Unsafe{NoStickiness: true}, election.ProfileFast, 3, "two masters at once"},
		{"NoStopBudget/r2 only", election.Unsafe{NoStopBudget: true}, election.ProfileDefault, 3, "two masters at once: the drivers of"},
		{"VoteTwice/r2 only", election.Unsafe{VoteTwice: true}, election.ProfileFast, 3, "changed its vote in term"},
	} {
		t.Run(c.name, func(t *testing.T) {
			const bound = 60
			for seed := uint64(1); seed <= bound; seed++ {
				r, err := Run(RunConfig{Nodes: 5, Roles: 3, Seed: seed, Duration: time.Minute, Faults: true, Mix: DefaultMix(),
					Profile: c.profile, Unsafe: c.unsafe, Linearizability: true, unsafeRole: c.only})
				if err != nil {
					t.Fatal(err)
				}
				v := r.Sim().Violations()
				if len(v) == 0 {
					continue
				}
				if !strings.Contains(v[0].What, c.want) {
					t.Fatalf("seed %d: caught %q, want a violation containing %q", seed, v[0], c.want)
				}
				if c.only > 0 {
					want := r.Sim().RoleName(c.only - 1)
					for _, v := range v {
						if v.Role != want || !strings.Contains(v.String(), "role "+want+": ") {
							t.Errorf("seed %d: %q is reported as role %q; only role %s lacks the rule", seed, v, v.Role, want)
						}
					}
				} else if v[0].Role == "" {
					t.Errorf("seed %d: %q names no role", seed, v[0])
				}
				if !strings.Contains(r.Violations[0], "role "+v[0].Role+": ") {
					t.Errorf("seed %d: the result's violation %q does not name role %s", seed, r.Violations[0], v[0].Role)
				}
				t.Logf("caught in seed %d: %s", seed, v[0])
				return
			}
			t.Fatalf("nothing caught in seeds 1-%d", bound)
		})
	}
}

// TestLinearizablePerRole: porcupine checks each role's history on its
// own. A read of a master nobody elected, slipped into role r1's history
// only, fails r1 and no other role.
func TestLinearizablePerRole(t *testing.T) {
	r, err := Run(RunConfig{Nodes: 3, Roles: 3, Seed: 4, Duration: 20 * time.Second, Faults: true, Mix: DefaultMix(), Profile: election.ProfileFast})
	if err != nil || !r.OK() {
		t.Fatalf("run: %v %v", err, r.Violations)
	}
	s := r.Sim()
	// Recorded afresh: the run above had no history.
	for _, rl := range s.roles {
		rl.hist = newHistory()
	}
	s.hist = s.roles[0].hist
	for _, rl := range s.roles {
		rl.hist.write(0, 1, "n1", 0)
		rl.hist.complete(0, time.Millisecond)
		rl.hist.read(1, 1, "n1", 2*time.Millisecond, 3*time.Millisecond)
	}
	s.roles[1].hist.read(2, 1, "n3", 4*time.Millisecond, 5*time.Millisecond)
	res := &Result{}
	res.Roles = s.roleResults()
	if err := s.checkLinearizable("", res); err != nil {
		t.Fatal(err)
	}
	v := s.Violations()
	if len(v) != 1 || v[0].Role != "r1" || !strings.Contains(v[0].String(), "role r1: leadership history is not linearizable") {
		t.Fatalf("violations %q: want role r1's history only, not linearizable", v)
	}
	for k, want := range []string{"Ok", "Illegal", "Ok"} {
		if got := res.Roles[k].Linearizable; got != want {
			t.Errorf("role r%d: history %s, want %s", k, got, want)
		}
	}
}

// TestRolesActiveActive: three roles on three nodes with preemption, each
// at rest on the node it prefers. A crash of n1 moves role r0 only, and
// once n1 is back r0 returns to it after the hold-down, with no overlap.
func TestRolesActiveActive(t *testing.T) {
	timing := defaultTiming()
	const holdDown = 3 * time.Second
	s, err := New(Options{Nodes: 3, Roles: 3, Seed: 5, Timing: timing, Preempt: true, PreemptHoldDown: holdDown, Linearizability: true,
		Net: NetParams{Delay: time.Millisecond, Jitter: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	atRest := func(why string, within time.Duration, want []int) {
		t.Helper()
		end := s.Now() + within
		for s.Now() < end && !s.stopped {
			ok := true
			for r, i := range want {
				ok = ok && s.MasterOf(r) == i
			}
			if ok {
				return
			}
			s.RunFor(10 * time.Millisecond)
		}
		var got []int
		for r := range want {
			got = append(got, s.MasterOf(r))
		}
		t.Fatalf("%s: masters of r0, r1, r2 are %v, want %v within %v (violations %v)", why, got, want, within, s.Violations())
	}
	atRest("at rest", 2*holdDown+10*timing.ElectionMax, []int{0, 1, 2})
	s.RunFor(time.Second)
	moved := func(r int) int { return s.RoleStats(r).MasterChanges }
	before := []int{moved(0), moved(1), moved(2)}

	s.Crash(0)
	crashed := s.Now()
	end := s.Now() + 2*timing.ElectionMax + timing.StopBudget
	for s.Now() < end && s.MasterOf(0) < 0 {
		s.RunFor(time.Millisecond)
	}
	failover := s.Now() - crashed
	if m := s.MasterOf(0); m != 1 {
		// Role r0 ranks n2 after n1.
		t.Fatalf("after n1 crashed, role r0's master is %d, want n2 (index 1) within %v", m, end)
	}
	if moved(1) != before[1] || moved(2) != before[2] || s.MasterOf(1) != 1 || s.MasterOf(2) != 2 {
		t.Fatalf("n1's crash moved roles it did not hold: master changes %v -> %d %d, masters %d %d", before[1:], moved(1), moved(2), s.MasterOf(1), s.MasterOf(2))
	}

	n2 := s.roles[0].nodes[1]
	since := n2.masterSince[n2.state.Term]
	s.Restart(0)
	back := s.Now()
	atRest("after n1 restarted", 2*holdDown+10*timing.ElectionMax, []int{0, 1, 2})
	if held := s.Now() - since; held < holdDown {
		t.Errorf("role r0 returned to n1 %v after n2 took it over, before the hold-down of %v", held, holdDown)
	}
	t.Logf("r0 failed over to n2 in %v and returned to n1 %v after its restart", failover, s.Now()-back)
	s.RunFor(time.Second)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
	for r := range 3 {
		if res, err := s.LinearizableRole(r, 10*time.Second, ""); err != nil || res != "Ok" {
			t.Errorf("role %s: history %v, %v", s.RoleName(r), res, err)
		}
	}
}

// TestRolesShareFaults: a fault hits every role of a node at once. A
// paused node stops every role's timers and queues every role's messages.
func TestRolesShareFaults(t *testing.T) {
	s, err := New(Options{Nodes: 3, Roles: 2, Seed: 9, Timing: defaultTiming(), Net: NetParams{Delay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	s.RunFor(5 * time.Second)
	s.Pause(1)
	for r := range 2 {
		if n := s.roles[r].nodes[1]; !n.paused || !n.up {
			t.Fatalf("pause of n2: role %s replica up %v paused %v", s.RoleName(r), n.up, n.paused)
		}
	}
	s.RunFor(time.Second)
	for r := range 2 {
		if len(s.roles[r].nodes[1].inbox) == 0 {
			t.Errorf("paused n2 queued no message of role %s", s.RoleName(r))
		}
	}
	s.Resume(1)
	s.Crash(2)
	for r := range 2 {
		if n := s.roles[r].nodes[2]; n.up || s.CoreOf(r, 2) != nil {
			t.Fatalf("crash of n3: role %s still running", s.RoleName(r))
		}
	}
	s.Restart(2)
	for r := range 2 {
		if s.CoreOf(r, 2) == nil {
			t.Fatalf("restart of n3: role %s not running", s.RoleName(r))
		}
	}
	s.Heal()
	s.RunFor(5 * time.Second)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
}

// TestUnknownFailsTheRunRoles: with several roles, porcupine checks each
// role's history; a check that times out fails the run as that role's
// violation, and each role's history is kept in its own file.
func TestUnknownFailsTheRunRoles(t *testing.T) {
	old := linearizeTimeout
	linearizeTimeout = time.Nanosecond
	t.Cleanup(func() { linearizeTimeout = old })
	dir := t.TempDir()
	r, err := Run(RunConfig{Nodes: 3, Roles: 2, Seed: 1, Duration: 5 * time.Minute, Faults: true, Mix: DefaultMix(), Profile: election.ProfileFast,
		Linearizability: true, HTMLPath: filepath.Join(dir, "history.html")})
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Roles {
		if rr.Linearizable != "Unknown" {
			t.Skipf("porcupine finished role %s's %d operations within its nanosecond (%s): nothing to see", rr.Name, rr.HistoryOps, rr.Linearizable)
		}
	}
	if len(r.Violations) != 2 {
		t.Fatalf("two roles' checks timed out, violations: %q", r.Violations)
	}
	for k, name := range []string{"r0", "r1"} {
		html := filepath.Join(dir, "history-"+name+".html")
		if v := r.Violations[k]; !strings.Contains(v, "role "+name+": ") || !strings.Contains(v, "timed out (Unknown)") || !strings.Contains(v, html) {
			t.Errorf("violation %q: want role %s's check timed out, kept in %s", v, name, html)
		}
		if fi, err := os.Stat(html); err != nil || fi.Size() == 0 {
			t.Errorf("role %s's history was not kept at %s: %v", name, html, err)
		}
	}
}

// TestDeterministicRoles: a multi-role run, timeline included, replays byte
// for byte from its seed, and its first role is not a copy of the others.
func TestDeterministicRoles(t *testing.T) {
	run := func(seed uint64) ([]byte, *Result) {
		var b bytes.Buffer
		r, err := Run(RunConfig{Nodes: 5, Roles: 3, Seed: seed, Duration: 20 * time.Second, Faults: true, Mix: DefaultMix(), Profile: election.ProfileFast, Verbose: &b, Linearizability: true})
		if err != nil {
			t.Fatal(err)
		}
		r.WriteSummary(&b)
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), r
	}
	a, r := run(42)
	b, _ := run(42)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of seed 42 with 3 roles differ")
	}
	for _, label := range []string{" n1/r0 ", " n2/r1 ", " n3/r2 "} {
		if !bytes.Contains(a, []byte(label)) {
			t.Errorf("the timeline never mentions%s", label)
		}
	}
	if r.Roles[0].Elections == r.Roles[1].Elections && r.Roles[1].Elections == r.Roles[2].Elections &&
		r.Roles[0].HistoryOps == r.Roles[1].HistoryOps && r.Roles[1].HistoryOps == r.Roles[2].HistoryOps {
		t.Errorf("three roles with the same figures: %+v", r.Roles)
	}
	if c, _ := run(43); bytes.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same run")
	}
}

// TestRolePriority: role r prefers node r mod n, then the nodes after it;
// a witness is never a role's preferred node.
func TestRolePriority(t *testing.T) {
	for _, c := range []struct{ r, n int }{{0, 3}, {1, 3}, {2, 3}, {4, 3}, {0, 1}, {7, 5}} {
		seen := map[int]bool{}
		for k := range c.n {
			i := (c.r + k) % c.n
			if got, want := RolePriority(c.r, i, c.n), c.n-k; got != want {
				t.Errorf("RolePriority(%d, %d, %d) = %d, want %d", c.r, i, c.n, got, want)
			}
			seen[RolePriority(c.r, i, c.n)] = true
		}
		if len(seen) != c.n {
			t.Errorf("role %d of %d nodes: priorities not distinct: %v", c.r, c.n, seen)
		}
	}
	s, err := New(Options{Members: []election.Member{{ID: "a"}, {ID: "w", Witness: true}, {ID: "b"}}, Roles: 2, Seed: 1, Timing: defaultTiming()})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.roleResults(); got[0].Preferred != "a" || got[1].Preferred != "b" {
		t.Errorf("preferred nodes %q and %q, want a, then b (not the witness w)", got[0].Preferred, got[1].Preferred)
	}
	for _, bad := range []int{-1, MaxRoles + 1} {
		if _, err := New(Options{Nodes: 3, Roles: bad, Timing: defaultTiming()}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("roles: %d, need 1 to %d", bad, MaxRoles)) {
			t.Errorf("Roles %d: %v, want an error naming the value and the range", bad, err)
		}
	}
}
