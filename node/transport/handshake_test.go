package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHandshakePeers(t *testing.T) {
	cs, ss := pipePair(t)
	// A peer's Hello says which version it spoke: the newest.
	wantB, wantA := testHello("b", 7), testHello("a", 7)
	wantB.Version, wantA.Version = V2, V2
	if got, want := cs.Peer(), wantB; got != want {
		t.Errorf("client sees peer %+v, want %+v", got, want)
	}
	if got, want := ss.Peer(), wantA; got != want {
		t.Errorf("server sees peer %+v, want %+v", got, want)
	}
}

func TestHandshakeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := testContext(t)
	type result struct {
		s   *Session
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			accepted <- result{nil, err}
			return
		}
		s, err := Server(ctx, conn, testSecret, testHello("b", 7), func(p string) bool { return p == "a" })
		accepted <- result{s, err}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Client(ctx, conn, testSecret, testHello("a", 7), "b")
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	defer cs.Close()
	r := <-accepted
	if r.err != nil {
		t.Fatalf("Server: %v", r.err)
	}
	ss := r.s
	defer ss.Close()

	big := bytes.Repeat([]byte{0xab}, MaxFrame)
	for _, p := range [][]byte{nil, []byte("ping"), big} {
		sent := make(chan error, 1)
		go func() { sent <- cs.Send(p) }()
		got, err := ss.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if err := <-sent; err != nil {
			t.Fatalf("Send: %v", err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("got %d bytes, want %d", len(got), len(p))
		}
	}
}

func TestWrongSecret(t *testing.T) {
	c := clientSide()
	c.secret = []byte("some other secret")
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, c, serverSide())
	// The server sees the bad proof and closes without a verdict; the
	// client, which proved first, can only see the connection close.
	if !errors.Is(serr, ErrAuth) {
		t.Errorf("server error %v, want ErrAuth", serr)
	}
	if !errors.Is(cerr, ErrPeerClosed) || errors.Is(cerr, ErrAuth) {
		t.Errorf("client error %v, want ErrPeerClosed", cerr)
	}
	if cerr != nil && !strings.Contains(cerr.Error(), "same secret") {
		t.Errorf("client error %q does not point at the secret", cerr)
	}
}

// TestWrongServerSecret covers a server that answers a proof it could not
// check, as a fake would: the client must refuse its proof.
func TestWrongServerSecret(t *testing.T) {
	cconn, sconn := net.Pipe()
	go fakeServer(sconn, testHello("b", 7), func(m1 []byte, proof []byte) []byte {
		m2 := validHello(typeServerHello, 9, testHello("b", 7))
		k, err := deriveKeys([]byte("wrong"), m1[6:6+nonceSize], m2[6:6+nonceSize], m1, m2)
		if err != nil {
			panic(err)
		}
		return append([]byte{statusOK}, k.serverProof(statusOK)...)
	})
	_, err := Client(testContext(t), cconn, testSecret, testHello("a", 7), "b")
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("client error %v, want ErrAuth", err)
	}
}

func TestClusterMismatch(t *testing.T) {
	s := serverSide()
	s.hello.ClusterHash[31] ^= 1
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, clientSide(), s)
	for _, tc := range []struct {
		who         string
		err         error
		local, peer string
	}{
		{"client", cerr, "a", "b"},
		{"server", serr, "b", "a"},
	} {
		var m *ClusterMismatchError
		if !errors.As(tc.err, &m) {
			t.Errorf("%s error %v, want *ClusterMismatchError", tc.who, tc.err)
			continue
		}
		if m.Local != tc.local || m.Peer != tc.peer {
			t.Errorf("%s: mismatch names local %q peer %q, want %q %q", tc.who, m.Local, m.Peer, tc.local, tc.peer)
		}
		msg := m.Error()
		for _, want := range []string{`"a"`, `"b"`, "member lists", "timing"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message %q lacks %q", tc.who, msg, want)
			}
		}
	}
}

