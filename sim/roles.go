package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/clustd/clustd/election"
)

// MaxRoles bounds Options.Roles: enough to show that roles stay apart,
// few enough that a run stays quick.
const MaxRoles = 16

// role is one independent election across the cluster: a replica on every
// machine, its own priorities, history, figures and invariants. Roles share
// nothing but the machines and the network, and so the faults.
type role struct {
	idx int
	// name is what violations and the timeline call the role: empty when
	// there is only one, so that a single-role run reads as it always did.
	name    string
	members []election.Member
	nodes   []*node
	hist    *history
	stats   *Stats
	check   roleCheck
}

// RolePriority is node i's priority in role r of a cluster of n nodes in a
// multi-role run: the nodes rank from r mod n onwards, so that each role
// prefers another node and, when that one fails, another successor.
func RolePriority(r, i, n int) int {
	return n - ((i-r)%n+n)%n
}

// initRoles builds the roles before the machines: the first role is the one
// a single-role run has always had (Options.Members as given, figures in
// Sim.stats, history in Sim.hist).
func (s *Sim) initRoles() {
	for r := range s.opts.Roles {
		rl := &role{idx: r, members: s.members, stats: &s.stats, hist: s.hist}
		if s.opts.Roles > 1 {
			rl.name = "r" + strconv.Itoa(r)
			rl.members = make([]election.Member, len(s.members))
			for i, m := range s.members {
				m.Priority = RolePriority(r, i, len(s.members))
				rl.members[i] = m
			}
		}
		if r > 0 {
			st := newStats()
			rl.stats = &st
			if s.hist != nil {
				rl.hist = newHistory()
			}
		}
		s.roles = append(s.roles, rl)
	}
}

func newNode(id string, idx int, rl *role) *node {
	n := &node{id: id, idx: idx, role: rl.idx, label: id, rate: 1,
		candidateAt: map[uint64]time.Duration{}, wonWrite: map[uint64]int{}, masterSince: map[uint64]time.Duration{}}
	if rl.name != "" {
		n.label = id + "/" + rl.name
	}
	rl.nodes = append(rl.nodes, n)
	return n
}

// addReplicas gives machine n (the first role's replica) one replica in
// every other role, with the same clock and the same drivers' timing: the
// random draws stay those of a single-role run.
func (s *Sim) addReplicas(first *node) {
	for _, rl := range s.roles[1:] {
		n := newNode(first.id, first.idx, rl)
		n.rate, n.stopTime, n.lateness = first.rate, first.stopTime, first.lateness
	}
}

// replicas lists machine i's replicas, one per role, in role order.
func (s *Sim) replicas(i int) []*node {
	if len(s.roles) == 1 {
		return s.nodes[i : i+1]
	}
	out := make([]*node, len(s.roles))
	for r, rl := range s.roles {
		out[r] = rl.nodes[i]
	}
	return out
}

// allReplicas lists every replica, machine by machine.
func (s *Sim) allReplicas() []*node {
	if len(s.roles) == 1 {
		return s.nodes
	}
	var out []*node
	for i := range s.nodes {
		out = append(out, s.replicas(i)...)
	}
	return out
}

// Roles is the number of roles.
func (s *Sim) Roles() int { return len(s.roles) }

// RoleName is the name of role r: "r0", "r1", … in a multi-role run, empty
// in a single-role one.
func (s *Sim) RoleName(r int) string { return s.roles[r].name }

// CoreOf returns node i's core of role r, nil while the node is down.
func (s *Sim) CoreOf(r, i int) *election.Node { return s.roles[r].nodes[i].core }

// NodeStateOf returns the last state node i's core of role r published.
func (s *Sim) NodeStateOf(r, i int) election.State { return s.roles[r].nodes[i].state }

// MasterOf returns the node whose core of role r holds a lease now, or -1.
func (s *Sim) MasterOf(r int) int {
	for _, n := range s.roles[r].nodes {
		if s.claims(n) {
			return n.idx
		}
	}
	return -1
}

// claims reports whether replica n's core holds a lease now.
func (s *Sim) claims(n *node) bool {
	return n.up && n.core.IsMaster(s.local(n, s.now))
}

// pickRole draws the role a fault aims at; with one role it draws nothing,
// so that a single-role run's draws are what they always were.
func (s *Sim) pickRole() int {
	if len(s.roles) == 1 {
		return 0
	}
	return s.rnd.IntN(len(s.roles))
}

// TransferRole asks node i's core of role r to hand over to target ("" for
// the best node).
func (s *Sim) TransferRole(r, i int, target string) error {
	return s.transfer(s.roles[r].nodes[i], target)
}

