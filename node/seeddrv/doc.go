// Package seeddrv accepts the drivers written for the 2018 daemon and its
// library (clustd-lib), unchanged, so that a cluster moving to clustd keeps
// them running while they are ported.
//
// Those drivers speak their own protocol on the local listener's root path:
// every message is a JSON object encrypted with AES-128-GCM under a key
// derived from the shared secret and a per-direction message counter, a
// handshake exchanges a ticket that later keys include, and the daemon sends
// them one request, trigger(isMaster), whenever its master status changes.
//
// They have no lease and acknowledge nothing but the request's arrival: a
// driver answers trigger before its work is done, and one whose daemon dies
// keeps its last state. The [Server] therefore only narrows the risk on a
// planned hand-over: it reports a driver that was told it is master as still
// holding the role until a grace period after it answered trigger(false).
// On an unplanned failover nothing stops such a driver from acting until its
// own daemon tells it; the daemon says so wherever it lists them.
package seeddrv