// TestClusterMismatchNeedsAuth checks that the hashes are compared only
// after the secret: a peer with the wrong secret is told nothing more.
func TestClusterMismatchNeedsAuth(t *testing.T) {
	c := clientSide()
	c.secret = []byte("wrong")
	c.hello.ClusterHash[0] ^= 1
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, c, serverSide())
	var m *ClusterMismatchError
	if errors.As(serr, &m) || !errors.Is(serr, ErrAuth) {
		t.Errorf("server error %v, want ErrAuth", serr)
	}
	if errors.As(cerr, &m) || !errors.Is(cerr, ErrPeerClosed) {
		t.Errorf("client error %v, want ErrPeerClosed", cerr)
	}
}

func TestServerRefusesUnknownPeer(t *testing.T) {
	var asked atomic.Int32
	s := serverSide()
	s.allowed = func(p string) bool { asked.Add(1); return p == "z" }
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, clientSide(), s)
	if !errors.Is(serr, ErrUnknownPeer) {
		t.Errorf("server error %v, want ErrUnknownPeer", serr)
	}
	if !errors.Is(cerr, ErrUnknownPeer) {
		t.Errorf("client error %v, want ErrUnknownPeer", cerr)
	}
	if asked.Load() != 1 {
		t.Errorf("allowed asked %d times, want 1", asked.Load())
	}
}

// TestAllowListNeedsAuth checks that an unauthenticated client cannot probe
// the allow list.
func TestAllowListNeedsAuth(t *testing.T) {
	var asked atomic.Int32
	c := clientSide()
	c.secret = []byte("wrong")
	s := serverSide()
	s.allowed = func(string) bool { asked.Add(1); return false }
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, c, s)
	if !errors.Is(serr, ErrAuth) || !errors.Is(cerr, ErrPeerClosed) {
		t.Errorf("errors client %v, server %v; want ErrPeerClosed, ErrAuth", cerr, serr)
	}
	if asked.Load() != 0 {
		t.Errorf("allowed asked %d times before authentication", asked.Load())
	}
}

func TestClientRefusesUnexpectedPeer(t *testing.T) {
	c := clientSide()
	c.expect = "c"
	cconn, sconn := net.Pipe()
	_, _, cerr, serr := handshakePair(t, cconn, sconn, c, serverSide())
	if !errors.Is(cerr, ErrUnknownPeer) {
		t.Errorf("client error %v, want ErrUnknownPeer", cerr)
	}
	// The client hangs up before proving, so the server never gets a proof.
	if !errors.Is(serr, ErrPeerClosed) || !strings.Contains(serr.Error(), "proof") {
		t.Errorf("server error %v, want ErrPeerClosed while waiting for the proof", serr)
	}
}

func TestClientAcceptsAnyPeerWhenUnset(t *testing.T) {
	c := clientSide()
	c.expect = ""
	cconn, sconn := net.Pipe()
	cs, _, cerr, serr := handshakePair(t, cconn, sconn, c, serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	if cs.Peer().Node != "b" {
		t.Errorf("peer %q", cs.Peer().Node)
	}
}

func TestLocalArgumentsChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		node   string
	}{
		{"empty secret", nil, "a"},
		{"empty node", testSecret, ""},
		{"long node", testSecret, strings.Repeat("n", 256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cconn, sconn := net.Pipe()
			defer sconn.Close()
			_, err := Client(testContext(t), cconn, tc.secret, Hello{Node: tc.node}, "")
			if err == nil {
				t.Fatal("Client accepted bad arguments")
			}
			// The conn was closed, not written to.
			if n, rerr := sconn.Read(make([]byte, 1)); n != 0 || rerr != io.EOF {
				t.Errorf("peer read %d bytes, %v; want EOF", n, rerr)
			}
		})
	}
}

// validHello builds a hello message as the protocol defines it.
func validHello(typ byte, nonce byte, h Hello) []byte {
	m := []byte(magic)
	m = append(m, version, typ)
	m = append(m, bytes.Repeat([]byte{nonce}, nonceSize)...)
	m = append(m, h.ClusterHash[:]...)
	m = append(m, h.Instance[:]...)
	m = append(m, byte(len(h.Node)))
	return append(m, h.Node...)
}

