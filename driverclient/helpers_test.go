package driverclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
)

// wait bounds every wait for something that should happen; reaching it is
// a failure, never a way to synchronise.
const wait = 10 * time.Second

var testSecret = bytes.Repeat([]byte("s3cret-"), 6)

// recv returns the next value from ch, failing the test after wait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// fakeDaemon speaks the daemon's side of the driver protocol, with knobs
// for the ways a daemon (or something pretending to be one) can go wrong.
type fakeDaemon struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte
	// checkHello makes the daemon refuse a hello with a wrong MAC, as the
	// real one does; an impostor that does not know the secret skips it.
	checkHello bool
	// badWelcome makes the welcome's MAC wrong.
	badWelcome bool
	// conns receives each connection the daemon welcomed, refused each
	// hello it refused.
	conns   chan *daemonConn
	refused chan driverproto.Message
	// quit ends the handlers still running when the test ends.
	quit chan struct{}
	mu   sync.Mutex
	all  []*websocket.Conn
}

// daemonConn is one driver connection as the fake daemon sees it.
type daemonConn struct {
	t     *testing.T
	ws    *websocket.Conn
	hello driverproto.Message
	in    chan driverproto.Message
	pings chan struct{}
	// closeCode is the code of the driver's close frame, valid once done
	// is closed (-1 if it sent none).
	closeCode int
	done      chan struct{}
	// deaf stops reading (and so answering pings) once set.
	deaf atomic.Bool
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	d := &fakeDaemon{
		t:          t,
		secret:     testSecret,
		checkHello: true,
		conns:      make(chan *daemonConn, 64),
		refused:    make(chan driverproto.Message, 64),
		quit:       make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(driverproto.Path, d.serve)
	d.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(d.quit)
		d.mu.Lock()
		for _, ws := range d.all {
			ws.Close()
		}
		d.mu.Unlock()
		d.srv.Close()
	})
	return d
}

func (d *fakeDaemon) addr() string { return strings.TrimPrefix(d.srv.URL, "http://") }

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.all = append(d.all, ws)
	d.mu.Unlock()
	defer ws.Close()

	nonce := make([]byte, driverproto.NonceLen)
	_, _ = rand.Read(nonce)
	ours := hex.EncodeToString(nonce)
	if err := writeJSON(ws, driverproto.Message{Type: driverproto.TypeChallenge, Version: driverproto.Version, Node: "n1", Nonce: ours}); err != nil {
		return
	}
	_, data, err := ws.ReadMessage()
	if err != nil {
		return
	}
	hello, err := driverproto.Decode(data)
	if err != nil || hello.Type != driverproto.TypeHello {
		d.t.Errorf("fake daemon: bad hello %s: %v", data, err)
		return
	}
	want := driverproto.HelloMACRole(d.secret, ours, hello.Nonce, hello.ID, hello.Required, hello.Events, hello.DemoteTimeoutMS, hello.RoleName)
	if d.checkHello && !driverproto.CheckMAC(hello.MAC, want) {
		_ = writeJSON(ws, driverproto.Message{Type: driverproto.TypeError, Error: "wrong secret"})
		d.refused <- hello
		return
	}
	mac := driverproto.WelcomeMAC(d.secret, hello.Nonce, ours, hello.ID)
	if d.badWelcome {
		mac = strings.Repeat("0", len(mac))
	}
	if err := writeJSON(ws, driverproto.Message{Type: driverproto.TypeWelcome, Node: "n1", MAC: mac}); err != nil {
		return
	}
	dc := &daemonConn{t: d.t, ws: ws, hello: hello, in: make(chan driverproto.Message, 1024), pings: make(chan struct{}, 1024), closeCode: -1, done: make(chan struct{})}
	ws.SetPingHandler(func(data string) error {
		if dc.deaf.Load() {
			return nil
		}
		dc.pings <- struct{}{}
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	d.conns <- dc
	defer close(dc.done)
	for {
		if dc.deaf.Load() {
			// Not reading means not answering pings either: from the
			// driver's side this daemon is hung.
			<-d.quit
			return
		}
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				dc.closeCode = ce.Code
			}
			return
		}
		m, err := driverproto.Decode(data)
		if err != nil {
			d.t.Errorf("fake daemon: the driver sent a malformed message %s: %v", data, err)
			return
		}
		dc.in <- m
	}
}

