package driverclient

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
)

// far is a lease deadline no test reaches.
const far = time.Hour

func TestHandshake(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, func(o *Options) {
		o.Required = true
		o.OnEvent = func(driverproto.Event) {}
	})
	dc := h.conn()
	if dc.hello.ID != h.c.ID() || dc.hello.Name != "test" || !dc.hello.Required || !dc.hello.Events {
		t.Fatalf("hello %+v does not match the options (id %s)", dc.hello, h.c.ID())
	}
	if !strings.HasPrefix(h.c.ID(), "test-") || len(h.c.ID()) != len("test-")+8 {
		t.Errorf("id %q: want test- and 8 hex digits", h.c.ID())
	}

	dc.state(1, followerState(3, "n2"))
	call := g.next(t)
	if call.st.IsMaster || call.st.Term != 3 || call.st.Master != "n2" || call.st.Local {
		t.Errorf("Trigger got %+v, want the follower state of term 3", call.st)
	}
	call.finish(nil)
	dc.ackOK(1)
}

func TestDaemonRefusesWrongSecret(t *testing.T) {
	d := newFakeDaemon(t)
	d.secret = bytes.Repeat([]byte("other"), 8)
	g := newGate()
	h := start(t, d, g, nil)
	// It keeps trying, with backoff, and is refused each time.
	for range 3 {
		recv(t, d.refused, "a refused hello")
	}
	h.stop()
	select {
	case c := <-g.calls:
		t.Fatalf("Trigger called with %+v", c.st)
	default:
	}
	if !strings.Contains(h.logs.String(), "wrong secret") {
		t.Errorf("the daemon's error text is not in the logs:\n%s", h.logs)
	}
}

// An impostor that does not know the secret accepts any hello and sends a
// master state: the driver must refuse it at the welcome.
func TestImpostorDaemonIsNotTrusted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeDaemon)
	}{
		{"wrong secret", func(d *fakeDaemon) {
			d.secret = bytes.Repeat([]byte("other"), 8)
			d.checkHello = false
		}},
		{"bad welcome MAC", func(d *fakeDaemon) { d.badWelcome = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			tc.setup(d)
			g := newGate()
			h := start(t, d, g, nil)
			for range 3 {
				dc := h.conn()
				// Whatever it says next is never acted on: the driver
				// has already hung up on it.
				_ = writeJSON(dc.ws, driverproto.Message{Type: driverproto.TypeState, Seq: 1, State: new(masterState(1, 200*time.Second))})
				dc.closed()
				if dc.closeCode != websocket.ClosePolicyViolation {
					t.Errorf("close code %d, want %d (policy violation)", dc.closeCode, websocket.ClosePolicyViolation)
				}
			}
			h.stop()
			select {
			case c := <-g.calls:
				t.Fatalf("Trigger called with %+v", c.st)
			default:
			}
			if !strings.Contains(h.logs.String(), "does not prove it knows the secret") {
				t.Errorf("the refusal is not in the logs:\n%s", h.logs)
			}
		})
	}
}

func TestDaemonErrorIsLogged(t *testing.T) {
	d := newFakeDaemon(t)
	h := start(t, d, newGate(), nil)
	dc := h.conn()
	dc.raw(`{"type":"error","error":"duplicate id test-00000000"}`)
	h.conn() // it reconnects
	if !strings.Contains(h.logs.String(), "duplicate id test-00000000") {
		t.Errorf("the daemon's error text is not in the logs:\n%s", h.logs)
	}
}

