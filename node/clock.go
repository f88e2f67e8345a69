package node

import (
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// Monotonic reads CLOCK_BOOTTIME, the clock of every lease; see package
// boottime for why that clock and how it is read cheaply.
func Monotonic() time.Duration { return boottime.Now() }
