package api

import (
	"context"
	"errors"
	"net/http"
)

// Errors a [Daemon] returns, wrapped with %w and a message saying what
// exactly went wrong, so that the handler can answer with a fitting HTTP
// status code. The wrapping message is what the operator reads: it should
// say what to do instead, for instance which node is the master.
var (
	// ErrBadRequest means the request itself cannot be carried out, whatever
	// the cluster's state (400 Bad Request).
	ErrBadRequest = errors.New("bad request")
	// ErrUnknownTarget means a transfer named a node that is not a member
	// (400 Bad Request).
	ErrUnknownTarget = errors.New("no such member")
	// ErrNotMaster means the request needs the master and this node is not
	// it; only the master can hand its role over (409 Conflict).
	ErrNotMaster = errors.New("this node is not the master")
	// ErrNotEligible means the target of a transfer cannot become master
	// now: it is a witness, in maintenance, unhealthy or unreachable, or no
	// eligible node exists at all (409 Conflict).
	ErrNotEligible = errors.New("no eligible target")
	// ErrBusy means another transfer is already under way (409 Conflict).
	ErrBusy = errors.New("a transfer is already in progress")
	// ErrUnavailable means the daemon cannot take requests yet or any more,
	// for instance while it starts or shuts down (503 Service Unavailable).
	ErrUnavailable = errors.New("the daemon is not ready")
)

// StatusCode returns the HTTP status code that answers a request on which
// the daemon returned err: the code of the sentinel error it wraps, 504 when
// a deadline ran out, 500 for anything else.
func StatusCode(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrUnknownTarget):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotMaster), errors.Is(err, ErrNotEligible), errors.Is(err, ErrBusy):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer, but 503 is the
		// least misleading code for "not done".
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