// Promote, then demote: each acknowledged only once its Trigger returned,
// and the demote's Trigger only starts after the promote's returned.
func TestPromoteThenDemote(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	dc.state(1, masterState(1, far))
	promote := g.next(t)
	if !promote.st.IsMaster || promote.st.Term != 1 || promote.st.LeaseDeadline != far || len(promote.st.Members) != 2 {
		t.Fatalf("promote got %+v", promote.st)
	}
	promote.finish(nil)
	dc.ackOK(1)
	if g.returned.Load() != 1 {
		t.Fatal("the promote was acknowledged before its Trigger returned")
	}

	dc.state(2, followerState(1, ""))
	demote := g.next(t)
	if demote.st.IsMaster || demote.st.Local || demote.st.LeaseDeadline != 0 {
		t.Fatalf("demote got %+v", demote.st)
	}
	demote.finish(nil)
	dc.ackOK(2)
	if g.returned.Load() != 2 {
		t.Fatal("the demote was acknowledged before its Trigger returned")
	}
}

func TestTriggerErrorIsAcknowledged(t *testing.T) {
	d := newFakeDaemon(t)
	var calls int
	h := start(t, d, TriggerFunc(func(ctx context.Context, s State) error {
		calls++
		if calls == 1 {
			return errors.New("no route to the database")
		}
		panic("driver bug")
	}), nil)
	dc := h.conn()
	dc.state(1, masterState(1, far))
	if m := dc.ack(1); *m.OK || m.Error != "no route to the database" {
		t.Errorf("ack %+v, want ok=false with the Trigger's error", m)
	}
	dc.state(2, followerState(1, ""))
	if m := dc.ack(2); *m.OK || !strings.Contains(m.Error, "driver bug") {
		t.Errorf("ack %+v, want ok=false with the panic", m)
	}
}

// A demote that arrives while the promote still runs cancels the promote,
// and its acknowledgement waits for the demote's Trigger.
func TestDemoteCancelsRunningPromote(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(1, far))
	promote := g.next(t)
	dc.state(2, followerState(2, "n2"))
	recv(t, promote.ctx.Done(), "the promote's context to be cancelled")
	promote.finish(promote.ctx.Err())
	demote := g.next(t)
	if demote.st.IsMaster || demote.st.Term != 2 {
		t.Fatalf("demote got %+v", demote.st)
	}
	if m := dc.ack(1); *m.OK || !strings.Contains(m.Error, "canceled") {
		t.Errorf("ack of the cancelled promote: %+v", m)
	}
	demote.finish(nil)
	dc.ackOK(2)
}

// Five states while a slow Trigger runs: Trigger runs once more, with the
// latest, and every state is acknowledged, in order.
func TestCoalescing(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	dc.state(1, masterState(1, far))
	first := g.next(t)
	dc.state(2, followerState(1, ""))
	dc.state(3, driverproto.State{Node: "n1", Role: driverproto.RoleCandidate, Term: 2})
	dc.state(4, followerState(2, "n2"))
	dc.state(5, masterState(3, far))
	dc.state(6, followerState(4, "n3"))
	h.dealtWith(6)
	first.finish(nil)

	second := g.next(t)
	if second.st.IsMaster || second.st.Term != 4 || second.st.Master != "n3" {
		t.Fatalf("second Trigger got %+v, want the latest state (follower of n3, term 4)", second.st)
	}
	dc.ackOK(1)
	second.finish(errors.New("stuck"))
	for seq := uint64(2); seq <= 6; seq++ {
		// The skipped states share the coalesced Trigger's result.
		if m := dc.ack(seq); *m.OK || m.Error != "stuck" {
			t.Errorf("ack %+v, want ok=false with the coalesced Trigger's error", m)
		}
	}
	select {
	case c := <-g.calls:
		t.Fatalf("a third Trigger call: %+v", c.st)
	default:
	}
}

