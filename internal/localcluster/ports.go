package localcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports are drawn from [portLow, the kernel's ephemeral range): a daemon's
// port must stay free between the check and the daemon's bind, and again
// while a killed daemon is down before its restart, and in the ephemeral
// range the kernel may hand it to an outgoing connection meanwhile. Every
// suite draws from this one band; ports stay apart because each is checked
// by binding it, and because a process never hands out the same port twice
// (see handedOut), so that parallel tests in one binary cannot collide even
// after their reservations are released. Processes draw their run at random
// across the band, which keeps two processes' choices apart in practice.
const portLow = 10000

// handedOut holds every port this process has reserved.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Reservation is a run of consecutive loopback ports, held bound until
// Release so that nothing else takes them in the meantime.
type Reservation struct {
	// Ports are the reserved port numbers, in order.
	Ports []int
	held  []net.Listener
}

// Release unbinds the ports for their real owners. It is safe to call more
// than once.
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	for _, ln := range r.held {
		ln.Close()
	}
	r.held = nil
}

// Reserve finds n consecutive free TCP ports on 127.0.0.1 that this process
// never handed out before and holds them bound until Release. It looks
// below the kernel's ephemeral range first and falls back to ports the
// kernel picks when that band has no room.
func Reserve(n int) (*Reservation, error) {
	if n < 1 {
		return nil, fmt.Errorf("localcluster: reserving %d ports", n)
	}
	handedOut.Lock()
	defer handedOut.Unlock()
	if top := ephemeralLow() - n; top > portLow {
		for range 500 {
			if r := tryRun(portLow+rand.IntN(top-portLow), n); r != nil {
				return r, nil
			}
		}
	}
	var lastErr error
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lastErr = err
			continue
		}
		first := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if first+n-1 > 65535 {
			continue
		}
		if r := tryRun(first, n); r != nil {
			return r, nil
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%w: %d consecutive on 127.0.0.1: %v", ErrNoPorts, n, lastErr)
	}
	return nil, fmt.Errorf("%w: %d consecutive on 127.0.0.1: every run tried had a port in use", ErrNoPorts, n)
}

// Ports is Reserve with the ports released at once, for a caller that
// binds them right away.
func Ports(n int) ([]int, error) {
	r, err := Reserve(n)
	if err != nil {
		return nil, err
	}
	r.Release()
	return r.Ports, nil
}

// tryRun binds first to first+n-1 and returns them held, or nil if one is
// in use or was handed out before. handedOut must be locked.
func tryRun(first, n int) *Reservation {
	r := &Reservation{}
	for p := first; p < first+n; p++ {
		if handedOut.ports[p] {
			r.Release()
			return nil
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			r.Release()
			return nil
		}
		r.held = append(r.held, ln)
		r.Ports = append(r.Ports, p)
	}
	for _, p := range r.Ports {
		handedOut.ports[p] = true
	}
	return r
}

// ephemeralLow is the first port of the range the kernel picks local ports
// of outgoing connections from.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 0 {
				return lo
			}
		}
	}
	return 32768 // Linux's default; macOS and the BSDs start at 49152
}

var errNotRunning = errors.New("not running")

// ErrNoPorts is the error Reserve (and so New) wraps when it finds no run
// of free ports.
var ErrNoPorts = errors.New("no run of free ports")
