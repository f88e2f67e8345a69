// Package bench measures clustd as an operator would see it: real daemons
// on loopback, killed with SIGKILL or asked to hand over, with one driver
// per daemon recording, on the daemons' own lease clock, when it is told to
// promote or demote; the idle cost of a running cluster read from /proc and from the
// kernel's per-socket counters; the simulator's speed; and the election
// core's micro-benchmarks.
//
// Each stage is one call (RunScenario, RunIdle, RunDriverIdle, RunSim,
// RunMicro) that returns its part of Results; WatchMachine describes the
// machine and how busy it was, EvaluateTargets sets the figures beside
// docs/design.md's targets, and WriteTable prints them.
//
// The command clustd-bench (bench/cmd/clustd-bench, run by make bench and
// make bench-quick) drives these stages, prints a table and writes the same
// figures as JSON. BENCHMARKS.md at the repository root explains the method
// and the latest figures.
package bench
