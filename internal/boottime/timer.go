package boottime

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Timer is a one-shot timer on CLOCK_BOOTTIME (a timerfd), read by a
// goroutine that waits in Go's poller. A Go timer runs on CLOCK_MONOTONIC,
// which stops while the machine is suspended: a lease that ran out during a
// suspension would be noticed only a suspension's length late. A Timer
// fires on resume.
type Timer struct {
	f    *os.File
	c    chan time.Time
	done chan struct{} // closed when the reading goroutine has returned
}

// NewTimer starts a Timer that fires once d has passed on CLOCK_BOOTTIME;
// a d of zero or less fires at once. It fails when the kernel refuses a
// timerfd.
func NewTimer(d time.Duration) (*Timer, error) {
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
	t := &Timer{f: os.NewFile(uintptr(fd), "boottime-timerfd"), c: make(chan time.Time, 1), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		var expirations [8]byte
		if _, err := t.f.Read(expirations[:]); err == nil {
			t.c <- time.Now()
		}
	}()
	return t, nil
}

// C delivers one value when the timer fires.
func (t *Timer) C() <-chan time.Time { return t.c }

// Stop closes the timerfd, which ends the goroutine's read: the timer
// fires at most once, and not after Stop unless it already had. Calling it
// again is harmless.
func (t *Timer) Stop() { t.f.Close() }