func malformedHellos(typ byte) map[string][]byte {
	good := validHello(typ, 5, testHello("x", 7))
	mutate := func(i int, b byte) []byte {
		m := bytes.Clone(good)
		m[i] = b
		return m
	}
	other := byte(typeClientHello + typeServerHello - int(typ))
	return map[string][]byte{
		"bad magic":      mutate(0, 'x'),
		"bad version":    mutate(4, version+1),
		"wrong type":     mutate(5, other),
		"empty node id":  append(mutate(helloFixed-1, 0), 'x'),
		"truncated":      good[:20],
		"truncated node": good[:helloFixed],
		"http":           []byte("GET / HTTP/1.1\r\nHost: clustd\r\n\r\n" + strings.Repeat(" ", 64)),
	}
}

func TestServerRejectsMalformedHello(t *testing.T) {
	for name, m := range malformedHellos(typeClientHello) {
		t.Run(name, func(t *testing.T) {
			raw, sconn := net.Pipe()
			defer raw.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := Server(testContext(t), sconn, testSecret, testHello("b", 7), nil)
				errc <- err
			}()
			inject(raw, m, true)
			if err := <-errc; !errors.Is(err, ErrProtocol) {
				t.Errorf("Server error %v, want ErrProtocol", err)
			}
		})
	}
}

func TestClientRejectsMalformedHello(t *testing.T) {
	for name, m := range malformedHellos(typeServerHello) {
		t.Run(name, func(t *testing.T) {
			cconn, raw := net.Pipe()
			defer raw.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := Client(testContext(t), cconn, testSecret, testHello("a", 7), "")
				errc <- err
			}()
			m1 := make([]byte, helloFixed+1)
			if _, err := io.ReadFull(raw, m1); err != nil {
				t.Fatal(err)
			}
			inject(raw, m, true)
			if err := <-errc; !errors.Is(err, ErrProtocol) {
				t.Errorf("Client error %v, want ErrProtocol", err)
			}
		})
	}
}

// fakeServer plays the server without the secret: it reads the client's
// hello, answers with its own, reads the client's proof and answers with
// whatever verdict returns. It stops early when the client hangs up.
func fakeServer(conn net.Conn, self Hello, verdict func(m1, proof []byte) []byte) {
	defer conn.Close()
	m1 := make([]byte, helloFixed+1) // client node "a"
	if _, err := io.ReadFull(conn, m1); err != nil {
		return
	}
	if _, err := conn.Write(validHello(typeServerHello, 9, self)); err != nil {
		return
	}
	proof := make([]byte, proofSize)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return
	}
	conn.Write(verdict(m1, proof))
}

// TestClientRejectsReflectedProof is the classic reflection: a server that
// does not know the secret sends the client's own proof back as its own.
func TestClientRejectsReflectedProof(t *testing.T) {
	cconn, sconn := net.Pipe()
	go fakeServer(sconn, testHello("b", 7), func(_, proof []byte) []byte {
		return append([]byte{statusOK}, proof...)
	})
	_, err := Client(testContext(t), cconn, testSecret, testHello("a", 7), "b")
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("client error %v, want ErrAuth", err)
	}
}

// TestClientRejectsMirror faces the client with a server that echoes the
// client's hello, nonce included, as its own: the client must notice before
// it proves anything.
func TestClientRejectsMirror(t *testing.T) {
	cconn, raw := net.Pipe()
	defer raw.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := Client(testContext(t), cconn, testSecret, testHello("a", 7), "")
		errc <- err
	}()
	m1 := make([]byte, helloFixed+1)
	if _, err := io.ReadFull(raw, m1); err != nil {
		t.Fatal(err)
	}
	m1[5] = typeServerHello
	inject(raw, m1, false)
	if err := <-errc; !errors.Is(err, ErrAuth) {
		t.Fatalf("client error %v, want ErrAuth", err)
	}
	if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("mirror read %d bytes, %v after the refusal; want EOF and no proof", n, err)
	}
}