// Renewals extend the lease without a Trigger, and with nothing in flight
// they are not acknowledged: the daemon has no use for the answer.
func TestRenewalsDoNotTrigger(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	dc.state(1, masterState(7, 101*time.Second))
	g.next(t).finish(nil)
	dc.ackOK(1)
	for seq := uint64(2); seq <= 5; seq++ {
		st := masterState(7, time.Duration(100+seq)*time.Second)
		st.Members[1].Reachable = seq%2 == 0 // members change: still a renewal
		dc.state(seq, st)
		h.dealtWith(seq)
	}
	// Past the first deadline, short of the last renewal's: still master.
	h.clock.Advance(4 * time.Second)
	dc.state(6, masterState(7, 110*time.Second))
	h.dealtWith(6)
	if n := g.returned.Load(); n != 1 {
		t.Fatalf("%d Trigger calls, want 1", n)
	}
	// Past the last: the lease runs out.
	h.clock.Advance(6 * time.Second)
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local {
		t.Fatalf("got %+v, want a local demote", demote.st)
	}
	demote.finish(nil)
	// The next acknowledgement the daemon sees is that of its next
	// change, not of a renewal.
	dc.state(7, followerState(8, "n2"))
	g.next(t).finish(nil)
	dc.ackOK(7)
}

// A renewal during a Trigger is acknowledged after it, never before the
// state the Trigger is for.
func TestRenewalAckWaitsForRunningTrigger(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(1, far))
	promote := g.next(t)
	dc.state(2, masterState(1, far+time.Second))
	h.dealtWith(2)
	promote.finish(nil)
	dc.ackOK(1)
	dc.ackOK(2)
}

// No renewal before the deadline: the running promote is cancelled and the
// driver demotes itself.
func TestLeaseExpiry(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	dc.state(1, masterState(5, 101*time.Second))
	promote := g.next(t)
	h.clock.Advance(time.Second)
	recv(t, promote.ctx.Done(), "the promote's context to be cancelled")
	promote.finish(promote.ctx.Err())

	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local || demote.st.Role != driverproto.RoleFollower || demote.st.Term != 5 || !strings.Contains(demote.st.Reason, "lease") {
		t.Fatalf("got %+v, want a local demote of term 5 that says the lease ran out", demote.st)
	}
	demote.finish(nil)
	if m := dc.ack(1); *m.OK {
		t.Errorf("the cancelled promote was acknowledged ok")
	}
	if !strings.Contains(h.logs.String(), "lease ran out") {
		t.Errorf("no log of the lease expiry:\n%s", h.logs)
	}

	// The daemon, back from a pause, renews the same term with a fresh
	// deadline: the driver is master again.
	dc.state(2, masterState(5, 110*time.Second))
	if again := g.next(t); !again.st.IsMaster || again.st.Term != 5 {
		t.Fatalf("got %+v, want a promote", again.st)
	} else {
		again.finish(nil)
	}
	dc.ackOK(2)
}

// A lease that ran out while the driver was idle is enforced too, and the
// demote is its own Trigger call.
func TestLeaseExpiryWhenIdle(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(1, 100*time.Second+500*time.Millisecond))
	g.next(t).finish(nil)
	dc.ackOK(1)
	h.clock.Advance(499 * time.Millisecond)
	dc.state(2, masterState(1, 100*time.Second+500*time.Millisecond))
	h.dealtWith(2)
	if n := g.returned.Load(); n != 1 {
		t.Fatalf("demoted before the deadline")
	}
	h.clock.Advance(time.Millisecond)
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local {
		t.Fatalf("got %+v, want a local demote", demote.st)
	}
	demote.finish(nil)
}

// A renewal whose deadline has passed on arrival extends nothing, even
// though its lease_ms says there is time left; a promote in that state is
// refused.
func TestStaleRenewalDoesNotExtend(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	dc.state(1, masterState(2, 105*time.Second))
	g.next(t).finish(nil)
	dc.ackOK(1)

	h.clock.Advance(2 * time.Second) // now 102s
	stale := masterState(2, 101*time.Second)
	stale.LeaseMS = 60_000
	dc.state(2, stale)
	// A renewal all the same: nothing to refuse.
	h.dealtWith(2)
	// Now 105s, the first deadline: if the stale renewal had been taken
	// at its lease_ms, the driver would stay master another minute.
	h.clock.Advance(3 * time.Second)
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local {
		t.Fatalf("got %+v, want a local demote", demote.st)
	}
	demote.finish(nil)

	// Now a follower, it gets a promote whose deadline has passed.
	dc.state(3, masterState(3, 104*time.Second))
	if m := dc.ack(3); *m.OK || !strings.Contains(m.Error, "deadline") {
		t.Errorf("ack %+v, want a refusal that names the deadline", m)
	}
	// And the next fresh one is acted on.
	dc.state(4, masterState(3, 200*time.Second))
	g.next(t).finish(nil)
	dc.ackOK(4)
}

