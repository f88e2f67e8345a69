// Package vipnet is a test rig for floating addresses: three node network
// namespaces and a client namespace on one bridge, each node running a real
// clustd daemon with clustd driver vip (or keepalived, for comparison) and a
// small UDP responder bound to the floating address that answers with its
// node's name. The client probes the address every 10 ms and records who
// answered and when; watchers poll, through netlink, which namespaces hold
// the address and which MAC the client's neighbour entry names.
//
// Faults are applied to the master: kill -9 of the whole node (its
// processes, and its link, as when the machine dies), SIGSTOP of its
// daemon, isolation (its link cut), and a planned transfer. Each yields a
// Result: the outage the client saw, how long the client's neighbour entry
// took to follow the promote, whether answers from two nodes interleaved,
// and whether the address was ever on two nodes at once.
//
// Everything needs root. The namespaces are named vip-PID-…, so leftovers
// of a run that died are found and removed by the next.
package vipnet
