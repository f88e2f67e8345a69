package transport

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/clustd/clustd/internal/tcptest"
)

func TestInstanceCarriedAndDuplicateRefused(t *testing.T) {
	a, b := NewInstance(), NewInstance()
	if a == b {
		t.Fatal("two instance ids drawn equal")
	}
	for _, dup := range []bool{false, true} {
		cconn, sconn := net.Pipe()
		ch := testHello("a", 7)
		ch.Instance = a
		var seen Hello
		done := make(chan error, 1)
		var ss *Session
		go func() {
			var err error
			ss, err = ServerAdmit(testContext(t), sconn, testSecret, testHello("b", 7), func(h Hello) error {
				seen = h
				if dup {
					return ErrDuplicate
				}
				return nil
			})
			done <- err
		}()
		cs, cerr := Client(testContext(t), cconn, testSecret, ch, "b")
		serr := <-done
		if seen.Instance != a || seen.Node != "a" {
			t.Fatalf("server saw %+v, want node a with the client's instance", seen)
		}
		if !dup {
			if cerr != nil || serr != nil {
				t.Fatalf("accepted handshake failed: client %v, server %v", cerr, serr)
			}
			cs.Close()
			ss.Close()
			continue
		}
		if !errors.Is(cerr, ErrDuplicate) || !errors.Is(serr, ErrDuplicate) {
			t.Fatalf("duplicate: client %v, server %v; want ErrDuplicate on both", cerr, serr)
		}
	}
}

func TestServerAdmitOtherErrorIsUnknownPeer(t *testing.T) {
	cconn, sconn := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := ServerAdmit(testContext(t), sconn, testSecret, testHello("b", 7), func(Hello) error { return errors.New("no") })
		done <- err
	}()
	_, cerr := Client(testContext(t), cconn, testSecret, testHello("a", 7), "b")
	if serr := <-done; !errors.Is(serr, ErrUnknownPeer) || !errors.Is(cerr, ErrUnknownPeer) {
		t.Fatalf("client %v, server %v; want ErrUnknownPeer on both", cerr, serr)
	}
}

// TestVersion1Interop: a client speaking version 1, as older daemons do,
// is served in version 1: its hello has no instance id and the session
// works both ways.
func TestVersion1Interop(t *testing.T) {
	cconn, sconn := net.Pipe()
	tap := &tapConn{Conn: cconn}
	c, s := clientSide(), serverSide()
	c.hello.Version = V1
	c.hello.Instance = NewInstance() // not sent in version 1
	cs, ss, cerr, serr := handshakePair(t, tap, sconn, c, s)
	if cerr != nil || serr != nil {
		t.Fatalf("version 1 handshake: client %v, server %v", cerr, serr)
	}
	if p := ss.Peer(); p.Version != V1 || p.Instance != ([InstanceSize]byte{}) {
		t.Fatalf("server sees %+v, want version 1 and no instance", p)
	}
	if p := cs.Peer(); p.Version != V1 {
		t.Fatalf("client sees the server speak version %d, want 1", p.Version)
	}
	tap.mu.Lock()
	first := tap.written.Bytes()[:helloFixedV1+1]
	tap.mu.Unlock()
	if first[len(magic)] != V1 || int(first[helloFixedV1-1]) != len("a") || first[helloFixedV1] != 'a' {
		t.Fatalf("version 1 hello is not laid out as older daemons expect: % x", first)
	}
	go cs.Send([]byte("ping"))
	if b, err := ss.Recv(); err != nil || string(b) != "ping" {
		t.Fatalf("frame over a version 1 session: %q, %v", b, err)
	}
}

// TestOldServerHangsUp: a server that speaks only version 1 reads a
// version 1 hello's worth of bytes, finds version 2 and closes the
// connection; the client reports ErrHelloRefused, on which a daemon tries
// again in version 1.
func TestOldServerHangsUp(t *testing.T) {
	cconn, sconn := tcptest.Pair(t)
	go func() {
		b := make([]byte, helloFixedV1)
		io.ReadFull(sconn, b)
		sconn.Close()
	}()
	_, err := Client(testContext(t), cconn, testSecret, testHello("a", 7), "b")
	if !errors.Is(err, ErrHelloRefused) {
		t.Fatalf("client: %v, want ErrHelloRefused", err)
	}
}
