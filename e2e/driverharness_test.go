package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/boottime"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// This file holds what the driver tests share: test drivers that run in the
// test process on top of driverclient and record every Trigger call on
// CLOCK_BOOTTIME, hand-driven websocket connections that speak driverproto
// message by message, and `clustd driver …` processes beside the nodes.

// mono reads CLOCK_BOOTTIME, the clock in which the daemon gives lease
// deadlines and its events their instants.
func mono() time.Duration { return boottime.Now() }

// config loads node i's configuration, for its drivers secret, its admin
// token and its timing.
func (c *testCluster) config(i int) *config.Config {
	c.t.Helper()
	cfg, err := config.Load(c.cfgPath[i])
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// admin returns an API client for node i that carries the admin token.
func (c *testCluster) admin(i int) *api.Client {
	c.t.Helper()
	cfg := c.config(i)
	token := cfg.AdminToken
	if token == "" {
		token = api.AdminToken(cfg.Secret)
	}
	return &api.Client{Addr: c.httpAddr[i], Token: token}
}

// driversConnected reads clustd_drivers_connected from node i, or -1 if the
// node does not answer.
func (c *testCluster) driversConnected(i int) int {
	v, err := c.metric(i, "clustd_drivers_connected")
	if err != nil {
		return -1
	}
	return int(v)
}

// call is one Trigger call as a test driver saw it.
type call struct {
	at  time.Duration // CLOCK_BOOTTIME on entry
	end time.Duration // CLOCK_BOOTTIME on return; 0 while it runs
	st  driverclient.State
}

func (k call) String() string {
	return fmt.Sprintf("{master=%v role=%s term=%d master_id=%q local=%v lease_deadline=%v reason=%q}",
		k.st.IsMaster, k.st.Role, k.st.Term, k.st.Master, k.st.Local, k.st.LeaseDeadline, k.st.Reason)
}

// recorder is a driverclient.Driver that keeps every Trigger call. A delay,
// if set, makes Trigger take that long for the states it names, ignoring
// its context as a badly written driver would; quit ends such delays when
// the test is over. A recorder serves one client.
type recorder struct {
	delay func(driverclient.State) time.Duration
	quit  chan struct{}

	mu    sync.Mutex
	calls []call
}

func newRecorder() *recorder { return &recorder{quit: make(chan struct{})} }

func (r *recorder) Trigger(_ context.Context, s driverclient.State) error {
	at := mono()
	r.mu.Lock()
	k := len(r.calls)
	r.calls = append(r.calls, call{at: at, st: s})
	r.mu.Unlock()
	if r.delay != nil {
		if d := r.delay(s); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.quit:
				t.Stop()
			}
		}
	}
	r.mu.Lock()
	r.calls[k].end = mono()
	r.mu.Unlock()
	return nil
}

// snapshot returns the calls so far.
func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// last returns the latest call, if any.
func (r *recorder) last() (call, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return call{}, false
	}
	return r.calls[len(r.calls)-1], true
}

// first returns the first call that satisfies f.
func (r *recorder) first(f func(call) bool) (call, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.calls {
		if f(k) {
			return k, true
		}
	}
	return call{}, false
}

// logRecord is one log record of a driverclient.Client.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (l logRecord) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", l.level, l.msg)
	for k, v := range l.attrs {
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	return b.String()
}

// logStore keeps a client's log records, so that a test can read what the
// library said (the lease deadline it enforced, why it could not connect)
// and print it all if the test fails.
type logStore struct {
	mu   sync.Mutex
	recs []logRecord
}

