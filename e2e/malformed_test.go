package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// Peer frame kinds, as node/wire.go defines them. They are repeated here
// because the e2e tests see the daemon only from outside.
const (
	frameMessage = 1
	framePing    = 2
	framePong    = 3
)

// TestMalformedPeerInput throws bad bytes at the master's peer port: garbage
// from a stranger, well-authenticated sessions carrying frames that are not
// clustd messages, an oversized frame, a replayed frame and a replayed
// handshake. After each, the master must still run, answer /v1/status, be
// master in the same term, and count what it dropped in /metrics.
//
// Only a and b run; the test authenticates as member c, which it never
// starts, using c's own configuration file for the secret and the cluster
// hash.
func TestMalformedPeerInput(t *testing.T) {
	t.Parallel()
	// The default profile: the check is that the role does not change,
	// which a loaded machine could break with fast timing alone.
	c := newCluster(t, 3, profileDefault)
	const fake = 2
	c.start(0)
	c.start(1)
	m, st, _ := c.waitMaster(10*time.Second, 0, 1)
	cfg, err := config.Load(c.cfgPath[fake])
	if err != nil {
		t.Fatal(err)
	}
	self := transport.Hello{Node: c.ids[fake], ClusterHash: cfg.MembersHash()}
	addr := c.peerAddr[m]

	// counters reads what the master counted as dropped or refused.
	type counters struct{ dropped, auth float64 }
	read := func() counters {
		return counters{
			dropped: c.mustMetric(m, "clustd_frames_dropped_total"),
			auth:    c.mustMetric(m, "clustd_auth_failures_total"),
		}
	}
	// step runs one kind of abuse, then checks that the master is unharmed
	// and that its counters grew as expected.
	step := func(name string, wantDropped, wantAuth float64, abuse func()) {
		t.Helper()
		before := read()
		abuse()
		var after counters
		c.waitFor(10*time.Second, name+": the master to count it", func() bool {
			after = read()
			return after.dropped >= before.dropped+wantDropped && after.auth >= before.auth+wantAuth
		})
		if !c.running(m) {
			t.Fatalf("%s: the master exited: %v", name, c.proc(m).State())
		}
		s, err := c.status(m)
		if err != nil {
			t.Fatalf("%s: the master no longer answers /v1/status: %v", name, err)
		}
		if s.Role != "master" || s.Term != st.Term || s.Master != c.ids[m] {
			t.Fatalf("%s: the master now reports role %s, term %d, master %q; want master %s in term %d",
				name, s.Role, s.Term, s.Master, c.ids[m], st.Term)
		}
		t.Logf("%s: frames dropped %v -> %v, auth failures %v -> %v; %s still master in term %d",
			name, before.dropped, after.dropped, before.auth, after.auth, c.ids[m], s.Term)
	}

	step("garbage from a stranger", 1, 0, func() {
		junk := make([]byte, 512)
		rand.Read(junk)
		copy(junk, "GET / HTTP/1.1\r\n")
		if got := sendRaw(t, addr, junk); len(got) != 0 {
			t.Errorf("the master answered a stranger's garbage with %d bytes; it should send nothing", len(got))
		}
	})

	step("a stranger hanging up mid-hello", 1, 0, func() {
		if got := sendRaw(t, addr, []byte("clsd\x01\x01")); len(got) != 0 {
			t.Errorf("the master answered a truncated hello with %d bytes; it should send nothing", len(got))
		}
	})

	// Frames that authenticate but are not clustd messages. Each one is
	// dropped on its own; the session may stay up.
	junkFrames := [][]byte{
		append([]byte{0xee}, randomBytes(100)...),                   // unknown kind
		append([]byte{frameMessage}, randomBytes(40)...),            // a message that does not decode
		{frameMessage, 0xff, 0xff, 0xff},                            // a message cut short
		append([]byte{framePing}, 1, 2, 3),                          // a ping of 3 bytes, not 8
		append([]byte{framePong}, bytes.Repeat([]byte{0x7f}, 8)...), // a pong from the far future
		{}, // an empty frame
	}
	step("authenticated junk frames", float64(len(junkFrames)), 0, func() {
		s, _ := dialAs(t, addr, cfg.Secret, self, c.ids[m])
		defer s.Close()
		for _, f := range junkFrames {
			if err := s.Send(f); err != nil {
				t.Fatalf("sending a junk frame: %v", err)
			}
		}
	})

	step("an oversized frame", 1, 0, func() {
		s, raw := dialAs(t, addr, cfg.Secret, self, c.ids[m])
		defer s.Close()
		// A length prefix far beyond transport.MaxFrame, written under the
		// session's feet: Send itself refuses to seal such a frame.
		hdr := binary.BigEndian.AppendUint32(nil, 1<<31-1)
		if _, err := raw.Conn.Write(append(hdr, randomBytes(64)...)); err != nil {
			t.Fatal(err)
		}
		expectHangUp(t, raw.Conn, "an oversized frame")
	})

	step("a replayed frame", 1, 0, func() {
		s, raw := dialAs(t, addr, cfg.Secret, self, c.ids[m])
		defer s.Close()
		// A valid ping, so that the first copy is accepted and only the
		// replay is at fault.
		raw.record()
		if err := s.Send(binary.BigEndian.AppendUint64([]byte{framePing}, 1)); err != nil {
			t.Fatal(err)
		}
		frame := raw.recorded()
		if _, err := raw.Conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		expectHangUp(t, raw.Conn, "a replayed frame")
	})

	step("a replayed handshake", 0, 1, func() {
		s, raw := dialAs(t, addr, cfg.Secret, self, c.ids[m])
		s.Close()
		// Everything the genuine client sent: its hello and its proof. The
		// proof was bound to the server's nonce of that connection, so on
		// a new one it must fail, and the server must answer nothing after
		// its own hello.
		replay := raw.all()
		got := sendRaw(t, addr, replay)
		if helloLen := 4 + 1 + 1 + 32 + 32 + transport.InstanceSize + 1 + len(c.ids[m]); len(got) != helloLen {
			t.Errorf("the master sent %d bytes to a replayed handshake; want its %d-byte hello and nothing more", len(got), helloLen)
		}
	})

	// The other member was not the target, but it must not have noticed
	// anything either.
	other := c.others(m, fake)[0]
	if s, err := c.status(other); err != nil || s.Master != c.ids[m] || s.Term != st.Term {
		t.Errorf("node %s: %+v, %v; want master %s in term %d", c.ids[other], briefStatus(s), err, c.ids[m], st.Term)
	}
	t.Logf("master %s: frames dropped by reason: %s", c.ids[m], dropReasons(t, c, m))
}

