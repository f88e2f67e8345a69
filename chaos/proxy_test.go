package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/tcptest"
)

// echoServer answers every line with the same line, until closed.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// newTestProxy puts a proxy for "node 0" in front of target. The client
// side counts as node 1.
func newTestProxy(t *testing.T, target string, links *linkTable) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(proxyOptions{
		Listener: ln,
		Dst:      0,
		Links:    links,
		Seed:     1,
		Dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", target)
		},
		Identify: func(net.Conn) int { return 1 },
	})
	t.Cleanup(func() { p.Close() })
	return p
}

func dialLines(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := fmt.Fprintln(c, line); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(got) != line {
		t.Fatalf("sent %q, got %q", line, got)
	}
	return time.Since(start)
}

// The timing checks below are lower bounds: a slow machine can only make
// them pass more easily, never fail.

func TestProxyForwardsWithLatency(t *testing.T) {
	echo := echoServer(t)
	links := &linkTable{}
	links.Set(1, 0, linkParams{Delay: 40 * time.Millisecond})
	links.Set(0, 1, linkParams{Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond})
	p := newTestProxy(t, echo.Addr().String(), links)
	c, r := dialLines(t, p.Addr().String())
	if d := roundTrip(t, c, r, "hello"); d < 70*time.Millisecond {
		t.Fatalf("round trip %v through 40ms + 30ms of latency", d)
	}
	// A change applies to the connection already open.
	links.Reset()
	links.SetBase(linkParams{Delay: 100 * time.Millisecond})
	if d := roundTrip(t, c, r, "again"); d < 200*time.Millisecond {
		t.Fatalf("round trip %v through 2 × 100ms of latency", d)
	}
}

func TestProxyLossStallsLikeARetransmission(t *testing.T) {
	echo := echoServer(t)
	links := &linkTable{}
	links.Set(1, 0, linkParams{Loss: 1})
	p := newTestProxy(t, echo.Addr().String(), links)
	c, r := dialLines(t, p.Addr().String())
	if d := roundTrip(t, c, r, "lost"); d < retransmitTimeout {
		t.Fatalf("a lost chunk arrived after %v, sooner than a retransmission (%v)", d, retransmitTimeout)
	}
}

func TestProxyKeepsOrderUnderJitter(t *testing.T) {
	echo := echoServer(t)
	links := &linkTable{}
	links.SetBase(linkParams{Jitter: 3 * time.Millisecond})
	p := newTestProxy(t, echo.Addr().String(), links)
	c, r := dialLines(t, p.Addr().String())
	go func() {
		for i := range 200 {
			fmt.Fprintf(c, "%d\n", i)
		}
	}()
	for i := range 200 {
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) != fmt.Sprint(i) {
			t.Fatalf("line %d came as %q: jitter reordered the stream", i, got)
		}
	}
}

func TestProxyBlockHoldsDataUntilUnblocked(t *testing.T) {
	echo := echoServer(t)
	links := &linkTable{}
	p := newTestProxy(t, echo.Addr().String(), links)
	c, r := dialLines(t, p.Addr().String())
	roundTrip(t, c, r, "before")
	links.Set(1, 0, linkParams{Block: true})
	if _, err := fmt.Fprintln(c, "held"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if _, err := r.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("data crossed a blocked link: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	links.Reset()
	got, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != "held" {
		t.Fatalf("after unblocking: %q %v", got, err)
	}
}

func TestProxyHalfCloseAndClose(t *testing.T) {
	// A server that reads everything, then answers with its length and
	// closes: the answer must come back after the client's half-close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "%d bytes\n", len(b))
	}()
	p := newTestProxy(t, ln.Addr().String(), &linkTable{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "twelve bytes")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "12 bytes\n" {
		t.Fatalf("answer after half-close: %q %v", got, err)
	}

	// Close ends open connections and every goroutine of the proxy.
	echo := echoServer(t)
	q := newTestProxy(t, echo.Addr().String(), &linkTable{})
	c2, r2 := dialLines(t, q.Addr().String())
	roundTrip(t, c2, r2, "open")
	before := runtime.NumGoroutine()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ReadString('\n'); err == nil {
		t.Fatal("a connection survived the proxy's Close")
	}
	if _, err := net.Dial("tcp", q.Addr().String()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
	// Close waited for the proxy's own goroutines (accept loop, two pumps
	// and two readers per connection), so fewer are left than before.
	if after := runtime.NumGoroutine(); after > before-4 {
		t.Fatalf("%d goroutines before Close, %d after", before, after)
	}
}

// TestIdentifyByProcFS checks the loopback fallback's way of telling which
// daemon opened a connection: this test process plays node 2.
func TestIdentifyByProcFS(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp here")
	}
	n := &loNet{pids: map[int]int{}}
	n.started(2, os.Getpid())
	_, in := tcptest.Pair(t)
	if got := n.identify(in); got != 2 {
		t.Fatalf("identified as %d, want 2", got)
	}
	n.started(2, 0)
	if got := n.identify(in); got != -1 {
		t.Fatalf("identified as %d with no daemon known, want -1", got)
	}
}

func TestParseProcAddr(t *testing.T) {
	got, ok := parseProcAddr("0100007F:1F90")
	want := netip.MustParseAddrPort("127.0.0.1:8080")
	// /proc prints the address in host byte order: on a big-endian host
	// the same text means 1.0.0.127.
	if ok && got != want && got != netip.MustParseAddrPort("1.0.0.127:8080") {
		t.Fatalf("got %v", got)
	}
	if _, ok := parseProcAddr("zz:1"); ok {
		t.Fatal("garbage parsed")
	}
}
