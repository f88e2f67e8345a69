// Package e2e runs the real clustd binary as separate processes on loopback
// and checks, from the outside, what the daemon promises its users: one
// master at a time, fast failover, clean hand-over, refusal of peers that do
// not belong, and robustness against bad state files and bad network input.
//
// The tests build cmd/clustd once in TestMain, start each node with
// `clustd run --config FILE` from a configuration written by `clustd init`,
// and observe the nodes only through GET /v1/status, GET /metrics, their
// logs and their exit status, as an operator would.
package e2e