// sendRaw connects to addr, writes b, shuts its own sending side so that the
// daemon sees the end of the input at once instead of waiting for its
// handshake timeout, and returns everything the daemon sends back before it
// closes the connection.
func sendRaw(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(b); err != nil && !isReset(err) {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil && !isReset(err) {
		t.Fatalf("reading the answer to %d raw bytes: %v", len(b), err)
	}
	return got
}

// isReset reports a connection that the daemon closed while our bytes were
// still unread, which Linux signals as a reset (or a broken pipe on the next
// write): an expected way for the daemon to hang up on bad input.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectHangUp waits for the daemon to close conn, as it must after a frame
// that breaks the session.
func expectHangUp(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("the master kept the session open for 10 s after %s", what)
	case err != nil && !isReset(err):
		t.Errorf("after %s: %v", what, err)
	}
}

// dialAs opens an authenticated session to addr as the member self
// describes, and returns it with the recording connection beneath it.
func dialAs(t *testing.T, addr string, secret []byte, self transport.Hello, peer string) (*transport.Session, *recordingConn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := &recordingConn{Conn: conn}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := transport.Client(ctx, raw, secret, self, peer)
	if err != nil {
		t.Fatalf("authenticating as %s: %v", self.Node, err)
	}
	return s, raw
}

// recordingConn keeps a copy of everything written through it, so that a
// test can replay exactly what the transport sent.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []byte
	mark   int
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, b...)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// record marks the start of what recorded returns.
func (r *recordingConn) record() {
	r.mu.Lock()
	r.mark = len(r.writes)
	r.mu.Unlock()
}

// recorded returns what was written since record.
func (r *recordingConn) recorded() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.writes[r.mark:])
}

// all returns everything written.
func (r *recordingConn) all() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.writes)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// briefStatus is the part of a status worth printing in a failure.
func briefStatus(s api.Status) string {
	return fmt.Sprintf("node %s role %s term %d master %q lease_ms %d", s.Node, s.Role, s.Term, s.Master, s.LeaseMS)
}

// dropReasons lists node i's non-zero drop counters, for the test log.
func dropReasons(t *testing.T, c *testCluster, i int) string {
	t.Helper()
	var out []string
	for _, r := range []string{"malformed", "oversized", "replayed", "unauthenticated", "unknown_peer", "cluster_mismatch", "decode", "other"} {
		if v, err := c.metric(i, "clustd_frames_dropped_total", "reason="+r); err == nil && v > 0 {
			out = append(out, fmt.Sprintf("%s=%v", r, v))
		}
	}
	return fmt.Sprint(out, " auth_failures=", c.mustMetric(i, "clustd_auth_failures_total"))
}

// TestForgedPongKeepsRTTSane sends the master, from an authenticated
// member, a pong echoing a timestamp it never sent: the most negative one
// the 8 bytes can hold. The daemon checks that an echoed stamp is neither
// in its future nor before its clock began, nor implausibly old, rather
// than report a negative or absurd round trip (as it once did: only a
// holder of the cluster secret could cause it, but status and metrics
// showed an RTT of about -9.2e12 ms).
func TestForgedPongKeepsRTTSane(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	const fake = 2
	c.start(0)
	c.start(1)
	m, _, _ := c.waitMaster(10*time.Second, 0, 1)
	cfg, err := config.Load(c.cfgPath[fake])
	if err != nil {
		t.Fatal(err)
	}
	s, _ := dialAs(t, c.peerAddr[m], cfg.Secret, transport.Hello{Node: c.ids[fake], ClusterHash: cfg.MembersHash()}, c.ids[m])
	defer s.Close()
	if err := s.Send(binary.BigEndian.AppendUint64([]byte{framePong}, 1<<63)); err != nil {
		t.Fatal(err)
	}
	// The pong is handled once the master has heard from the fake member.
	var rtt float64
	c.waitFor(10*time.Second, "the master to handle the pong", func() bool {
		st, err := c.status(m)
		if err != nil {
			return false
		}
		for _, ms := range st.Members {
			if ms.ID == c.ids[fake] && ms.LastSeenMS >= 0 {
				rtt = ms.RTTMS
				return true
			}
		}
		return false
	})
	// The series appears only once a round trip was measured: a dropped
	// pong leaves none.
	metric, err := c.metric(m, "clustd_peer_rtt_seconds", "peer="+c.ids[fake])
	if err != nil {
		metric = 0
	}
	t.Logf("after the forged pong: rtt_ms %v, clustd_peer_rtt_seconds %v", rtt, metric)
	if rtt < 0 || metric < 0 {
		t.Errorf("a forged pong made the master report a negative round trip to %s: rtt_ms %v, clustd_peer_rtt_seconds %v",
			c.ids[fake], rtt, metric)
	}
}