// The daemon drops the connection: the driver reconnects, resends its
// health, and stays master until its lease runs out.
func TestReconnect(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	h.c.SetHealth(false, "disk full")

	dc := h.conn()
	if m := dc.next("health"); m.Type != driverproto.TypeHealth || *m.OK || m.Reason != "disk full" {
		t.Fatalf("got %+v, want the health report", m)
	}
	dc.state(1, masterState(1, 150*time.Second))
	g.next(t).finish(nil)
	dc.ackOK(1)
	h.c.SetHealth(true, "")
	if m := dc.next("health"); m.Type != driverproto.TypeHealth || !*m.OK {
		t.Fatalf("got %+v, want the health report", m)
	}

	dc.ws.Close()
	dc2 := h.conn()
	if m := dc2.next("health"); m.Type != driverproto.TypeHealth || !*m.OK {
		t.Fatalf("got %+v, want the last health report again", m)
	}
	if dc2.hello.ID != dc.hello.ID {
		t.Errorf("id changed from %s to %s", dc.hello.ID, dc2.hello.ID)
	}
	// The same state again, on the new connection: a renewal.
	dc2.state(1, masterState(1, 160*time.Second))
	dc2.ackOK(1)
	if n := g.returned.Load(); n != 1 {
		t.Fatalf("%d Trigger calls, want 1", n)
	}
}

// A daemon that stops answering pings is given up on after three ping
// periods, and the driver reconnects.
func TestHungDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	h := start(t, d, newGate(), nil, func(c *Client) { c.pingPeriod = 20 * time.Millisecond })
	dc := h.conn()
	recv(t, dc.pings, "a ping from the driver")
	dc.deaf.Store(true)
	h.conn()
	if !strings.Contains(h.logs.String(), "timeout") {
		t.Errorf("the disconnect does not say why:\n%s", h.logs)
	}
}

func TestCancelWhileMaster(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(4, far))
	g.next(t).finish(nil)
	dc.ackOK(1)

	h.cancel()
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local || demote.st.Term != 4 {
		t.Fatalf("got %+v, want a local demote of term 4", demote.st)
	}
	if _, ok := demote.ctx.Deadline(); !ok {
		t.Error("the final demote's context has no deadline")
	}
	select {
	case <-h.ended:
		t.Fatal("Run returned before the final demote did")
	default:
	}
	demote.finish(nil)
	if err := recv(t, h.ended, "Run to return"); err != nil {
		t.Fatal(err)
	}
	h.ended <- nil
}

func TestCancelWhilePromoting(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(4, far))
	promote := g.next(t)
	h.cancel()
	recv(t, promote.ctx.Done(), "the promote's context to be cancelled")
	promote.finish(promote.ctx.Err())
	if demote := g.next(t); demote.st.IsMaster || !demote.st.Local {
		t.Fatalf("got %+v, want a local demote", demote.st)
	} else {
		demote.finish(nil)
	}
	recv(t, h.ended, "Run to return")
	h.ended <- nil
}

