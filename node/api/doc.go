// Package api is the admin side of clustd's local HTTP listener: the
// handler that serves status, leadership transfer, maintenance mode,
// Prometheus metrics, the node's event journal (GET /v1/events, and as
// Server-Sent Events at /v1/events/stream) and a live status page, and the
// client that the clustd status, transfer, maintenance and events commands
// use to talk to it.
//
// The daemon implements [Daemon]; [NewHandler] turns it into an
// [http.Handler]. Reads need no credentials, because the listener is
// loopback-only by default and status is what an operator or a monitoring
// script wants without ceremony. Requests that move the master role need the
// [AdminToken], a value derived from the cluster secret, sent as
// "Authorization: Bearer TOKEN": whoever can read the secret can already
// join the cluster, so the token adds no new secret to manage, while a
// browser page or another local user without the secret cannot trigger a
// failover.
//
// Every request is checked before the daemon sees it: wrong methods, unknown
// paths, oversized or malformed bodies and invalid node ids are answered
// with an [Error] body naming the problem, and only validated values reach
// [Daemon.Transfer] and [Daemon.SetMaintenance]. Errors the daemon returns
// are mapped to HTTP status codes through the sentinel errors of this
// package (see [StatusCode]).
package api
