// Package sim is clustd's deterministic simulator: N election cores, the
// same code the daemon runs, wired by a simulated network on one virtual
// clock, under seeded faults, with the contract checked after every event.
//
// One seed drives everything: the fault mix the run draws (its "swarm"),
// message delay, loss, duplication and reordering, symmetric and one-way
// partitions, crashes and restarts (only the hard state survives), pauses,
// clock-rate drift within the timing's bound, transfers, maintenance and
// health changes, and drivers that take up to the stop budget to stop and
// whose timers fire late. Events run in (time, sequence) order, so a seed
// replays byte for byte.
//
// The checkers watch the cores' published states, the drivers and,
// independently, the traffic: one master per term, and one node sending
// heartbeats per term; no two cores, and no two nodes' drivers, acting as
// master at one real instant; no master while another node's drivers hold
// a lease they have not confirmed giving up; terms never going back; a
// master within the liveness bound after every heal with a majority
// connected; and, through porcupine, a linearizable leadership history. A
// failing run reports its seed and the timeline that led there.
//
// With Options.Roles, every machine runs one core per role: independent
// elections with their own priorities over the same network, hit by the
// same faults, each checked on its own, and a violation names its role.
//
// `clustd sim` is the front door (Run); the seed sweep of `make test` runs
// the same engine over hundreds of seeds. docs/design.md describes what is
// checked and why.
package sim
