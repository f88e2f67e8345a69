// Package election is clustd's election core: Raft's leader election
// without the log, with pre-vote, stickiness, check-quorum, leadership
// transfer and a leader lease bounded by clock drift, plus ranked candidacy
// and a drained hand-over. docs/election.md is the protocol and its safety
// argument; this package is its only implementation.
//
// # The input loop
//
// A Node is a pure, deterministic state machine: no goroutines, no clock,
// no I/O, no global randomness. The caller owns the loop, as with
// etcd-io/raft's RawNode:
//
//  1. Hand in one input with the current local time: Step for a peer's
//     Message, Tick when the clock has moved, or a local command
//     (Transfer, DemoteDone, DemoteUnconfirmed, SetMaintenance,
//     SetHealthy, SetPriorities, SetPreempt).
//  2. Take Ready. Persist its HardState durably, then send its Messages:
//     persist, then send. A vote is a promise; if it left before the disk
//     held it, a crash and restart could grant a second vote in the same
//     term, and two candidates could each count a majority. Its States are
//     the changes of the visible state, for drivers, logs and metrics, in
//     order; a role passed through within one input is still reported.
//  3. Call Tick again no later than NextDeadline. The core keeps no timer
//     of its own: NextDeadline is the earliest of its deadlines (the next
//     heartbeat round, the lease's end, the election timeout, a drain's
//     end, a pending TimeoutNow), and a Tick that comes late fires every
//     timer that came due meanwhile, at once, in order.
//
// Ready's slices are reused by the next input: copy what must outlive it.
// Local time must never go back; a core handed an earlier time than it has
// seen keeps its own.
//
// Time is a value handed in, never a count of ticks, so a process that was
// paused sees the whole pause and finds its lease expired. The jitter comes
// from the *rand.Rand in Config, so a seed replays a run exactly. The
// daemon (package node) and the simulator (package sim) drive this very
// code.
//
// # Roles
//
// The code follows the roles, as etcd raft's become* and step* functions
// do. A Node is a follower, a pre-candidate, a candidate or a master;
// becomeFollower, startCampaign, becomeCandidate and becomeMaster change
// role, and what only one role needs is kept in one struct that changing
// role resets with a single assignment (campaignState, masterState), so
// nothing of an old role leaks into the next. Step first applies the rules
// common to every role (a higher term makes a follower, a pre-vote never
// raises a term, a sticky follower refuses a disruptive vote), then hands
// the message to the role's step function.
//
// # Files
//
//   - election.go: the types a caller sees (Role, Member, HardState,
//     Config, State, Ready, Unsafe), Node, its constructor, its read-only
//     accessors and Ready.
//   - step.go: the inputs: Tick, Step and the rules common to every role,
//     the eligibility commands (SetMaintenance, SetHealthy), NextDeadline,
//     and advance, which fires the timers of the current role.
//   - follower.go: becomeFollower, the timers of a node that is not master
//     (the election timeout, and the TimeoutNow a stepped-down master
//     still owes its hand-over's target), heartbeats taken, and the
//     voter's side: stickiness, the start-up hold-off, pre-votes granted
//     or refused, votes given.
//   - candidate.go: campaignState, pre-vote and campaign, the tally of
//     answers, ranksBefore, and TimeoutNow taken. (A follower's ranked
//     timeout, rankedTimeout, is in follower.go.)
//   - master.go: masterState and its per-peer progress, becomeMaster,
//     heartbeat rounds and the lease they earn, the stop budget (Act), and
//     the hand-over: Transfer, preemption and the drain (DemoteDone,
//     DemoteUnconfirmed).
//   - reason.go: Reason, why the visible state changed.
//   - message.go: the wire messages between cores.
//   - timing.go: Timing, its profiles and validation, and the lease
//     arithmetic.
//   - reconfig.go: changes while running (priorities, preemption).
package election
