// Package rawio reads and writes sockets with raw system calls while still
// waiting in Go's network poller.
//
// An ordinary system call from Go goes through the runtime's bookkeeping
// (entersyscall), which wakes the runtime's monitor thread whenever the
// process was idle; that thread then polls every 20 µs until the process is
// idle again. A daemon that is idle between small frames, several hundred a
// second, pays that on nearly every frame: it was a fifth of an idle
// master's CPU. A read or write of a non-blocking socket never blocks, so
// it needs none of that bookkeeping: the readiness waits stay with the
// poller (syscall.RawConn), only the read(2) and write(2) are raw.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Read reads once from the socket behind rc into b, waiting in the poller
// (honouring read deadlines) until there is something to read. It returns
// io.EOF when the peer closed its side.
func Read(rc syscall.RawConn, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			r1, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller, then try again
			}
			n, errno = int(r1), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// TryWrite writes b to fd once without waiting: it returns how much the
// kernel took, 0 with no error when the socket buffer is full.
func TryWrite(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r1, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(r1), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		}
		return 0, os.NewSyscallError("write", e)
	}
}

// Write writes all of b, waiting in the poller (honouring write deadlines)
// while the socket buffer is full.
func Write(rc syscall.RawConn, b []byte) (int, error) {
	done := 0
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			n, err := TryWrite(fd, b[done:])
			if err != nil {
				werr = err
				return true
			}
			if n == 0 {
				return false
			}
			done += n
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return done, err
}

// Wrap returns c with its Read and Write made as above, or c itself when it
// has no file descriptor. Everything else (deadlines, Close, addresses) is
// c's.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &conn{Conn: c, rc: rc}
}

type conn struct {
	net.Conn
	rc syscall.RawConn
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := Read(c.rc, b)
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := Write(c.rc, b)
	if err != nil {
		err = &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, err
}
