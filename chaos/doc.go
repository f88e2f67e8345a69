// Package chaos runs real clustd processes under faults and checks, from
// what their drivers did, the contract of docs/design.md: never two masters at
// once, terms only rising, a master soon after every fault heals.
//
// # The system under test
//
// Run builds cmd/clustd and the recorder driver (chaos/recorder) and starts
// N nodes, each with `clustd run`, a recorder and `clustd driver exec`
// running a probe command. Each node lives in a network namespace of its
// own, joined to the others by a veth pair and a bridge in a hub namespace;
// without root (or without ip and nft) everything runs on 127.0.0.1
// instead, and the summary says so. Every namespace is named
// clustd-chaos-PID-…: a run deletes those of runs whose process is gone
// before it starts, and its own when it ends, however it ends.
//
// Peers never connect to each other directly: the member addresses in the
// configuration are proxies on the hub, one per node (proxy.go), which add
// latency, jitter and loss where a fault asks for it — the kernels this
// runs on have no sch_netem. Since each daemon sends only on connections it
// dials, the traffic from a to b is exactly what leaves a's namespace for
// b's proxy port; links are cut there, in the kernel, with nftables rules
// (one-way, partial loss with numgen) or by taking a node's link down.
//
// # Faults
//
// A schedule drawn from the seed (printed, and accepted back) gives the
// sequence of faults and their parameters, and the network's background
// weather for the run: kill -9 and restart, SIGSTOP/SIGCONT for longer
// than the lease, SIGTERM and restart, isolating a node, splitting the
// cluster, cutting the master from some followers only, one-way loss,
// latency with jitter and loss, planned transfers and maintenance, and
// freezing a whole node, daemon and drivers and their children together,
// for longer than the lease (a cgroup v2 freeze as root, SIGSTOP of each
// process group otherwise). The kinds, their names and weights are
// internal/fault's, which the simulator shares; the seed and what it drew
// (the swarm) are printed together. Faults aimed
// at "the master" find it when they are applied. After each fault is
// healed the run waits for a master, then leaves the cluster alone for a
// moment; so the seed fixes what happens, and recovery speed fixes when.
//
// # What is checked
//
// All processes on a host share CLOCK_BOOTTIME, the clock clustd's leases
// run on, so the histories of all drivers merge exactly. A driver may act as master from the moment its
// promote starts to the moment its demote ends; the check uses exactly
// those conservative intervals, and any two from different nodes that
// intersect are an overlap. The drivers, and the probe, act only after
// checking their lease, as a service must that never acts beside another
// master even when its whole machine was frozen: the lease-checking
// contract of docs/drivers.md. One that finds its lease gone records that
// it held back, and its interval ends at its last act (one act interval
// on), not when it noticed after the thaw. A write that returned after the
// deadline its check found extends a driver's interval to its return; the
// probes all append to one file, whose order is where each act landed, and
// no two nodes' runs may interleave there either. The intervals where a driver surely acts,
// promote done to demote start, give availability, failover times and
// liveness. Terms must strictly increase along the merged promotions. The
// same history goes through porcupine as a register of (term, master)
// (the model is internal/leadership's, shared with the simulator; see
// linearize.go for how the history is placed on it and why it has no
// false alarms), whose visualisation is kept when it fails. The exec driver's probe writes its
// own start and stop, and those runs must not overlap either. After every
// heal a driver must act as master within the liveness bound, and so must
// a new one after every fault that takes the master away but leaves a
// majority up and connected (fast failover).
//
// With --roles N (Config.Roles) the nodes' configuration has N roles,
// r1 to rN. The faults, the exec probe, porcupine and the failover and
// liveness checks follow r1; each other role has a recorder of its own on
// every node (history-rK.jsonl), and its merged history is checked for
// overlaps and for terms that go back, as r1's is. `make chaos` runs its
// three-node cluster with three roles.
//
// A run that fails keeps its folder: every node's logs (daemon, recorder,
// exec driver), the history files, report.json, summary.txt and, when
// porcupine objects, history.html.
//
// # Proving it can fail
//
// Built with -tags chaos_unsafe, clustd runs without stickiness and without
// the stop budget's promote delay, which would otherwise hide the missing
// stickiness from drivers that stop at once (see node/unsafe_chaos.go). Cutting the master off from one follower then lets
// that follower win an election through the others while the master's
// lease still holds, and the run must report the overlap.
package chaos
