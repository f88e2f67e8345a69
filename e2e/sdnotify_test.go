package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServiceManagerNotifications runs clustd run as systemd would for
// Type=notify with a watchdog, against a socket standing in for systemd:
// READY=1 comes once the node answers, WATCHDOG=1 keeps coming while it
// runs and stops while it is frozen, SIGHUP is a reload, SIGTERM a stop.
func TestServiceManagerNotifications(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileDefault)
	sock := filepath.Join(c.dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	next := func(wait time.Duration) string {
		ln.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 4096)
		n, err := ln.Read(b)
		if err != nil {
			return ""
		}
		return string(b[:n])
	}
	waitFor := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if m := next(time.Until(deadline)); strings.Contains(m, want) {
				return m
			}
		}
		t.Fatalf("no %q from clustd within 15s", want)
		return ""
	}

	cmd := exec.Command(clustdBin, "run", "--config", c.cfgPath[0])
	// A watchdog of 2 s: the daemon pings at least every second (and
	// every half lease, some 220 ms, in fact).
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=2000000")
	c.startCommand(0, cmd)

	ready := waitFor("READY=1")
	if _, err := c.status(0); err != nil {
		t.Fatalf("READY=1 (%q) but the status does not answer: %v", ready, err)
	}
	waitFor("STATUS=master, term ")
	for range 3 {
		waitFor("WATCHDOG=1")
	}

	// Frozen, the loop sends nothing; thawed, it pings again.
	c.signal(0, syscall.SIGSTOP)
	for next(10*time.Millisecond) != "" {
	}
	if m := next(2 * time.Second); m != "" {
		t.Errorf("notification while the process was stopped: %q", m)
	}
	c.signal(0, syscall.SIGCONT)
	waitFor("WATCHDOG=1")

	c.signal(0, syscall.SIGHUP)
	if m := waitFor("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
	}
	waitFor("READY=1")

	c.signal(0, syscall.SIGTERM)
	waitFor("STOPPING=1")
	if ps := c.waitExit(0, 30*time.Second); ps.ExitCode() != 0 {
		t.Errorf("exit %v after SIGTERM", ps)
	}
}
