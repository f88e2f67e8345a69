package node

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout is TCP_USER_TIMEOUT for peer connections: how long sent data
// may go unacknowledged before the kernel gives the connection up. Without
// it a connection that lived through a partition stays stuck in
// retransmission backoff for seconds after the partition heals, while a new
// one would work at once; with it, the session fails, and is dialled again.
func userTimeout(electionMin time.Duration) time.Duration {
	return max(2*electionMin, time.Second)
}

// setUserTimeout applies userTimeout to a raw socket.
func setUserTimeout(c syscall.RawConn, d time.Duration) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
	if err != nil {
		return err
	}
	return serr
}

// tuneAccepted applies userTimeout to an accepted connection.
func tuneAccepted(conn net.Conn, d time.Duration) {
	if tc, ok := conn.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			setUserTimeout(rc, d)
		}
	}
}