// A demote the daemon asked for that is still running when Run's context
// ends is let finish, and the daemon still gets its acknowledgement: it is
// waiting for it to hand leadership over.
func TestCancelDuringDemote(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, masterState(4, far))
	g.next(t).finish(nil)
	dc.ackOK(1)
	dc.state(2, followerState(4, ""))
	demote := g.next(t)
	h.cancel()
	demote.finish(nil)
	dc.ackOK(2)
	recv(t, h.ended, "Run to return")
	h.ended <- nil
	dc.closed()
	if dc.closeCode != websocket.CloseNormalClosure {
		t.Errorf("close code %d, want %d", dc.closeCode, websocket.CloseNormalClosure)
	}
	select {
	case c := <-g.calls:
		t.Fatalf("Trigger called with %+v after the demote", c.st)
	default:
	}
}

func TestCancelWhileFollower(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(1, followerState(4, "n2"))
	g.next(t).finish(nil)
	dc.ackOK(1)
	h.stop()
	select {
	case c := <-g.calls:
		t.Fatalf("Trigger called with %+v on the way out", c.st)
	default:
	}
}

// Whatever the daemon sends that is not the protocol drops the connection,
// and the driver comes back.
func TestMalformedFromDaemon(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(*daemonConn)
		code int
	}{
		{"not JSON", func(dc *daemonConn) { dc.raw(`{"type":"state",`) }, websocket.CloseProtocolError},
		{"unknown field", func(dc *daemonConn) { dc.raw(`{"type":"state","seq":1,"state":{},"color":"red"}`) }, websocket.CloseProtocolError},
		{"state without seq", func(dc *daemonConn) { dc.raw(`{"type":"state","state":{}}`) }, websocket.CloseProtocolError},
		{"unknown type", func(dc *daemonConn) { dc.raw(`{"type":"promote"}`) }, websocket.CloseProtocolError},
		{"wrong direction", func(dc *daemonConn) { dc.raw(`{"type":"ack","seq":1,"ok":true}`) }, websocket.CloseProtocolError},
		{"binary", func(dc *daemonConn) { _ = dc.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}) }, websocket.CloseUnsupportedData},
		{"seq going back", func(dc *daemonConn) {
			dc.state(3, followerState(1, ""))
			dc.state(2, followerState(1, ""))
		}, websocket.CloseProtocolError},
		{"too big", func(dc *daemonConn) { dc.raw(`"` + strings.Repeat("x", driverproto.MaxMessage) + `"`) }, websocket.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			h := start(t, d, TriggerFunc(func(context.Context, State) error { return nil }), nil)
			dc := h.conn()
			tc.send(dc)
			dc.closed()
			if dc.closeCode != tc.code {
				t.Errorf("close code %d, want %d", dc.closeCode, tc.code)
			}
			dc2 := h.conn()
			dc2.state(1, followerState(1, ""))
			dc2.ackOK(1)
		})
	}
}

// The same state twice under one seq, as a daemon may send it to a new
// connection, is acted on once and acknowledged twice.
func TestRepeatedSeq(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	dc.state(4, masterState(2, far))
	dc.state(4, masterState(2, far))
	// Both taken while the Trigger still runs: a repeat that came after it
	// would be a renewal with nothing in flight, which is not acknowledged.
	h.dealtWith(4)
	h.dealtWith(4)
	g.next(t).finish(nil)
	dc.ackOK(4)
	dc.ackOK(4)
	if n := g.returned.Load(); n != 1 {
		t.Fatalf("%d Trigger calls, want 1", n)
	}
}

func TestEvents(t *testing.T) {
	d := newFakeDaemon(t)
	got := make(chan driverproto.Event, 1)
	h := start(t, d, newGate(), func(o *Options) {
		o.OnEvent = func(ev driverproto.Event) { got <- ev }
	})
	dc := h.conn()
	ev := driverproto.Event{Kind: driverproto.EventMemberLost, Node: "n2", Term: 3, AtNS: 42}
	if err := writeJSON(dc.ws, driverproto.Message{Type: driverproto.TypeEvent, Event: &ev}); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, got, "the event"); e != ev {
		t.Errorf("got %+v, want %+v", e, ev)
	}
}

