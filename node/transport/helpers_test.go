package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/tcptest"
)

var testSecret = []byte("clustd test secret, long enough to be realistic")

func testHello(node string, hash byte) Hello {
	return Hello{Node: node, ClusterHash: [32]byte{hash, 1, 2, 3}}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// side configures one end of a handshake.
type side struct {
	secret  []byte
	hello   Hello
	expect  string            // client only
	allowed func(string) bool // server only
}

func clientSide() side { return side{secret: testSecret, hello: testHello("a", 7), expect: "b"} }
func serverSide() side { return side{secret: testSecret, hello: testHello("b", 7)} }

// handshakePair runs Client over cconn and Server over sconn concurrently
// and returns both outcomes.
func handshakePair(t testing.TB, cconn, sconn net.Conn, c, s side) (cs, ss *Session, cerr, serr error) {
	t.Helper()
	ctx := testContext(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss, serr = Server(ctx, sconn, s.secret, s.hello, s.allowed)
	}()
	cs, cerr = Client(ctx, cconn, c.secret, c.hello, c.expect)
	<-done
	for _, x := range []*Session{cs, ss} {
		if x != nil {
			t.Cleanup(func() { x.Close() })
		}
	}
	return cs, ss, cerr, serr
}

// pipePair returns two sessions joined by net.Pipe.
func pipePair(t testing.TB) (client, server *Session) {
	t.Helper()
	cconn, sconn := net.Pipe()
	cs, ss, cerr, serr := handshakePair(t, cconn, sconn, clientSide(), serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	return cs, ss
}

// tapConn records everything written through it. Once diverted, writes go
// only to the record, so a test can decide what the peer receives.
type tapConn struct {
	net.Conn
	mu       sync.Mutex
	written  bytes.Buffer
	diverted atomic.Bool
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.written.Write(b)
	c.mu.Unlock()
	if c.diverted.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// take returns and forgets what was recorded so far.
func (c *tapConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.written.Bytes())
	c.written.Reset()
	return b
}

// framePair returns a server session whose peer's raw connection end is
// handed to the test, and a client session whose frames are captured
// rather than delivered.
func framePair(t *testing.T) (client *Session, tap *tapConn, raw net.Conn, server *Session) {
	t.Helper()
	cconn, sconn := net.Pipe()
	tap = &tapConn{Conn: cconn}
	cs, ss, cerr, serr := handshakePair(t, tap, sconn, clientSide(), serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	tap.diverted.Store(true)
	tap.take()
	return cs, tap, cconn, ss
}

// captureFrame makes the client seal payload and returns the frame bytes.
func captureFrame(t *testing.T, client *Session, tap *tapConn, payload []byte) []byte {
	t.Helper()
	if err := client.Send(payload); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return tap.take()
}

// inject writes b to conn from another goroutine, since net.Pipe blocks a
// writer until the reader has taken every byte, and then optionally closes
// conn. The returned channel yields once the write is over.
func inject(conn net.Conn, b []byte, closeAfter bool) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := conn.Write(b)
		if closeAfter {
			conn.Close()
		}
		ch <- err
	}()
	return ch
}

// byteConn is a net.Conn that reads from a fixed input and swallows writes,
// so the handshake can be fed arbitrary bytes without a goroutine.
type byteConn struct {
	r       *bytes.Reader
	written bytes.Buffer
}

func newByteConn(in []byte) *byteConn { return &byteConn{r: bytes.NewReader(in)} }

func (c *byteConn) Read(b []byte) (int, error) {
	if c.r.Len() == 0 {
		return 0, io.EOF
	}
	return c.r.Read(b)
}
func (c *byteConn) Write(b []byte) (int, error)      { return c.written.Write(b) }
func (c *byteConn) Close() error                     { return nil }
func (c *byteConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (c *byteConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (c *byteConn) SetDeadline(time.Time) error      { return nil }
func (c *byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(time.Time) error { return nil }

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

// deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// tcpPair is a handshaken pair of sessions over loopback TCP.
func tcpPair(t testing.TB) (client, server *Session) {
	t.Helper()
	cconn, sconn := tcptest.Pair(t)
	cs, ss, cerr, serr := handshakePair(t, cconn, sconn, clientSide(), serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	return cs, ss
}
