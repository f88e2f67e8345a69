package driverclient

import (
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// timer is the part of *time.Timer the lease watch uses. It is an
// interface so that tests can fire it from their fake clock.
type timer interface {
	// C delivers one value when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing, if it has not yet.
	Stop()
}

// newRealTimer makes a lease timer on CLOCK_BOOTTIME itself, falling back
// to a Go timer if the kernel refuses one. A Go timer runs on
// CLOCK_MONOTONIC, which stops while the machine is suspended: a lease that
// ran out during a suspension would be noticed only a suspension's length
// late, with the service still running as master while another node's may
// have started.
func newRealTimer(d time.Duration) timer {
	if t, err := boottime.NewTimer(d); err == nil {
		return t
	}
	return goTimer{time.NewTimer(d)}
}

type goTimer struct{ t *time.Timer }

func (g goTimer) C() <-chan time.Time { return g.t.C }
func (g goTimer) Stop()               { g.t.Stop() }
