package driverclient

import (
	"os"
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

// newRealTimer makes a lease timer on CLOCK_BOOTTIME itself (a timerfd),
// falling back to a Go timer if the kernel refuses one. A Go timer runs on
// CLOCK_MONOTONIC, which stops while the machine is suspended: a lease
// that ran out during a suspension would be noticed only a suspension's
// length late, with the service still running as master while another
// node's may have started. A timerfd on CLOCK_BOOTTIME fires on resume.
func newRealTimer(d time.Duration) timer {
	if t, err := newBootTimer(d); err == nil {
		return t
	}
	return goTimer{time.NewTimer(d)}
}

type goTimer struct{ t *time.Timer }

func (g goTimer) C() <-chan time.Time { return g.t.C }
func (g goTimer) Stop()               { g.t.Stop() }

// bootTimer is a one-shot timerfd on CLOCK_BOOTTIME, read by a goroutine
// that waits in Go's poller.
type bootTimer struct {
	f    *os.File
	c    chan time.Time
	done chan struct{} // closed when the reading goroutine has returned
}

func newBootTimer(d time.Duration) (*bootTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// A zero it_value disarms a timerfd: a deadline already past fires at
	// once instead.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(d, 1)))}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t := &bootTimer{f: os.NewFile(uintptr(fd), "lease-timerfd"), c: make(chan time.Time, 1), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		var expirations [8]byte
		if _, err := t.f.Read(expirations[:]); err == nil {
			t.c <- time.Now()
		}
	}()
	return t, nil
}

func (t *bootTimer) C() <-chan time.Time { return t.c }

// Stop closes the timerfd, which ends the goroutine's read: the timer
// fires at most once, and not after Stop unless it already had.
func (t *bootTimer) Stop() { t.f.Close() }
