// Package fault is the one vocabulary of faults that the simulator (sim)
// and the chaos run (chaos) inject: the kinds' names, the older names still
// accepted for them, and how often each suite draws each kind, as plain
// data. Each suite decides what a kind does to its cluster (a simulated
// crash drops a core; a real one is SIGKILL); a kind with no weight in a
// suite is one that suite does not inject.
//
// Names are part of two interfaces: the keys of `clustd sim --json`'s
// "faults" and of chaos's report, and the values of `chaos --faults`.
// Renaming one means keeping the old name as an alias.
package fault

import (
	"fmt"
	"slices"
	"strings"
)

// Kind names a kind of fault.
type Kind string

// The kinds, in the order both suites draw and print them.
const (
	// Crash kills a node's daemon; it restarts after a while. Its drivers
	// live on and must demote themselves when the lease ends. Chaos called
	// it "kill".
	Crash Kind = "crash"
	// Restart crashes a node and starts it again before its old lease
	// could have run out: what the start-up vote hold-off is for.
	Restart Kind = "restart"
	// Pause stops a daemon (SIGSTOP) for longer than the lease, then lets
	// it go on: the paused master must find its lease gone.
	Pause Kind = "pause"
	// Stop stops a daemon with SIGTERM (a master hands over first) and
	// restarts it.
	Stop Kind = "stop"
	// Partition cuts the network in two, both ways: one node isolated or
	// a random split. In chaos it names Isolate and Split together.
	Partition Kind = "partition"
	// Isolate cuts one node off from every other.
	Isolate Kind = "isolate"
	// Split splits the cluster in two: a minority and a majority.
	Split Kind = "split"
	// Partial cuts the master off from some followers only, while the
	// others still reach both sides: the case stickiness is for.
	Partial Kind = "partial"
	// OneWay loses some or all traffic in one direction. Chaos called it
	// "oneway".
	OneWay Kind = "one-way"
	// Latency adds latency, jitter and loss to every link for a while.
	Latency Kind = "latency"
	// Transfer asks the master for a planned hand-over.
	Transfer Kind = "transfer"
	// Maintenance puts the master in maintenance.
	Maintenance Kind = "maintenance"
	// Freeze freezes a whole node, daemon and drivers together, for
	// longer than the lease, as a machine that hangs.
	Freeze Kind = "freeze"
	// Health reports the master unhealthy.
	Health Kind = "health"
	// Loss drops messages; alone, it is a fault window of bad weather.
	Loss Kind = "loss"
	// Delay, Dup, Reorder and Drift are the simulator's weather: slow,
	// duplicated and reordered messages, and clocks running at different
	// rates. They are drawn per seed, not per fault window.
	Delay   Kind = "delay"
	Dup     Kind = "duplication"
	Reorder Kind = "reorder"
	Drift   Kind = "drift"
)

// Spec is one kind as the suites draw it.
type Spec struct {
	Kind Kind
	// Aliases are older names accepted for the kind.
	Aliases []string
	// Sim is the simulator's weight: each seed puts the kind in its swarm
	// 1 to Sim+1 times (0: not a fault window of the simulator's).
	Sim int
	// Chaos is the chaos run's weight, relative to the other kinds drawn
	// (0: chaos does not inject it).
	Chaos int
	// ChaosDefault says chaos draws the kind when no --faults are given.
	ChaosDefault bool
	// Means is what a group name stands for in chaos: Partition is
	// Isolate and Split there.
	Means []Kind
}

// Table is the vocabulary, in drawing and printing order.
var Table = []Spec{
	{Kind: Crash, Aliases: []string{"kill"}, Sim: 3, Chaos: 4, ChaosDefault: true},
	{Kind: Restart, Sim: 2},
	{Kind: Pause, Sim: 3, Chaos: 3, ChaosDefault: true},
	{Kind: Stop, Chaos: 1, ChaosDefault: true},
	{Kind: Partition, Sim: 3, Means: []Kind{Isolate, Split}},
	{Kind: Isolate, Chaos: 3, ChaosDefault: true},
	{Kind: Split, Chaos: 2, ChaosDefault: true},
	{Kind: Partial, Chaos: 2, ChaosDefault: true},
	{Kind: OneWay, Aliases: []string{"oneway"}, Sim: 2, Chaos: 2, ChaosDefault: true},
	{Kind: Latency, Chaos: 1, ChaosDefault: true},
	{Kind: Transfer, Sim: 2, Chaos: 2, ChaosDefault: true},
	{Kind: Maintenance, Sim: 1, Chaos: 1, ChaosDefault: true},
	// A frozen node's drivers and probe check their lease before each
	// act, so they act no more once it has passed, however late they
	// notice after the thaw (chaos/history.go).
	{Kind: Freeze, Chaos: 2, ChaosDefault: true},
	{Kind: Health, Sim: 1},
	{Kind: Loss, Sim: 1},
	{Kind: Delay},
	{Kind: Dup},
	{Kind: Reorder},
	{Kind: Drift},
}

// Lookup returns the spec of a kind's name or alias.
func Lookup(name string) (Spec, bool) {
	for _, s := range Table {
		if string(s.Kind) == name || slices.Contains(s.Aliases, name) {
			return s, true
		}
	}
	return Spec{}, false
}

// Weight is the chaos weight of k (0 for a kind chaos does not inject).
func Weight(k Kind) int {
	s, _ := Lookup(string(k))
	return s.Chaos
}

// ChaosKinds lists the kinds chaos injects, in table order.
func ChaosKinds() []Kind {
	var out []Kind
	for _, s := range Table {
		if s.Chaos > 0 {
			out = append(out, s.Kind)
		}
	}
	return out
}

// ChaosDefaults lists the kinds chaos draws when none are asked for.
func ChaosDefaults() []Kind {
	var out []Kind
	for _, s := range Table {
		if s.ChaosDefault {
			out = append(out, s.Kind)
		}
	}
	return out
}

// ParseChaos parses a comma-separated list of kinds for chaos, accepting
// aliases and group names, and returns them canonical, each once, in the
// order given.
func ParseChaos(list string) ([]Kind, error) {
	var out []Kind
	add := func(k Kind) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		s, ok := Lookup(f)
		switch {
		case !ok:
			return nil, fmt.Errorf("unknown fault kind %q; the kinds are %s", f, Join(ChaosKinds()))
		case len(s.Means) > 0:
			for _, k := range s.Means {
				add(k)
			}
		case s.Chaos == 0:
			return nil, fmt.Errorf("fault kind %q is the simulator's only; chaos injects %s", f, Join(ChaosKinds()))
		default:
			add(s.Kind)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fault kinds in %q", list)
	}
	return out, nil
}

// Join lists kinds separated by commas.
func Join(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
