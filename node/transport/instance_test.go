package transport

import (
	"errors"
	"net"
	"testing"
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
