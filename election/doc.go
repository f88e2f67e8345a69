// Package election is clustd's election core: Raft's leader election
// without the log, with pre-vote, stickiness, check-quorum, leadership
// transfer and a leader lease bounded by clock drift, plus ranked candidacy
// and a drained hand-over. docs/election.md is the protocol and its safety
// argument; this package is its only implementation.
//
// A Node is a pure, deterministic state machine: no goroutines, no clock,
// no I/O, no global randomness. The caller owns the loop, as with
// etcd-io/raft's RawNode:
//
//  1. Hand in one input with the current local time: Step for a peer's
//     Message, Tick when the clock has moved, or a local command
//     (Transfer, DemoteDone, SetMaintenance, SetHealthy).
//  2. Take Ready. Persist its HardState durably, then send its Messages:
//     persist, then send, or a vote could be given twice in one term after
//     a crash. Its States are the role changes, for drivers, logs and
//     metrics.
//  3. Call Tick again no later than NextDeadline.
//
// Time is a value handed in, never a count of ticks, so a process that was
// paused sees the whole pause and finds its lease expired. The jitter comes
// from the *rand.Rand in Config, so a seed replays a run exactly. The
// daemon (package node) and the simulator (package sim) drive this very
// code.
package election
