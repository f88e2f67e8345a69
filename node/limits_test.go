package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeConn is a net.Conn with a chosen remote address that records Close.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed atomic.Bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed.Store(true); return nil }

func newFake(host string, port int) *fakeConn {
	return &fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(host), Port: port}}
}

func TestShedderBoundsPerSourceAndTotal(t *testing.T) {
	s := newShedder(6, 3)
	var a []*fakeConn
	for i := range 5 {
		c := newFake("127.0.0.2", 1000+i)
		a = append(a, c)
		s.admit(c, nil)
	}
	// The source is over its bound from the fourth on: each newcomer
	// sheds the oldest of that source.
	for i, c := range a {
		if want := i < 2; c.closed.Load() != want {
			t.Errorf("conn %d from the flooding source: closed=%v, want %v", i, c.closed.Load(), want)
		}
	}
	if n := s.len(); n != 3 {
		t.Fatalf("%d tracked, want 3", n)
	}
	// Other sources fill up to the total; then the oldest overall goes.
	var b []*fakeConn
	for i := range 4 {
		c := newFake(fmt.Sprintf("127.0.1.%d", i+1), 2000)
		b = append(b, c)
		s.admit(c, nil)
	}
	if n := s.len(); n != 6 {
		t.Fatalf("%d tracked, want the total bound 6", n)
	}
	if !a[2].closed.Load() {
		t.Error("the oldest connection overall was not shed at the total bound")
	}
	for i, c := range b {
		if c.closed.Load() {
			t.Errorf("newcomer %d from a quiet source was shed", i)
		}
	}
	if len(s.bySource) > 6 {
		t.Errorf("per-source map holds %d sources for 6 connections", len(s.bySource))
	}
}

func TestShedderPrefersIdle(t *testing.T) {
	s := newShedder(2, 2)
	busy, idle := newFake("127.0.0.1", 1), newFake("127.0.0.1", 2)
	s.admit(busy, func() bool { return true })
	e, _ := s.admit(idle, func() bool { return false })
	s.admit(newFake("127.0.0.1", 3), nil)
	if busy.closed.Load() || !idle.closed.Load() {
		t.Fatalf("busy closed=%v idle closed=%v: the idle one must go first", busy.closed.Load(), idle.closed.Load())
	}
	s.release(e) // already shed: a second release is harmless
	if n := s.len(); n != 2 {
		t.Fatalf("%d tracked, want 2", n)
	}
}

// flakyListener fails its first accepts as a process out of descriptors
// does, then hands out real connections.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptLoopSurvivesDescriptorExhaustion(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(4)
	done := make(chan struct{})
	got := make(chan net.Conn, 1)
	var errs atomic.Int32
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		acceptLoop(done, fl, func(err error) {
			if !errors.Is(err, syscall.EMFILE) {
				t.Errorf("accept error %v, want EMFILE", err)
			}
			errs.Add(1)
		}, func(c net.Conn) { got <- c })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted after the listener ran out of descriptors")
	}
	if n := errs.Load(); n != 4 {
		t.Errorf("%d accept errors reported, want 4", n)
	}
	close(done)
	ln.Close()
	select {
	case <-loopDone:
	case <-time.After(10 * time.Second):
		t.Fatal("accept loop did not return once closed")
	}
}

func TestAcceptBackoffDoublesToASecond(t *testing.T) {
	var b acceptBackoff
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.next(); got != w*time.Millisecond {
			t.Fatalf("step %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.reset()
	if got := b.next(); got != 5*time.Millisecond {
		t.Fatalf("after reset: %v", got)
	}
}

func TestBurstLogIsBounded(t *testing.T) {
	b := burstLog{quiet: time.Minute}
	for i := range 3 * maxBurstKeys {
		b.first(fmt.Sprintf("accept/auth/10.0.%d.%d", i/256, i%256), time.Second)
	}
	if n := len(b.last); n > maxBurstKeys {
		t.Fatalf("burst log remembers %d keys, bound %d", n, maxBurstKeys)
	}
	// Once the bursts are over, new sources are logged again.
	if !b.first("accept/auth/192.0.2.1", 2*time.Minute) {
		t.Fatal("a new source after the quiet period was not logged")
	}
}

// TestHTTPListenerStaysResponsive holds many idle connections on the local
// HTTP listener and checks that a request still gets an answer.
func TestHTTPListenerStaysResponsive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var shed atomic.Int64
	lim := newHTTPLimiter(ln, 16, 16, func(n int) { shed.Add(int64(n)) })
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: lim.connState,
	}
	go srv.Serve(lim)
	defer srv.Close()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 200 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("request among 200 idle connections: %v", err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for lim.shed.len() > 16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lim.shed.len(); n > 16 {
		t.Fatalf("%d connections tracked, bound 16", n)
	}
	if shed.Load() == 0 {
		t.Fatal("no connection was shed")
	}
}

// TestPeerListenerSurvivesFlood holds many idle connections on a master's
// peer port and checks that a restarted follower reconnects and that the
// number of pending handshakes stays bounded.
func TestPeerListenerSurvivesFlood(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	addr := tc.cfgs[m].Self().Address
	var mu sync.Mutex
	var flood []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range flood {
			c.Close()
		}
		mu.Unlock()
	}()
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		flood = append(flood, c)
		mu.Unlock()
	}
	f := (m + 1) % 3
	tc.stop(f)
	tc.start(f)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := tc.daemons[m].Status()
		reach := false
		for _, ms := range s.Members {
			if ms.ID == tc.cfgs[f].ID {
				reach = ms.Reachable
			}
		}
		if reach && tc.daemons[f].Status().Master == tc.cfgs[m].ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted n%d not reconnected to master n%d among 300 idle connections", f+1, m+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := tc.daemons[m].handshakes.len(); n > maxHandshakes {
		t.Fatalf("%d handshakes pending, bound %d", n, maxHandshakes)
	}
}