func TestBackoff(t *testing.T) {
	c, err := New(Options{Secret: testSecret, Name: "b", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, TriggerFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.jitter = func(bound time.Duration) time.Duration { return bound }
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := c.backoff(n); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want a bound of %v", n, got, w*time.Millisecond)
		}
	}
	if got := c.backoff(1 << 20); got != time.Second {
		t.Errorf("backoff after many attempts = %v, want the cap", got)
	}
	c, err = New(Options{Secret: testSecret, Name: "b", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, TriggerFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	for n := range 10 {
		if got := c.backoff(n); got < 0 || got >= time.Second {
			t.Errorf("backoff(%d) = %v, outside [0, 1s)", n, got)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	drv := TriggerFunc(func(context.Context, State) error { return nil })
	for _, tc := range []struct {
		name string
		opts Options
		d    Driver
		want string
	}{
		{"short secret", Options{Secret: []byte("short"), Name: "x"}, drv, "at least 32"},
		{"no name", Options{Secret: testSecret}, drv, "Name"},
		{"bad name", Options{Secret: testSecret, Name: "a b"}, drv, "Name"},
		{"long name", Options{Secret: testSecret, Name: strings.Repeat("a", 88)}, drv, "Name"},
		{"bad addr", Options{Secret: testSecret, Name: "x", Addr: "localhost"}, drv, "host:port"},
		{"backoff", Options{Secret: testSecret, Name: "x", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, drv, "backoff"},
		{"no driver", Options{Secret: testSecret, Name: "x"}, nil, "Driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts, tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
	if _, err := New(Options{Secret: testSecret, Name: strings.Repeat("a", 87)}, drv); err != nil {
		t.Errorf("longest name refused: %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	d := newFakeDaemon(t)
	h := start(t, d, newGate(), nil)
	h.conn()
	if err := h.c.Run(context.Background()); err == nil {
		t.Fatal("a second Run while the first runs succeeded")
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", maxTextLen)
	got := truncate(long)
	if len(got) > maxTextLen+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("truncate cut badly: %d bytes", len(got))
	}
	if truncate("short") != "short" {
		t.Error("truncate changed a short text")
	}
}

func TestReadSecretFile(t *testing.T) {
	p := t.TempDir() + "/secret"
	if err := os.WriteFile(p, []byte("abc\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSecretFile(p)
	if err != nil || string(got) != "abc" {
		t.Errorf("got %q, %v; want abc", got, err)
	}
}

// A connection whose writer cannot keep up is dropped, never waited for:
// the loop that enforces the lease sends on it.
func TestSendQueueOverflow(t *testing.T) {
	d := newFakeDaemon(t)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+d.addr()+driverproto.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cn := &conn{ws: ws, writeWait: time.Second, wake: make(chan struct{}, 1), drain: make(chan struct{}), done: make(chan struct{})}
	// No writeLoop: nothing leaves the queue.
	for range sendQueueLen + 1 {
		cn.send(driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(true)})
	}
	recv(t, cn.done, "the connection to close")
	if cn.why == nil || !strings.Contains(cn.why.Error(), "not reading") {
		t.Errorf("why = %v", cn.why)
	}
	cn.send(driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(true)}) // dropped, no panic
}

// A deadline far ahead on a clock the driver may not share (another time
// namespace, another host) is cut to the lease_ms the daemon sent,
// counted from receipt.
func TestLeaseBoundedByLeaseMS(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()
	st := masterState(1, 100*time.Second+time.Hour)
	st.LeaseMS = 300
	dc.state(1, st)
	g.next(t).finish(nil)
	dc.ackOK(1)
	h.clock.Advance(299 * time.Millisecond)
	if n := g.returned.Load(); n != 1 {
		t.Fatalf("demoted before lease_ms ran out")
	}
	h.clock.Advance(time.Millisecond)
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local {
		t.Fatalf("got %+v, want a local demote once lease_ms ran out", demote.st)
	}
	demote.finish(nil)
}
