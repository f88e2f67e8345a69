// Package boottime reads and waits on CLOCK_BOOTTIME, the clock every clustd
// lease is measured on: the daemon, its drivers, and the chaos and benchmark
// harnesses that compare their histories all read it here.
//
// Every process on a Linux host shares CLOCK_BOOTTIME, so a lease deadline
// the daemon reads from it means the same instant to its drivers; it keeps
// counting while a process is stopped, so a paused daemon that resumes sees
// how much time really passed; and, unlike CLOCK_MONOTONIC, it also counts
// while the machine is suspended, so a machine that wakes up finds its lease
// expired rather than believing no time went by.
package boottime

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Now reads CLOCK_BOOTTIME.
//
// It is read through Go's own clock (see bootClock), because
// clock_gettime(CLOCK_BOOTTIME) is a real system call from Go and an idle
// master reads the clock a few hundred times a second. Readings never go
// back, also across goroutines.
func Now() time.Duration { return theClock.now() }

var theClock = newBootClock(readBoottime, readGoClock)

func readBoottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME is always there on Linux since 2.6.39; losing it
		// is not a state the daemon can run safely in.
		panic("clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return time.Duration(ts.Nano())
}

// goEpoch anchors readGoClock's monotonic reading.
var goEpoch = time.Now()

// readGoClock reads Go's clock: CLOCK_MONOTONIC (since goEpoch) and
// CLOCK_REALTIME, both through the vDSO, without a system call.
func readGoClock() (mono, wall time.Duration) {
	t := time.Now()
	return t.Sub(goEpoch), time.Duration(t.UnixNano())
}

// bootClock derives CLOCK_BOOTTIME from CLOCK_MONOTONIC. The two differ by
// the time the machine has spent suspended, so their difference is constant
// except at a resume, when it jumps. The kernel adds the same suspended time
// to CLOCK_REALTIME, so a resume also moves realtime against monotonic: each
// reading compares the two and, when they moved apart, or when resyncEvery
// has passed anyway, reads CLOCK_BOOTTIME itself again. A resume can go
// unseen only if the wall clock is set back by the time slept, to within
// driftTolerance, before the next reading; even then it is seen within
// resyncEvery.
type bootClock struct {
	readBoot func() time.Duration
	readGo   func() (mono, wall time.Duration)
	cal      atomic.Pointer[calibration]
	// last is the highest value returned: readings never go back, even
	// when a new calibration lands a little below the old one.
	last atomic.Int64
}

type calibration struct {
	mono, wall time.Duration // Go's clock when calibrated
	boot       time.Duration // CLOCK_BOOTTIME at that instant
}

const (
	resyncEvery = time.Second
	// driftTolerance is how far realtime may move against monotonic before
	// the clock is read again: NTP slews realtime by at most 500 ppm, and
	// anything larger is a step or a resume.
	driftTolerance = time.Millisecond
)

func newBootClock(readBoot func() time.Duration, readGo func() (mono, wall time.Duration)) *bootClock {
	return &bootClock{readBoot: readBoot, readGo: readGo}
}

func (c *bootClock) now() time.Duration {
	mono, wall := c.readGo()
	v, ok := c.derive(mono, wall)
	if !ok {
		v = c.calibrate()
	}
	for {
		last := c.last.Load()
		if int64(v) <= last {
			return time.Duration(last)
		}
		if c.last.CompareAndSwap(last, int64(v)) {
			return v
		}
	}
}

// derive computes CLOCK_BOOTTIME from a reading of Go's clock, or reports
// that the calibration cannot be trusted for it.
func (c *bootClock) derive(mono, wall time.Duration) (time.Duration, bool) {
	cal := c.cal.Load()
	if cal == nil {
		return 0, false
	}
	dm := mono - cal.mono
	if dm < 0 || dm >= resyncEvery {
		return 0, false
	}
	skew := (wall - cal.wall) - dm
	if skew < 0 {
		skew = -skew
	}
	if skew > driftTolerance+dm/1000 {
		return 0, false
	}
	return cal.boot + dm, true
}

// calibrate pairs a reading of Go's clock with CLOCK_BOOTTIME, taken as the
// middle of two readings around it, and returns that CLOCK_BOOTTIME. A
// pair whose readings lie far apart (the thread was preempted between
// them) is taken again: the error is half their distance.
func (c *bootClock) calibrate() time.Duration {
	var best *calibration
	bestGap := time.Duration(-1)
	for range 8 {
		b1 := c.readBoot()
		mono, wall := c.readGo()
		b2 := c.readBoot()
		if gap := b2 - b1; bestGap < 0 || gap < bestGap {
			best, bestGap = &calibration{mono: mono, wall: wall, boot: b1 + gap/2}, gap
		}
		if bestGap <= 20*time.Microsecond {
			break
		}
	}
	c.cal.Store(best)
	return best.boot
}