// drawPreemption draws a multi-role run's preemption from its seed, apart
// from the simulation's own draws: on in half the seeds, with a hold-down
// of nothing, one election timeout, or several.
func drawPreemption(seed uint64, t election.Timing) (bool, time.Duration) {
	r := rand.New(rand.NewPCG(seed, seed^0x7072656d707421))
	on := r.IntN(2) == 0
	holdDowns := []time.Duration{0, t.ElectionMin, 3 * t.ElectionMax}
	return on, holdDowns[r.IntN(len(holdDowns))]
}

// allRoleStats adds up every role's figures; the faults and the traffic
// are the machines', counted once.
func (s *Sim) allRoleStats() *Stats {
	all := s.stats
	all.Failovers = nil
	all.CleanFailovers = nil
	all.Handovers = nil
	all.Recoveries = nil
	all.Elections, all.MasterChanges = 0, 0
	all.MasterTime, all.Elapsed = 0, 0
	for _, rl := range s.roles {
		st := rl.stats
		all.Elections += st.Elections
		all.MasterChanges += st.MasterChanges
		all.Failovers = append(all.Failovers, st.Failovers...)
		all.CleanFailovers = append(all.CleanFailovers, st.CleanFailovers...)
		all.Handovers = append(all.Handovers, st.Handovers...)
		all.Recoveries = append(all.Recoveries, st.Recoveries...)
		all.MasterTime += st.MasterTime
		all.Elapsed += st.Elapsed
	}
	return &all
}

// RoleStats returns role r's figures.
func (s *Sim) RoleStats(r int) *Stats { return s.roles[r].stats }

func (s *Sim) roleResults() []RoleResult {
	out := make([]RoleResult, len(s.roles))
	for r, rl := range s.roles {
		st := rl.stats
		best := 0
		for i, m := range rl.members {
			if b := rl.members[best]; !m.Witness && (b.Witness || m.Priority > b.Priority) {
				best = i
			}
		}
		out[r] = RoleResult{
			Name:          rl.name,
			Preferred:     rl.members[best].ID,
			Elections:     st.Elections,
			MasterChanges: st.MasterChanges,
			Failovers:     len(st.Failovers),
			FailoverMS:    millis(Summarize(st.Failovers)),
			HandoverMS:    millis(Summarize(st.Handovers)),
			RecoveryMS:    millis(Summarize(st.Recoveries)),
			Availability:  st.Availability(),
		}
	}
	return out
}

// checkLinearizable runs porcupine on every role's history and records the
// outcome in res; a history that is not linearizable, or could not be
// checked in time, is a violation of its role. Role r's visualisation goes
// to htmlPath with "-r" inserted before its extension when there are
// several roles. A check that timed out proved nothing: it fails the run
// as a bad history does, and the history is kept the same way.
func (s *Sim) checkLinearizable(htmlPath string, res *Result) error {
	for r, rl := range s.roles {
		path := htmlPath
		if rl.name != "" && path != "" {
			ext := filepath.Ext(path)
			path = strings.TrimSuffix(path, ext) + "-" + rl.name + ext
		}
		got, err := s.LinearizableRole(r, linearizeTimeout, path)
		if err != nil {
			return err
		}
		if res.Linearizable == "" || res.Linearizable == string(porcupine.Ok) {
			res.Linearizable = string(got)
		}
		res.HistoryOps += len(rl.hist.ops)
		if res.Roles != nil {
			res.Roles[r].Linearizable = string(got)
			res.Roles[r].HistoryOps = len(rl.hist.ops)
		}
		if got != porcupine.Ok {
			msg := "leadership history is not linearizable"
			if got == porcupine.Unknown {
				msg = "leadership history could not be checked: porcupine timed out (Unknown)"
			}
			if path != "" {
				msg += " (visualisation: " + path + ")"
			}
			s.check.violations = append(s.check.violations, Violation{At: s.Now(), Role: rl.name, What: msg})
		}
	}
	return nil
}

// writeRoles writes the summary's lines about each role.
func (r *Result) writeRoles(w io.Writer) {
	preempt := "off"
	if r.Preempt {
		preempt = fmt.Sprintf("on, hold-down %v", time.Duration(r.PreemptHoldDownS*float64(time.Second)))
	}
	fmt.Fprintf(w, "roles:          %d (preemption %s)\n", len(r.Roles), preempt)
	for _, rr := range r.Roles {
		fmt.Fprintf(w, "  %-3s prefers %-4s elections %d, master changes %d, availability %.3f%%, failover %s",
			rr.Name, rr.Preferred, rr.Elections, rr.MasterChanges, 100*rr.Availability, describeMillis(rr.FailoverMS))
		if rr.Linearizable != "" {
			fmt.Fprintf(w, ", linearizable %s (%d operations)", rr.Linearizable, rr.HistoryOps)
		}
		fmt.Fprintln(w)
	}
}
