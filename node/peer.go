package node

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clustd/clustd/node/metrics"
	"github.com/clustd/clustd/node/transport"
)

// peer is another member: the queue of frames for it, and what we know of
// its reachability. Each daemon dials every peer and sends on that
// connection only; it receives on the connections the peers dial to it. Two
// one-way streams per pair need no rule for who keeps which connection.
type peer struct {
	id, addr string
	// out queues frames for the writer goroutine; a nil frame asks it to
	// finish what a TrySend left owed.
	out chan []byte
	// kick cuts a reconnect backoff short: the peer just connected to us,
	// so it is up again.
	kick  chan struct{}
	count metrics.PeerCounters
	// sess is the outbound session while it is up, for send to write to
	// directly; lastSent is when a frame last went out on it
	// (Monotonic).
	sess     atomic.Pointer[transport.Session]
	lastSent atomic.Int64

	// dupRefusals counts the peer's consecutive refusals of our sessions
	// as a duplicate; only the dial loop touches it.
	dupRefusals int

	mu        sync.Mutex
	connected bool // our outbound session is up
	inbound   int  // sessions the peer opened to us
	ins       map[*inboundSess]struct{}
	// refusedInst is the last instance refused as a duplicate, first
	// refused at refusedSince (monotonic).
	refusedInst  [transport.InstanceSize]byte
	refusedSince time.Duration
	lastSeen     time.Duration // monotonic; 0 never
	rtt          time.Duration
}

// outQueue bounds what waits for a slow or unreachable peer. Election
// messages are small and stale ones are worthless, so dropping is better
// than blocking the core.
const outQueue = 256

func (p *peer) enqueue(frame []byte) bool {
	select {
	case p.out <- frame:
		return true
	default:
		return false
	}
}

// send writes frame to the peer's session at once when it can do so
// without blocking, and otherwise queues a copy for the writer goroutine.
// The direct write saves waking that goroutine for every frame; frames
// still leave in order unless the writer is between taking a frame from
// the queue and writing it, and the election tolerates reordering.
func (p *peer) send(frame []byte) bool {
	if s := p.sess.Load(); s != nil && len(p.out) == 0 {
		res, err := s.TrySend(frame)
		switch {
		case err != nil:
			// The session is broken: wake the writer, whose next
			// write fails too and reconnects.
			p.enqueue(nil)
			return true
		case res == transport.Sent:
			p.sent()
			return true
		case res == transport.Owed:
			p.sent()
			p.enqueue(nil)
			return true
		}
	}
	return p.enqueue(bytes.Clone(frame))
}

func (p *peer) sent() {
	p.lastSent.Store(int64(Monotonic()))
	p.count.Sent()
}

func (p *peer) seen(now time.Duration) {
	p.mu.Lock()
	p.lastSeen = now
	p.mu.Unlock()
}

// burstLog logs a repeating failure once per burst: the first failure is
// logged, then nothing while failures keep coming less than quiet apart.
// It remembers at most maxBurstKeys keys: when full, keys whose burst is
// over are forgotten, and if none is, a new key counts as within a burst
// (not logged) until room is made, so a flood from many sources can
// neither grow the map nor the log without bound.
type burstLog struct {
	mu    sync.Mutex
	last  map[string]time.Duration
	quiet time.Duration
}

func (b *burstLog) first(key string, now time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last = map[string]time.Duration{}
	}
	prev, ok := b.last[key]
	if !ok && len(b.last) >= maxBurstKeys {
		for k, t := range b.last {
			if now-t > b.quiet {
				delete(b.last, k)
			}
		}
		if len(b.last) >= maxBurstKeys {
			return false
		}
	}
	b.last[key] = now
	return !ok || now-prev > b.quiet
}

func (b *burstLog) reset(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, was := b.last[key]
	delete(b.last, key)
	return was
}

