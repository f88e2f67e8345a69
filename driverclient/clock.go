package driverclient

import (
	"time"

	"golang.org/x/sys/unix"
)

// monotonic reads CLOCK_BOOTTIME, the clock the daemon gives lease
// deadlines in (see driverproto). Go's own monotonic readings are not
// exposed as absolute values, hence the system call.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME is always there on Linux; without it no lease can
		// be enforced, and running on would be unsafe.
		panic("driverclient: clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return time.Duration(ts.Nano())
}

// timer is the part of *time.Timer the lease watch uses. It is an
// interface so that tests can fire it from their fake clock.
type timer interface {
	// C delivers one value when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing, if it has not yet.
	Stop()
}

type realTimer struct{ t *time.Timer }

func newRealTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop()               { r.t.Stop() }
