// Command drainsvc is a test service that takes time to stop, as real
// services do: on SIGTERM (or SIGINT) it keeps working for --drain, then
// exits. It logs when it is active to a file, so that tests can check from
// the files of several nodes that it never ran on two at once.
//
// Every line it appends is "KIND PID NS [TERM]": NS is CLOCK_BOOTTIME in
// nanoseconds, which every process on the host reads alike and which the
// clustd daemon's leases also count in. KIND is start (with CLUSTD_TERM),
// alive (every --tick while running), term (the stop signal arrived) and
// exit (the drain is over; it exits right after). A process killed by
// SIGKILL writes no exit: it was active until at most one tick after its
// last line. Package drainlog reads the files.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	out := flag.String("out", "", "the file to append the activity log to (required)")
	drain := flag.Duration("drain", 300*time.Millisecond, "how long to keep working after the stop signal")
	tick := flag.Duration("tick", 5*time.Millisecond, "how often to log that it is still active")
	flag.Parse()
	if *out == "" || *tick <= 0 || *drain < 0 {
		fmt.Fprintln(os.Stderr, "usage: drainsvc --out FILE [--drain 300ms] [--tick 5ms]")
		os.Exit(2)
	}
	// Signals are caught before the first line, so that a stop right
	// after the start is drained too.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drainsvc:", err)
		os.Exit(1)
	}
	pid := strconv.Itoa(os.Getpid())
	// One write per line on an O_APPEND file: lines of several processes
	// never interleave.
	record := func(kind string, extra ...string) {
		line := kind + " " + pid + " " + strconv.FormatInt(boottime(), 10)
		for _, e := range extra {
			line += " " + e
		}
		if _, err := f.WriteString(line + "\n"); err != nil {
			fmt.Fprintln(os.Stderr, "drainsvc:", err)
			os.Exit(1)
		}
	}
	term := os.Getenv("CLUSTD_TERM")
	if term == "" {
		term = "-"
	}
	record("start", term)
	t := time.NewTicker(*tick)
	defer t.Stop()
	var end <-chan time.Time
	for {
		select {
		case <-t.C:
			record("alive")
		case <-stop:
			if end == nil {
				record("term")
				end = time.After(*drain)
			}
		case <-end:
			record("exit")
			os.Exit(0)
		}
	}
}

// boottime reads CLOCK_BOOTTIME in nanoseconds.
func boottime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(err) // Linux has had CLOCK_BOOTTIME since 2.6.39
	}
	return ts.Nano()
}