// dialLoop keeps an outbound session to p for as long as ctx lives, with
// capped exponential backoff and jitter between attempts.
func (d *Daemon) dialLoop(ctx context.Context, p *peer) {
	defer d.wg.Done()
	// Capped at the election timeout: a peer that restarts must hear from
	// the master before it gives up on it and asks for votes.
	bo := transport.NewBackoff(20*time.Millisecond, max(d.cfg.Timing.ElectionMin, 100*time.Millisecond), rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	for ctx.Err() == nil {
		sess, err := d.dial(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.dialFailed(p, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(bo.Next()):
			case <-p.kick:
			}
			continue
		}
		bo.Reset()
		p.dupRefusals = 0
		for _, kind := range []string{"mismatch", "auth", "connect", "duplicate"} {
			d.failLog.reset("dial/" + kind + "/" + p.id)
		}
		d.log.Info("connected to peer", "peer", p.id, "addr", p.addr)
		p.mu.Lock()
		p.connected = true
		p.mu.Unlock()
		d.metrics.SetPeerReachable(p.id, true)
		p.sess.Store(sess)
		d.rec.connected(p)
		err = d.writeLoop(ctx, p, sess)
		p.sess.Store(nil)
		sess.Close()
		p.mu.Lock()
		p.connected = false
		p.mu.Unlock()
		d.metrics.SetPeerReachable(p.id, false)
		if ctx.Err() == nil {
			d.log.Debug("peer connection lost", "peer", p.id, "err", err)
		}
	}
}

func (d *Daemon) dial(ctx context.Context, p *peer) (*transport.Session, error) {
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout())
	defer cancel()
	ut := userTimeout(d.cfg.Timing.ElectionMin)
	dialer := net.Dialer{
		// A SYN lost in a partition is retried by the kernel only after a
		// second, then three: better a fresh attempt soon after the heal.
		Timeout: max(d.cfg.Timing.ElectionMin, 200*time.Millisecond),
		Control: func(_, _ string, c syscall.RawConn) error { return setUserTimeout(c, ut) },
	}
	conn, err := dialer.DialContext(hctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	hello := d.currentHello()
	sess, err := transport.Client(hctx, conn, d.cfg.Secret, hello, p.id)
	if errors.Is(err, transport.ErrHelloRefused) {
		// An older daemon (handshake version 1) hangs up on ours: speak
		// its version, which carries no instance id.
		if conn, err = dialer.DialContext(hctx, "tcp", p.addr); err != nil {
			return nil, err
		}
		hello.Version = transport.V1
		if sess, err = transport.Client(hctx, conn, d.cfg.Secret, hello, p.id); err == nil && d.failLog.first("dial/v1/"+p.id, Monotonic()) {
			d.log.Warn("peer speaks only handshake version 1 (an older clustd): a second daemon claiming its id cannot be detected until it is upgraded", "peer", p.id, "addr", p.addr)
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	sess.SetWriteTimeout(d.cfg.Timing.ElectionMin)
	return sess, nil
}

func (d *Daemon) handshakeTimeout() time.Duration {
	return max(2*time.Second, 2*d.cfg.Timing.ElectionMax)
}

// dialFailed logs a failed attempt once per burst of failures.
func (d *Daemon) dialFailed(p *peer, err error) {
	var mismatch *transport.ClusterMismatchError
	if !isDuplicate(err) {
		p.dupRefusals = 0
	}
	switch {
	case isDuplicate(err):
		d.dialRefusedDuplicate(p, err)
	case errors.As(err, &mismatch):
		d.metrics.FrameDropped("cluster_mismatch")
		if d.failLog.first("dial/mismatch/"+p.id, Monotonic()) {
			d.log.Error("refusing peer: its member list or timing differs from ours; make both configuration files list the same members and timing",
				"peer", p.id, "addr", p.addr)
		}
	case errors.Is(err, transport.ErrAuth), errors.Is(err, transport.ErrPeerClosed):
		d.metrics.AuthFailure()
		if d.failLog.first("dial/auth/"+p.id, Monotonic()) {
			d.log.Warn("peer refused our handshake: do both nodes use the same secret?", "peer", p.id, "addr", p.addr, "err", err)
		}
	default:
		if d.failLog.first("dial/connect/"+p.id, Monotonic()) {
			d.log.Warn("cannot connect to peer (retrying with backoff)", "peer", p.id, "addr", p.addr, "err", err)
		}
	}
}

// writeLoop sends p's queued frames until the session fails or ctx ends.
func (d *Daemon) writeLoop(ctx context.Context, p *peer, sess *transport.Session) error {
	for {
		var frame []byte
		select {
		case <-ctx.Done():
			return ctx.Err()
		case frame = <-p.out:
		}
		if frame == nil {
			if err := sess.Flush(); err != nil {
				return err
			}
			continue
		}
		if err := sess.Send(frame); err != nil {
			return err
		}
		p.sent()
	}
}

// reachable reports whether peer p counts as reachable at now: a session
// to it is up and it was heard from within the election timeout. The
// status, the drivers' member list and their member_lost and member_back
// events all ask here, so they agree. Called with p.mu held.
func (d *Daemon) reachable(p *peer, now time.Duration) bool {
	return p.connected && p.lastSeen > 0 && now-p.lastSeen < d.cfg.Timing.ElectionMin
}

// linkEvery is how often checkLinks runs: several times per election
// timeout, the window for "reachable".
func (d *Daemon) linkEvery() time.Duration { return d.cfg.Timing.ElectionMin / 3 }

// rttEvery is how often a busy link is pinged to measure its round trip.
const rttEvery = 5 * time.Second

// checkLinks pings the links that carry nothing else: followers exchange
// nothing but pings. Where heartbeats and their answers flow, those
// suffice, and a ping goes only every rttEvery to measure the round trip.
// It also updates who is reachable for the drivers. It runs on the inputs
// that happen anyway (see acted), so it adds no wake-up of its own to an
// idle daemon. Called with d.mu held.
func (d *Daemon) checkLinks(now time.Duration) {
	idle := d.linkEvery() * 3 / 4
	for i, p := range d.order {
		if p.sess.Load() == nil {
			continue
		}
		if now-time.Duration(p.lastSent.Load()) < idle && now-d.lastPing[i] < rttEvery {
			continue
		}
		d.lastPing[i] = now
		p.send(encodePing(nil, framePing, now))
	}
	d.hub.checkMembers(now)
}

// serve accepts peers' sessions until the listener closes. A failed
// accept (out of descriptors) is retried with backoff: the node must keep
// hearing its peers once the flood that caused it is over.
func (d *Daemon) serve(ctx context.Context, ln net.Listener) {
	defer d.wg.Done()
	acceptLoop(ctx.Done(), ln, func(err error) {
		d.metrics.AcceptError(metrics.ListenerPeer)
		if d.failLog.first("accept/listener", Monotonic()) {
			d.log.Error("peer listener cannot accept; retrying with backoff", "err", err)
		}
	}, func(conn net.Conn) {
		d.wg.Add(1)
		go d.serveConn(ctx, conn)
	})
}

func (d *Daemon) serveConn(ctx context.Context, conn net.Conn) {
	defer d.wg.Done()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	// Until it proves the secret the connection holds one of a bounded
	// number of handshake places; admitting it may shed the oldest.
	slot, shed := d.handshakes.admit(conn, nil)
	if shed > 0 {
		d.metrics.ConnectionsShed(metrics.ListenerPeer, shed)
		if d.failLog.first("accept/shed/"+sourceOf(conn.RemoteAddr()), Monotonic()) {
			d.log.Warn("too many unauthenticated peer connections; closing the oldest",
				"remote", conn.RemoteAddr().String(), "limit", maxHandshakes, "per_source", maxHandshakesPerSource)
		}
	}
	tuneAccepted(conn, userTimeout(d.cfg.Timing.ElectionMin))
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout())
	remote := conn.RemoteAddr().String()
	sess, err := transport.ServerAdmit(hctx, conn, d.cfg.Secret, d.currentHello(), d.admitPeer(remote))
	cancel()
	d.handshakes.release(slot)
	if err != nil {
		d.acceptFailed(conn.RemoteAddr(), err)
		return
	}
	if sess.Peer().Node == ProbeNode {
		d.serveProbe(sess) // clustd check --peers (probe.go)
		return
	}
	p := d.peers[sess.Peer().Node]
	in := &inboundSess{inst: sess.Peer().Instance, addr: remote, conn: conn}
	p.admitted(in)
	defer p.closed(in)
	p.mu.Lock()
	p.inbound++
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	defer func() {
		p.mu.Lock()
		p.inbound--
		p.mu.Unlock()
	}()
	for {
		frame, err := sess.Recv()
		if err != nil {
			if errors.Is(err, transport.ErrBadFrame) || errors.Is(err, transport.ErrFrameTooLarge) {
				reason := "malformed"
				if errors.Is(err, transport.ErrFrameTooLarge) {
					reason = "oversized"
				}
				d.metrics.FrameDropped(reason)
				if d.failLog.first("frame/"+p.id, Monotonic()) {
					d.log.Warn("dropped a bad frame from peer and closed the connection", "peer", p.id, "err", err)
				}
			}
			return
		}
		d.handleFrame(p, frame)
	}
}

func (d *Daemon) acceptFailed(addr net.Addr, err error) {
	host := addr.String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	var mismatch *transport.ClusterMismatchError
	switch {
	case isDuplicate(err):
		// Logged and counted by admitPeer, which knows both addresses.
	case errors.As(err, &mismatch):
		d.metrics.FrameDropped("cluster_mismatch")
		if d.failLog.first("accept/mismatch/"+mismatch.Peer+"/"+host, Monotonic()) {
			d.log.Error("refusing peer: its member list or timing differs from ours; make both configuration files list the same members and timing",
				"peer", mismatch.Peer, "remote", addr.String())
		}
	case errors.Is(err, transport.ErrAuth):
		d.metrics.AuthFailure()
		if d.failLog.first("accept/auth/"+host, Monotonic()) {
			d.log.Warn("connection failed authentication: wrong secret, or not a clustd peer", "remote", addr.String())
		}
	case errors.Is(err, transport.ErrUnknownPeer):
		d.metrics.FrameDropped("unknown_peer")
		if d.failLog.first("accept/unknown/"+host, Monotonic()) {
			d.log.Warn("connection from a node that is not a member", "remote", addr.String(), "err", err)
		}
	default:
		d.metrics.FrameDropped("unauthenticated")
		if d.failLog.first("accept/handshake/"+host, Monotonic()) {
			d.log.Warn("peer handshake failed", "remote", addr.String(), "err", err)
		}
	}
}

// handleFrame acts on one authenticated frame from p.
func (d *Daemon) handleFrame(p *peer, frame []byte) {
	now := Monotonic()
	p.seen(now)
	p.count.Received()
	if len(frame) == 0 {
		d.dropFrame(p, "decode", errFrame)
		return
	}
	switch frame[0] {
	case frameMessage:
		m, err := decodeMessage(frame[1:])
		if err != nil {
			d.dropFrame(p, "decode", err)
			return
		}
		if m.From != p.id || m.To != d.cfg.ID {
			d.dropFrame(p, "decode", errors.New("message names the wrong sender or receiver"))
			return
		}
		// A stopped daemon takes no more input; the frame goes with it.
		_ = d.input(func(now time.Duration) {
			d.core.Step(now, m)
			d.rec.heard(m.From, m.Term, now)
		})
	case framePing:
		if _, err := decodePing(frame[1:]); err != nil {
			d.dropFrame(p, "decode", err)
			return
		}
		frame[0] = framePong // the frame is ours: answer in place
		p.send(frame)
	case framePong:
		// Our own stamp comes back: it cannot be in the future, nor older
		// than a ping could have waited in a queue.
		stamp, err := decodePing(frame[1:])
		if err != nil || stamp > now || stamp <= 0 || now-stamp > time.Minute {
			d.dropFrame(p, "decode", errFrame)
			return
		}
		p.mu.Lock()
		p.rtt = now - stamp
		p.mu.Unlock()
		d.metrics.SetPeerRTT(p.id, (now - stamp).Seconds())
	case frameFailover, frameFailoverSync, frameStepDown:
		d.rec.handleFrame(p, frame)
	default:
		d.dropFrame(p, "decode", errors.New("unknown frame kind"))
	}
}

func (d *Daemon) dropFrame(p *peer, reason string, err error) {
	d.metrics.FrameDropped(reason)
	if d.failLog.first("frame/"+p.id, Monotonic()) {
		d.log.Warn("dropped a frame from peer", "peer", p.id, "reason", reason, "err", err)
	}
}