func (s *logStore) add(r logRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

// find returns every record whose message contains msg.
func (s *logStore) find(msg string) []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRecord
	for _, r := range s.recs {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

func (s *logStore) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.recs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// captureHandler is a slog.Handler that files records into a logStore.
type captureHandler struct {
	store *logStore
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Resolve()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.store.add(rec)
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{store: h.store, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

// WithGroup keeps the attributes flat: the client does not use groups.
func (h *captureHandler) WithGroup(string) slog.Handler { return h }

// testClient is a driverclient.Client running in the test process.
type testClient struct {
	*driverclient.Client
	rec  *recorder
	logs *logStore
	stop func() // cancels Run and waits for it to return
}

// startClient runs a driverclient.Client for rec against node i, with the
// secret from node i's configuration unless tweak changes it. The client is
// stopped when the test ends, before the nodes are killed, so that its
// final demote still reaches a daemon; its log is printed if the test
// failed.
func (c *testCluster) startClient(i int, name string, rec *recorder, tweak func(*driverclient.Options)) *testClient {
	c.t.Helper()
	logs := &logStore{}
	opts := driverclient.Options{
		Addr:   c.httpAddr[i],
		Secret: c.config(i).DriversSecret,
		Name:   name,
		Logger: slog.New(&captureHandler{store: logs}),
	}
	if tweak != nil {
		tweak(&opts)
	}
	cl, err := driverclient.New(opts, rec)
	if err != nil {
		c.t.Fatalf("driverclient.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cl.Run(ctx); err != nil {
			c.t.Errorf("driver %s: Run: %v", cl.ID(), err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			close(rec.quit)
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				c.t.Errorf("driver %s: Run did not return within 20 s of its context ending", cl.ID())
			}
		})
	}
	c.t.Cleanup(func() {
		stop()
		if c.t.Failed() {
			c.t.Logf("----- log of test driver %s on node %s -----\n%s", cl.ID(), c.ids[i], logs)
		}
	})
	return &testClient{Client: cl, rec: rec, logs: logs, stop: stop}
}

// rawDriver is a driver connection the test writes message by message, to
// do what driverclient never would: reuse an id, send garbage, stop reading.
type rawDriver struct {
	t         *testing.T
	ws        *websocket.Conn
	challenge driverproto.Message
}

// dialRaw connects to the driver endpoint at addr and reads the daemon's
// challenge. A positive rcvbuf fixes the socket's receive buffer at that
// size before it connects, so that a client that stops reading fills up
// quickly.
func dialRaw(t *testing.T, addr string, rcvbuf int) *rawDriver {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if rcvbuf > 0 {
		nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}}
		d.NetDialContext = nd.DialContext
	}
	ws, _, err := d.Dial("ws://"+addr+driverproto.Path, nil)
	if err != nil {
		t.Fatalf("connecting to the driver endpoint at %s: %v", addr, err)
	}
	t.Cleanup(func() { ws.Close() })
	r := &rawDriver{t: t, ws: ws}
	m, err := r.read(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the daemon's challenge: %v", err)
	}
	if m.Type != driverproto.TypeChallenge {
		t.Fatalf("the daemon opened with a %q message, not a challenge", m.Type)
	}
	r.challenge = m
	return r
}

// read reads and decodes one message from the daemon, with the same strict
// decoding the daemon applies to drivers.
func (r *rawDriver) read(timeout time.Duration) (driverproto.Message, error) {
	r.ws.SetReadDeadline(time.Now().Add(timeout))
	typ, b, err := r.ws.ReadMessage()
	if err != nil {
		return driverproto.Message{}, err
	}
	if typ != websocket.TextMessage {
		return driverproto.Message{}, fmt.Errorf("a message of websocket type %d from the daemon; the protocol is JSON text", typ)
	}
	m, err := driverproto.Decode(b)
	if err != nil {
		return driverproto.Message{}, fmt.Errorf("the daemon sent %s: %w", b, err)
	}
	return m, nil
}

// send writes one text message.
func (r *rawDriver) send(b []byte) {
	r.t.Helper()
	r.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := r.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		r.t.Fatalf("sending %q to the daemon: %v", b, err)
	}
}

// hello sends a hello for id, with a MAC made from secret, and returns the
// daemon's answer: a welcome, or an error message.
func (r *rawDriver) hello(secret []byte, id, name string) driverproto.Message {
	r.t.Helper()
	nonce := make([]byte, driverproto.NonceLen)
	rand.Read(nonce)
	ours := hex.EncodeToString(nonce)
	b, err := json.Marshal(driverproto.Message{
		Type:    driverproto.TypeHello,
		Version: driverproto.Version,
		ID:      id,
		Name:    name,
		Nonce:   ours,
		MAC:     driverproto.HelloMAC(secret, r.challenge.Nonce, ours, id, false, false),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(b)
	m, err := r.read(5 * time.Second)
	if err != nil {
		r.t.Fatalf("reading the answer to hello %s: %v", id, err)
	}
	if m.Type == driverproto.TypeWelcome &&
		!driverproto.CheckMAC(m.MAC, driverproto.WelcomeMAC(secret, ours, r.challenge.Nonce, id)) {
		r.t.Fatalf("the daemon's welcome of %s does not prove it knows the secret", id)
	}
	return m
}

// errorAndClose reads until the daemon's error message and then until the
// connection ends, skipping the states that may come first. It returns the
// error text, and the close frame's code (-1 when the connection ended
// without one).
func (r *rawDriver) errorAndClose(timeout time.Duration) (text string, code int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := r.read(time.Until(deadline))
		if err != nil {
			return "", 0, fmt.Errorf("no error message before the connection ended: %w", err)
		}
		if m.Type == driverproto.TypeError {
			text = m.Error
			break
		}
		if m.Type != driverproto.TypeState && m.Type != driverproto.TypeEvent {
			return "", 0, fmt.Errorf("an unexpected %q message before the error", m.Type)
		}
	}
	for {
		_, err := r.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return text, ce.Code, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return text, 0, fmt.Errorf("the daemon sent the error %q but kept the connection open for %v", text, timeout)
		}
		return text, -1, nil
	}
}

// driverProc is a `clustd driver …` process beside node i.
type driverProc struct {
	*proc
	node    int
	logPath string
}

// startDriverProc starts `clustd driver KIND --config NODE.yml ARGS…` for
// node i, its output in its own log file. When the test ends it is stopped
// with SIGTERM, as a service manager would, so that it demotes; SIGKILL
// follows if it is not gone within 15 s. That runs before the nodes are
// killed, since it was registered after newCluster.
func (c *testCluster) startDriverProc(i int, kind string, args ...string) *driverProc {
	c.t.Helper()
	p, err := c.lc.StartDriver(i, kind, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	logPath := c.lc.DriverLog(i, kind)
	dp := &driverProc{proc: p, node: i, logPath: logPath}
	c.t.Cleanup(func() {
		dp.terminate(15 * time.Second)
		if c.t.Failed() {
			b, _ := os.ReadFile(logPath)
			c.t.Logf("----- log of the %s driver of node %s (%s) -----\n%s", kind, c.ids[i], logPath, b)
		}
	})
	return dp
}

// terminate sends SIGTERM and waits up to grace for the process to exit,
// then kills it.
func (dp *driverProc) terminate(grace time.Duration) { dp.Stop(grace) }

// logText returns what the driver has written so far.
func (dp *driverProc) logText() string {
	b, _ := os.ReadFile(dp.logPath)
	return string(b)
}
