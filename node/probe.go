package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// ProbeNode is the node id `clustd check --peers` authenticates with. It
// holds a character no member id may, so it can never be mistaken for a
// member: a daemon gives it a session of its own that answers probes and
// nothing else, never one that joins the election.
const ProbeNode = "check!"

// frameProbe answers a ping on a probe session: the ping's 8 bytes, then 8
// bytes of the answering daemon's monotonic clock.
const frameProbe byte = 4

// Limits of one probe session, which holds a goroutine on the daemon.
const (
	probeMaxTime   = 30 * time.Second
	probeMaxFrames = 256
)

// serveProbe answers the pings of a probe session with the daemon's
// clock, so that the prober can measure the round trip and compare clock
// rates. It reads nothing else and touches no election state.
func (d *Daemon) serveProbe(sess *transport.Session) {
	t := time.AfterFunc(probeMaxTime, func() { sess.Close() })
	defer t.Stop()
	for range probeMaxFrames {
		frame, err := sess.Recv()
		if err != nil {
			return
		}
		if len(frame) != 9 || frame[0] != framePing {
			return
		}
		reply := make([]byte, 0, 17)
		reply = append(reply, frameProbe)
		reply = append(reply, frame[1:]...)
		reply = binary.BigEndian.AppendUint64(reply, uint64(Monotonic()))
		if sess.Send(reply) != nil {
			return
		}
	}
}

// ProbeResult is what a probe learned of one member.
type ProbeResult struct {
	// ID and Address name the member probed.
	ID, Address string
	// Reachable: a TCP connection was made.
	Reachable bool
	// Authenticated: the member proved the cluster secret.
	Authenticated bool
	// SameConfig: its member list and timing hash equal ours.
	SameConfig bool
	// Probed: it answered probes; false for a daemon too old to.
	Probed bool
	// RTT is the shortest round trip measured.
	RTT time.Duration
	// ClockRate is the member's clock rate relative to ours (1 is equal),
	// and ClockRateError bounds the measurement's own error; both 0 when
	// not measured.
	ClockRate, ClockRateError float64
	// Err says what went wrong, in words for the operator.
	Err string
}

// Probe connects to member m as ProbeNode, completes the authenticated
// handshake, and sends pings spread over span to measure the round trip and
// the member's clock rate. It never joins the election.
func Probe(ctx context.Context, cfg *config.Config, m config.Member, span time.Duration, pings int) ProbeResult {
	r := ProbeResult{ID: m.ID, Address: m.Address}
	timeout := max(2*time.Second, 2*cfg.Timing.ElectionMax)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(hctx, "tcp", m.Address)
	if err != nil {
		r.Err = "cannot connect: " + err.Error()
		return r
	}
	r.Reachable = true
	sess, err := transport.Client(hctx, conn, cfg.Secret, transport.Hello{Node: ProbeNode, ClusterHash: cfg.MembersHash()}, m.ID)
	if err != nil {
		conn.Close()
		r.Authenticated, r.Err = handshakeProblem(err)
		return r
	}
	defer sess.Close()
	r.Authenticated, r.SameConfig = true, true
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()

	samples, rtt, problem := pingMember(ctx, sess, span, pings, timeout)
	r.RTT = rtt
	if problem != "" {
		r.Err = problem
		return r
	}
	r.Probed = true
	first, last := samples[0], samples[len(samples)-1]
	local := float64((last.sent+last.got)/2 - (first.sent+first.got)/2)
	if local > 0 {
		// The remote stamp was taken somewhere within each round trip:
		// half of each one bounds the error at either end.
		r.ClockRate = float64(last.remote-first.remote) / local
		r.ClockRateError = float64((first.got-first.sent)/2+(last.got-last.sent)/2) / local
	}
	return r
}

// handshakeProblem says, in words for the operator, why the handshake
// with a member failed, and whether the member proved the secret anyway.
func handshakeProblem(err error) (authenticated bool, problem string) {
	var mismatch *transport.ClusterMismatchError
	switch {
	case errors.As(err, &mismatch):
		return true, "its member list or timing differs from this configuration's"
	case errors.Is(err, transport.ErrAuth), errors.Is(err, transport.ErrPeerClosed):
		return false, "authentication failed: it does not have this configuration's secret"
	case errors.Is(err, transport.ErrUnknownPeer) && strings.Contains(err.Error(), "does not allow"):
		// The member proved the secret and its hash was not refused
		// first, but it does not know the probe: an older clustd.
		return true, "authenticated, but it is a clustd too old to answer probes; the configuration hash was not compared"
	case errors.Is(err, transport.ErrUnknownPeer):
		return false, "another node answers at this address: " + err.Error()
	}
	return false, "handshake failed: " + err.Error()
}

// probeSample is one answered ping: when it left and when its answer came,
// by our clock, and the member's clock in the answer.
type probeSample struct{ sent, got, remote time.Duration }

// pingMember sends at least two pings spread over span, each to be
// answered within timeout, and returns their samples and the shortest round
// trip, or what went wrong in words for the operator (with the shortest
// round trip of the pings answered before).
func pingMember(ctx context.Context, sess *transport.Session, span time.Duration, pings int, timeout time.Duration) (samples []probeSample, rtt time.Duration, problem string) {
	pings = max(pings, 2)
	gap := span / time.Duration(pings-1)
	for i := range pings {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, rtt, "interrupted"
			case <-time.After(gap):
			}
		}
		sent := Monotonic()
		sess.SetWriteTimeout(timeout)
		if err := sess.Send(encodePing(nil, framePing, sent)); err != nil {
			return nil, rtt, "probe failed: " + err.Error()
		}
		deadline := time.AfterFunc(timeout, func() { sess.Close() })
		frame, err := sess.Recv()
		deadline.Stop()
		got := Monotonic()
		if err != nil || len(frame) != 17 || frame[0] != frameProbe || time.Duration(binary.BigEndian.Uint64(frame[1:9])) != sent {
			problem = fmt.Sprintf("no valid answer to probe %d", i+1)
			if err != nil {
				problem += ": " + err.Error()
			}
			return nil, rtt, problem
		}
		samples = append(samples, probeSample{sent, got, time.Duration(binary.BigEndian.Uint64(frame[9:]))})
		if d := got - sent; rtt == 0 || d < rtt {
			rtt = d
		}
	}
	return samples, rtt, ""
}

// ClockRateOK reports whether a measured clock rate is within the drift
// bound, giving the measurement the benefit of its own error.
func (r ProbeResult) ClockRateOK(drift float64) bool {
	if !r.Probed || r.ClockRate == 0 {
		return true
	}
	return math.Abs(r.ClockRate-1)-r.ClockRateError <= 2*drift
}