func writeJSON(ws *websocket.Conn, m driverproto.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return ws.WriteMessage(websocket.TextMessage, b)
}

// state sends a state message.
func (dc *daemonConn) state(seq uint64, st driverproto.State) {
	dc.t.Helper()
	if err := writeJSON(dc.ws, driverproto.Message{Type: driverproto.TypeState, Seq: seq, State: &st}); err != nil {
		dc.t.Fatalf("sending state %d: %v", seq, err)
	}
}

// raw sends a text message as it is.
func (dc *daemonConn) raw(s string) {
	dc.t.Helper()
	if err := dc.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		dc.t.Fatalf("sending %q: %v", s, err)
	}
}

// next returns the next message from the driver.
func (dc *daemonConn) next(what string) driverproto.Message {
	dc.t.Helper()
	select {
	case m := <-dc.in:
		return m
	case <-dc.done:
		dc.t.Fatalf("connection closed while waiting for %s", what)
	case <-time.After(wait):
		dc.t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// ack returns the next message, which must be an ack of seq.
func (dc *daemonConn) ack(seq uint64) driverproto.Message {
	dc.t.Helper()
	m := dc.next(fmt.Sprintf("the ack of seq %d", seq))
	if m.Type != driverproto.TypeAck || m.Seq != seq {
		dc.t.Fatalf("got %+v, want the ack of seq %d", m, seq)
	}
	return m
}

// ackOK is ack that must also be ok.
func (dc *daemonConn) ackOK(seq uint64) {
	dc.t.Helper()
	if m := dc.ack(seq); !*m.OK {
		dc.t.Fatalf("ack of seq %d: not ok: %s", seq, m.Error)
	}
}

// closed waits for the driver to close the connection.
func (dc *daemonConn) closed() {
	dc.t.Helper()
	recv(dc.t, dc.done, "the driver to close the connection")
}

func masterState(term uint64, deadline time.Duration) driverproto.State {
	return driverproto.State{
		Node: "n1", Role: driverproto.RoleMaster, IsMaster: true, Term: term, Master: "n1",
		// An hour: the absolute deadline is what these tests move.
		LeaseMS: 3_600_000, LeaseDeadlineNS: int64(deadline),
		Members: []driverproto.Member{{ID: "n1", Reachable: true}, {ID: "n2", Reachable: true}},
	}
}

func followerState(term uint64, master string) driverproto.State {
	return driverproto.State{
		Node: "n1", Role: driverproto.RoleFollower, Term: term, Master: master,
		Members: []driverproto.Member{{ID: "n1", Reachable: true}, {ID: "n2", Reachable: true}},
	}
}

// fakeClock is CLOCK_BOOTTIME as the test decides it, with timers that
// fire when it is advanced past them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	clock   *fakeClock
	at      time.Duration
	c       chan time.Time
	stopped chan struct{}
	once    sync.Once
}

// Reset moves a timer still waiting on the clock.
func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-t.stopped:
		return false
	default:
	}
	for _, w := range f.timers {
		if w == t {
			t.at = f.now + d
			if d <= 0 {
				f.timers = slices.DeleteFunc(f.timers, func(x *fakeTimer) bool { return x == t })
				go t.fire()
			}
			return true
		}
	}
	return false
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop()               { t.once.Do(func() { close(t.stopped) }) }

func (f *fakeClock) Now() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, at: f.now + d, c: make(chan time.Time), stopped: make(chan struct{})}
	if d <= 0 {
		go t.fire()
	} else {
		f.timers = append(f.timers, t)
	}
	return t
}

