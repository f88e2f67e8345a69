package node

import (
	"time"

	"golang.org/x/sys/unix"
)

// Monotonic reads CLOCK_BOOTTIME, the clock of every lease. Every process on
// a Linux host shares it, so a lease deadline the daemon reads from it means
// the same instant to its drivers; it keeps counting while a process is
// stopped, so a paused daemon that resumes sees how much time really passed;
// and, unlike CLOCK_MONOTONIC, it also counts while the machine is
// suspended, so a machine that wakes up finds its lease expired rather than
// believing no time went by.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME is always there on Linux since 2.6.39; losing it
		// is not a state the daemon can run safely in.
		panic("clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return time.Duration(ts.Nano())
}
