package common

import (
	"context"
	"time"
)

// KillLead is how long before a demote's deadline a command still running
// is killed: SIGKILL takes effect at once, but the kernel must still tear
// the processes down and the driver notice they are gone, and on a busy
// machine that takes a few milliseconds. When the deadline is near, half
// the time left is used instead, so that the command still gets the other
// half to stop by itself.
const KillLead = 100 * time.Millisecond

// KillAt returns when a command that has not stopped by itself must be
// killed for its demote to finish by deadline, seen from now: KillLead
// before deadline, or halfway there if that is sooner.
func KillAt(deadline, now time.Time) time.Time {
	left := deadline.Sub(now)
	if left <= 0 {
		return deadline
	}
	return deadline.Add(-min(KillLead, left/2))
}

// Grace returns how long a command gets to stop after its stop signal:
// grace, cut short so that it is killed at KillAt(deadline, now). A zero
// deadline means none. The result is never negative.
func Grace(grace time.Duration, deadline, now time.Time) time.Duration {
	if deadline.IsZero() {
		return grace
	}
	return max(0, min(grace, KillAt(deadline, now).Sub(now)))
}

// Deadline returns ctx's deadline, or the zero time if it has none.
func Deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
