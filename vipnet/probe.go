package vipnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clustd/clustd/internal/netnsutil"
)

// ProbePort is the UDP port the responders answer on.
const ProbePort = 9000

// ProbeEvery is the client's probe period.
const ProbeEvery = 10 * time.Millisecond

// envResponder, when set in a process's environment as NAME,ADDR, makes
// MaybeResponder run the responder instead of the program.
const envResponder = "VIPNET_RESPONDER"

// MaybeResponder runs the responder and exits if this process was started
// as one; a program using the rig calls it first thing in main or TestMain,
// since the rig starts responders by running its own executable again.
func MaybeResponder() {
	v := os.Getenv(envResponder)
	if v == "" {
		return
	}
	name, addr, _ := strings.Cut(v, ",")
	err := respond(name, addr)
	fmt.Fprintln(os.Stderr, "responder:", err)
	os.Exit(1)
}

// respond answers every datagram to addr:ProbePort with name and the
// datagram's 8-byte sequence number. The socket binds the floating address
// whether or not the node holds it (IP_FREEBIND), as a service does that
// must be ready the moment the address arrives.
func respond(name, addr string) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(addr, fmt.Sprint(ProbePort)))
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	out := make([]byte, 8+len(name))
	copy(out[8:], name)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if n < 8 {
			continue
		}
		copy(out, buf[:8])
		pc.WriteTo(out, from)
	}
}

// Answer is one probe's answer as the client saw it.
type Answer struct {
	Seq  uint64
	Node string
	Sent time.Time
	Got  time.Time
}

// client probes the floating address from the client namespace.
type client struct {
	pc   net.PacketConn
	dst  *net.UDPAddr
	stop chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex
	sent    []time.Time
	answers []Answer
}

func startClient(ns, vip string) (*client, error) {
	var pc net.PacketConn
	err := netnsutil.Run(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", ":0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	c := &client{pc: pc, dst: &net.UDPAddr{IP: net.ParseIP(vip), Port: ProbePort}, stop: make(chan struct{})}
	c.done.Go(c.send)
	c.done.Go(c.read)
	return c, nil
}

func (c *client) send() {
	t := time.NewTicker(ProbeEvery)
	defer t.Stop()
	b := make([]byte, 8)
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(b, seq)
		c.mu.Lock()
		c.sent = append(c.sent, time.Now())
		c.mu.Unlock()
		// Errors (no route, unreachable) are what an outage looks like.
		c.pc.WriteTo(b, c.dst)
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

func (c *client) read() {
	buf := make([]byte, 128)
	for {
		n, _, err := c.pc.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP port unreachable from a node whose responder died
			// comes back as ECONNREFUSED on some kernels; keep reading.
			continue
		}
		if n < 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(buf[:8])
		c.mu.Lock()
		var sent time.Time
		if seq < uint64(len(c.sent)) {
			sent = c.sent[seq]
		}
		c.answers = append(c.answers, Answer{Seq: seq, Node: string(buf[8:n]), Sent: sent, Got: now})
		c.mu.Unlock()
	}
}

// since returns the answers received at or after t.
func (c *client) since(t time.Time) []Answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.answers)
	for i > 0 && !c.answers[i-1].Got.Before(t) {
		i--
	}
	return append([]Answer(nil), c.answers[i:]...)
}

// last returns the last answer, if any.
func (c *client) last() (Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) == 0 {
		return Answer{}, false
	}
	return c.answers[len(c.answers)-1], true
}

func (c *client) close() {
	close(c.stop)
	c.pc.Close()
	c.done.Wait()
}
