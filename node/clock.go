package node

import (
	"time"

	"golang.org/x/sys/unix"
)

// Monotonic reads CLOCK_MONOTONIC. Every process on a Linux host shares this
// clock, so a lease deadline the daemon reads from it means the same instant
// to its drivers; and it keeps counting while a process is stopped, so a
// paused daemon that resumes sees how much time really passed.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC is always there on Linux; losing it is not a
		// state the daemon can run safely in.
		panic("clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return time.Duration(ts.Nano())
}
