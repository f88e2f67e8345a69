package sdnotify

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeManager listens where a service manager would.
func fakeManager(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func recv(t *testing.T, ln *net.UnixConn) string {
	t.Helper()
	ln.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestSendPathAndAbstract(t *testing.T) {
	var b [8]byte
	rand.Read(b[:])
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@ops-sdnotify-test-" + hex.EncodeToString(b[:]),
	} {
		ln := fakeManager(t, name)
		n, err := New(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Send(Ready, Status("master\nterm 3")); err != nil {
			t.Fatal(err)
		}
		if got, want := recv(t, ln), "READY=1\nSTATUS=master term 3"; got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
		n.Close()
	}
}

func TestFromEnv(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	ln := fakeManager(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got := n.WatchdogTimeout(); got != 3*time.Second {
		t.Errorf("watchdog %v, want 3s", got)
	}
	if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Errorf("NOTIFY_SOCKET still set to %q: children would notify in the service's name", v)
	}
	n.Send(Watchdog)
	if got := recv(t, ln); got != Watchdog {
		t.Errorf("got %q", got)
	}

	// A watchdog meant for another process is not ours.
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "1")
	if n, err = FromEnv(); err != nil || n.WatchdogTimeout() != 0 {
		t.Errorf("watchdog of pid 1 taken: %v %v", n.WatchdogTimeout(), err)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if n, err := FromEnv(); n != nil || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v; want nil, nil", n, err)
	}
	if err := n.Send(Ready); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}

func TestBadEnv(t *testing.T) {
	for _, c := range []struct{ sock, usec string }{
		{"relative/path", ""},
		{"@", ""},
		{"/run/x", "soon"},
		{"/run/x", "0"},
	} {
		t.Setenv("NOTIFY_SOCKET", c.sock)
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", "")
		if n, err := FromEnv(); err == nil {
			n.Close()
			t.Errorf("NOTIFY_SOCKET=%q WATCHDOG_USEC=%q accepted", c.sock, c.usec)
		}
	}
}