// fire hands the timer's value to the loop, or gives up once the loop has
// stopped the timer.
func (t *fakeTimer) fire() {
	select {
	case t.c <- time.Time{}:
	case <-t.stopped:
	}
}

// Advance moves the clock forward by d and fires the timers now due. It
// returns once the loop has taken each of them (or stopped it), so what
// the loop does about an expiry happens before anything the test does
// next.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now += d
	var due, rest []*fakeTimer
	for _, t := range f.timers {
		if t.at <= f.now {
			due = append(due, t)
		} else {
			rest = append(rest, t)
		}
	}
	f.timers = rest
	f.mu.Unlock()
	for _, t := range due {
		t.fire()
	}
}

// gate is a Driver whose every Trigger call waits for the test to answer.
type gate struct {
	calls    chan *gateCall
	closing  chan struct{}
	returned atomic.Int64
}

type gateCall struct {
	ctx context.Context
	st  State
	ret chan error
}

func newGate() *gate {
	return &gate{calls: make(chan *gateCall), closing: make(chan struct{})}
}

func (g *gate) Trigger(ctx context.Context, st State) error {
	c := &gateCall{ctx: ctx, st: st, ret: make(chan error)}
	select {
	case g.calls <- c:
	case <-g.closing:
		return nil
	}
	var err error
	select {
	case err = <-c.ret:
	case <-g.closing:
	}
	// Counted before returning, so a test that sees an ack can check that
	// the Trigger it belongs to had returned.
	g.returned.Add(1)
	return err
}

// next returns the next Trigger call.
func (g *gate) next(t *testing.T) *gateCall {
	t.Helper()
	return recv(t, g.calls, "a Trigger call")
}

// finish makes the call return err.
func (c *gateCall) finish(err error) { c.ret <- err }

// syncBuffer is a log sink the test can read while the client writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a client under test, talking to a fake daemon.
type harness struct {
	t      *testing.T
	d      *fakeDaemon
	c      *Client
	clock  *fakeClock
	logs   *syncBuffer
	states chan uint64 // seqs the loop has dealt with
	cancel context.CancelFunc
	ended  chan error
}

// start runs a client for drv against d. The clock starts at 100s; the
// lease timer follows it. opts may adjust the options before New, and tune
// the client before Run.
func start(t *testing.T, d *fakeDaemon, drv Driver, opts func(*Options), tune ...func(*Client)) *harness {
	t.Helper()
	h := &harness{t: t, d: d, clock: &fakeClock{now: 100 * time.Second}, logs: &syncBuffer{}, states: make(chan uint64, 1024), ended: make(chan error, 1)}
	o := Options{
		Addr:       d.addr(),
		Secret:     testSecret,
		Name:       "test",
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
		Clock:      h.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), h.logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if opts != nil {
		opts(&o)
	}
	c, err := New(o, drv)
	if err != nil {
		t.Fatal(err)
	}
	c.newTimer = h.clock.NewTimer
	c.afterState = func(seq uint64) { h.states <- seq }
	for _, f := range tune {
		f(c)
	}
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.ended <- c.Run(ctx) }()
	t.Cleanup(func() {
		if g, ok := drv.(*gate); ok {
			close(g.closing)
		}
		h.stop()
	})
	return h
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.ended:
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
		h.ended <- nil // for a second stop
	case <-time.After(wait):
		h.t.Fatal("Run did not return after its context ended")
	}
}

// dealtWith waits until the loop has dealt with the state of seq.
func (h *harness) dealtWith(seq uint64) {
	h.t.Helper()
	for {
		if s := recv(h.t, h.states, "the loop to take a state"); s == seq {
			return
		}
	}
}

// conn waits for the next accepted connection.
func (h *harness) conn() *daemonConn {
	h.t.Helper()
	return recv(h.t, h.d.conns, "the driver to connect")
}