// attack connects to a real server as a client that does not know the
// secret and sends the proof that makeProof computes from the exchanged
// hellos. It returns whatever the server sent after its hello and the
// server's error.
func attack(t *testing.T, m1 []byte, makeProof func(m1, m2 []byte) []byte) (sent []byte, err error) {
	t.Helper()
	raw, sconn := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := Server(testContext(t), sconn, testSecret, testHello("b", 7), nil)
		errc <- err
	}()
	inject(raw, m1, false)
	m2 := make([]byte, helloFixed+1)
	if _, err := io.ReadFull(raw, m2); err != nil {
		t.Fatal(err)
	}
	inject(raw, makeProof(m1, m2), false)
	sent, _ = io.ReadAll(raw)
	return sent, <-errc
}

// TestServerRejectsEchoedChallenge echoes the server's own challenge back
// as the proof.
func TestServerRejectsEchoedChallenge(t *testing.T) {
	rest, err := attack(t, validHello(typeClientHello, 1, testHello("a", 7)), func(_, m2 []byte) []byte {
		return bytes.Clone(m2[6 : 6+proofSize])
	})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("server error %v, want ErrAuth", err)
	}
	if len(rest) != 0 {
		t.Errorf("server sent %d bytes to a client that failed to prove", len(rest))
	}
}

// TestServerRejectsServerRoleProof hands the server a proof made with the
// secret over the right transcript, but in the server's role, as an oracle
// that reflected the server's own proof would provide.
func TestServerRejectsServerRoleProof(t *testing.T) {
	rest, err := attack(t, validHello(typeClientHello, 1, testHello("a", 7)), func(m1, m2 []byte) []byte {
		k, err := deriveKeys(testSecret, m1[6:6+nonceSize], m2[6:6+nonceSize], m1, m2)
		if err != nil {
			t.Fatal(err)
		}
		return k.serverProof(statusOK)
	})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("server error %v, want ErrAuth", err)
	}
	if len(rest) != 0 {
		t.Errorf("server sent %d bytes to a client that failed to prove", len(rest))
	}
}

// TestServerRejectsReplayedProof records a genuine client's hello and proof
// and plays them to the server on a new connection.
func TestServerRejectsReplayedProof(t *testing.T) {
	cconn, sconn := net.Pipe()
	tap := &tapConn{Conn: cconn}
	_, _, cerr, serr := handshakePair(t, tap, sconn, clientSide(), serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	rec := tap.take()
	m1, proof := rec[:helloFixed+1], rec[helloFixed+1:]
	if len(proof) != proofSize {
		t.Fatalf("recorded %d bytes of proof", len(proof))
	}
	rest, err := attack(t, m1, func(_, _ []byte) []byte { return proof })
	if !errors.Is(err, ErrAuth) {
		t.Errorf("server error %v, want ErrAuth", err)
	}
	if len(rest) != 0 {
		t.Errorf("server sent %d bytes to a replayed proof", len(rest))
	}
}

func TestHandshakeDeadline(t *testing.T) {
	cconn, raw := net.Pipe()
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// Nobody reads raw, so the client's first write blocks until the
	// deadline.
	_, err := Client(ctx, cconn, testSecret, testHello("a", 7), "b")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if _, err := raw.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("conn not closed after a failed handshake: %v", err)
	}
}

func TestHandshakeCancel(t *testing.T) {
	raw, sconn := net.Pipe()
	defer raw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Server(ctx, sconn, testSecret, testHello("b", 7), nil)
		errc <- err
	}()
	// The server waits for a hello that never comes; only cancel frees it.
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestHandshakeClearsDeadline(t *testing.T) {
	cconn, sconn := net.Pipe()
	dc := &deadlineConn{Conn: cconn}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	type result struct {
		s   *Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The server's session stays open until the client is done: a
		// closed net.Pipe would fail the client's own SetDeadline.
		s, err := Server(ctx, sconn, testSecret, testHello("b", 7), nil)
		done <- result{s, err}
	}()
	cs, err := Client(ctx, dc, testSecret, testHello("a", 7), "b")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.deadlines) != 2 || !dc.deadlines[0].Equal(want) || !dc.deadlines[1].IsZero() {
		t.Errorf("deadlines set %v, want [%v, zero]", dc.deadlines, want)
	}
}
