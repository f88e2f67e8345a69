// Package sdnotify speaks the service manager's notification protocol
// (sd_notify(3)): newline-separated VARIABLE=value assignments sent as one
// datagram to the unix socket named by $NOTIFY_SOCKET. It is the few lines
// of the protocol clustd needs — readiness, watchdog pings, status and
// reload/stop announcements — with no dependency on systemd's libraries.
package sdnotify

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The assignments clustd sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notifier sends notifications to one socket. The zero of *Notifier (nil)
// is valid and sends nothing, so that callers need not check whether the
// daemon runs under a service manager.
type Notifier struct {
	addr     *unix.SockaddrUnix
	fd       int
	watchdog time.Duration
}

// FromEnv returns a notifier for $NOTIFY_SOCKET and the watchdog interval
// of $WATCHDOG_USEC (honoured only when $WATCHDOG_PID is unset or names
// this process, as sd_watchdog_enabled(3) does). It returns nil, nil when
// $NOTIFY_SOCKET is unset: not running under a service manager is normal.
// It unsets the variables, so that processes this one starts do not
// mistake themselves for the service.
func FromEnv() (*Notifier, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	usec := os.Getenv("WATCHDOG_USEC")
	pid := os.Getenv("WATCHDOG_PID")
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
	if sock == "" {
		return nil, nil
	}
	var wd time.Duration
	if usec != "" && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n, err := strconv.ParseUint(usec, 10, 63)
		if err != nil || n == 0 || n > uint64(time.Duration(1<<62)/time.Microsecond) {
			return nil, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
		}
		wd = time.Duration(n) * time.Microsecond
	}
	return New(sock, wd)
}

// New returns a notifier for the socket at path; a path beginning with '@'
// names a socket in the abstract namespace. watchdog is the manager's
// watchdog timeout, 0 when it has none.
func New(path string, watchdog time.Duration) (*Notifier, error) {
	if path == "" || (path[0] != '/' && path[0] != '@') {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: expected an absolute path or an abstract name starting with @", path)
	}
	if path == "@" {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: an abstract socket needs a name after the @", path)
	}
	// An unbound, unconnected socket: each datagram names the manager's
	// socket, so a manager that re-executes itself is still reached.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// On Linux a name starting with '@' is in the abstract namespace: the
	// '@' becomes the leading NUL byte such names have.
	return &Notifier{addr: &unix.SockaddrUnix{Name: path}, fd: fd, watchdog: watchdog}, nil
}

// WatchdogTimeout is the manager's watchdog timeout, 0 when the watchdog is
// off. Ping at a fraction of it.
func (n *Notifier) WatchdogTimeout() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends the assignments as one datagram. A value must not hold a
// newline; Status makes one safe.
func (n *Notifier) Send(assignments ...string) error {
	if n == nil || len(assignments) == 0 {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	// Never blocks: the daemon sends while holding its lock, and a
	// manager too busy to read loses a ping rather than wedging the loop.
	if err := unix.Sendto(n.fd, []byte(msg), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, n.addr); err != nil {
		return fmt.Errorf("notify socket %s: %w", n.addr.Name, err)
	}
	return nil
}

// Close releases the notifier's socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return unix.Close(n.fd)
}

// Status returns a STATUS= assignment for a one-line summary: control
// characters, newlines included, become spaces.
func Status(s string) string {
	return "STATUS=" + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// ReloadingNow returns the assignments announcing a reload: systemd
// (Type=notify-reload) wants the monotonic time the reload began with it.
func ReloadingNow(monotonic time.Duration) []string {
	return []string{Reloading, "MONOTONIC_USEC=" + strconv.FormatInt(int64(monotonic/time.Microsecond), 10)}
}
