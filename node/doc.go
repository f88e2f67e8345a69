// Package node is the clustd daemon: the election core driven by
// CLOCK_BOOTTIME and real sockets.
//
// A Daemon owns one election.Node and feeds it every input under one lock,
// on the goroutine that has the input: a peer's frame on the goroutine that
// read it, the timer on the loop goroutine, a command from the admin API or
// a driver on its caller's. After each input it saves the hard state
// (package store) before sending any message that depends on it, sends the
// messages to the peers (package transport, frames in wire.go), publishes
// the role changes to the log, the metrics and the drivers (drivers.go),
// and sets one timer for the core's next deadline. If the state cannot be
// saved the daemon stops rather than send.
//
// docs/design.md describes the daemon's parts; docs/drivers.md the driver
// hub's contract; docs/wire.md the bytes on the wire.
package node
