// Package localcluster runs clustd clusters on this machine as separate
// processes, for the end-to-end tests, the chaos run, the benchmarks and
// `clustd dev`: it chooses loopback ports, writes every node's
// configuration with `clustd init`, starts and signals the daemons (and
// any driver process beside them) with a death signal so that none
// outlives its parent, reads their status, finds the master they agree on,
// parses their /metrics and tails their logs for failure reports.
//
// Everything here is plumbing. What a suite does with the cluster (faults,
// checks, rendering) stays with the suite.
package localcluster
