package driverclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
)

// daemonError is an error message from the daemon, such as a duplicate id
// or a wrong secret.
type daemonError struct{ text string }

func (e *daemonError) Error() string { return "the daemon refused the driver: " + e.text }

// protocolError is a message the daemon should not have sent. The
// connection is dropped: whatever state it is in cannot be trusted.
type protocolError struct {
	code int // websocket close code to send
	msg  string
}

func (e *protocolError) Error() string { return e.msg }

func protocolErrorf(code int, format string, args ...any) error {
	return &protocolError{code: code, msg: fmt.Sprintf(format, args...)}
}

// connectLoop connects, follows and reconnects until ctx ends, handing
// states to the loop and events to the events channel (if not nil).
func (c *Client) connectLoop(ctx context.Context, states chan<- inState, events chan<- driverproto.Event) {
	attempt := 0
	for {
		welcomed, err := c.session(ctx, states, events)
		if ctx.Err() != nil {
			return
		}
		if welcomed {
			// It worked once, so the daemon is there: come back quickly.
			attempt = 0
			c.log.Warn("disconnected from the daemon", "error", err)
		} else {
			c.log.Warn("could not connect to the daemon", "addr", c.opts.Addr, "error", err)
		}
		wait := c.backoff(attempt)
		attempt++
		c.log.Debug("reconnecting", "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// backoff returns the wait before reconnect attempt n (from 0): a bound
// that doubles from MinBackoff up to MaxBackoff, and a wait drawn uniformly
// below it ("full jitter"), so that many drivers that lost the daemon at
// the same moment do not come back at the same moment.
func (c *Client) backoff(n int) time.Duration {
	bound := c.opts.MinBackoff
	for i := 0; i < n && bound < c.opts.MaxBackoff; i++ {
		bound *= 2
	}
	bound = min(bound, c.opts.MaxBackoff)
	return c.jitter(bound)
}

// session makes one connection and follows it until it fails or ctx ends.
// welcomed says whether the daemon accepted the driver.
func (c *Client) session(ctx context.Context, states chan<- inState, events chan<- driverproto.Event) (welcomed bool, err error) {
	u := url.URL{Scheme: "ws", Host: c.opts.Addr, Path: driverproto.Path}
	dialer := websocket.Dialer{HandshakeTimeout: c.handshakeTimeout}
	if c.opts.TLS != nil {
		u.Scheme = "wss"
		dialer.TLSClientConfig = c.opts.TLS
	}
	ws, resp, err := dialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return false, fmt.Errorf("connecting to %s: %v (HTTP %s)", u.String(), err, resp.Status)
		}
		return false, fmt.Errorf("connecting to %s: %v", u.String(), err)
	}
	cn := &conn{ws: ws, writeWait: c.writeWait, wake: make(chan struct{}, 1), drain: make(chan struct{}), done: make(chan struct{})}
	// Ending ctx closes the socket, which ends a read blocked in it.
	stop := context.AfterFunc(ctx, cn.stop)
	defer stop()
	ws.SetReadLimit(driverproto.MaxMessage)

	node, err := c.handshake(ws)
	if err != nil {
		cn.close(closeCode(err), err.Error())
		return false, err
	}
	c.log.Info("connected to the daemon", "addr", c.opts.Addr, "node", node)

	readTimeout := 3 * c.pingPeriod
	// Any sign of life from the daemon pushes the read deadline: a message,
	// a ping, or a pong to our own ping.
	alive := func() { _ = ws.SetReadDeadline(time.Now().Add(readTimeout)) }
	alive()
	answerPing := ws.PingHandler()
	ws.SetPingHandler(func(data string) error { alive(); return answerPing(data) })
	ws.SetPongHandler(func(string) error { alive(); return nil })

	var writer sync.WaitGroup
	cn.mu.Lock()
	cn.writing = true
	cn.mu.Unlock()
	writer.Go(func() { cn.writeLoop(c.pingPeriod) })
	c.setConn(cn)

	err = c.read(ctx, cn, alive, states, events)
	c.setConn(nil)
	cn.mu.Lock()
	if cn.why != nil {
		err = cn.why
	}
	cn.mu.Unlock()
	cn.close(closeCode(err), err.Error())
	writer.Wait()
	return true, err
}

// closeCode is the close code that tells the daemon why the driver hangs
// up after err.
func closeCode(err error) int {
	var pe *protocolError
	if errors.As(err, &pe) {
		return pe.code
	}
	return websocket.CloseNormalClosure
}

// handshake answers the daemon's challenge and checks its welcome. It
// returns the daemon's node id.
func (c *Client) handshake(ws *websocket.Conn) (string, error) {
	_ = ws.SetReadDeadline(time.Now().Add(c.handshakeTimeout))
	challenge, err := readMessage(ws)
	if err != nil {
		return "", fmt.Errorf("reading the challenge: %w", err)
	}
	if challenge.Type != driverproto.TypeChallenge {
		return "", protocolErrorf(websocket.CloseProtocolError, "expected a challenge from the daemon, got a %q message", challenge.Type)
	}

	var nonce [driverproto.NonceLen]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		return "", fmt.Errorf("drawing a nonce: %v", err)
	}
	ours := hex.EncodeToString(nonce[:])
	events := c.opts.OnEvent != nil
	hello := driverproto.Message{
		Type:     driverproto.TypeHello,
		Version:  driverproto.Version,
		ID:       c.id,
		Name:     c.opts.Name,
		Required: c.opts.Required,
		Events:   events,
		Nonce:    ours,
		// Rounded up: a declaration may not promise less than the driver
		// needs.
		DemoteTimeoutMS: int64((c.opts.DemoteTimeout + time.Millisecond - 1) / time.Millisecond),
		RoleName:        c.opts.Role,
	}
	hello.MAC = driverproto.HelloMACRole(c.opts.Secret, challenge.Nonce, ours, c.id, c.opts.Required, events, hello.DemoteTimeoutMS, c.opts.Role)
	if err := writeMessage(ws, hello, c.writeWait); err != nil {
		return "", fmt.Errorf("sending hello: %w", err)
	}

	welcome, err := readMessage(ws)
	if err != nil {
		return "", fmt.Errorf("reading the welcome: %w", err)
	}
	if welcome.Type != driverproto.TypeWelcome {
		return "", protocolErrorf(websocket.CloseProtocolError, "expected a welcome from the daemon, got a %q message", welcome.Type)
	}
	// The daemon must prove it knows the secret too: anything listening on
	// this port could otherwise tell the driver to become master.
	if !driverproto.CheckMAC(welcome.MAC, driverproto.WelcomeMAC(c.opts.Secret, ours, challenge.Nonce, c.id)) {
		return "", protocolErrorf(websocket.ClosePolicyViolation, "the daemon's welcome does not prove it knows the secret (wrong MAC); not trusting it")
	}
	node := welcome.Node
	if node == "" {
		node = challenge.Node
	}
	return node, nil
}

// read follows the welcomed connection cn until it fails or ctx ends.
func (c *Client) read(ctx context.Context, cn *conn, alive func(), states chan<- inState, events chan<- driverproto.Event) error {
	var lastSeq uint64
	droppingEvents := false
	for {
		m, err := readMessage(cn.ws)
		if err != nil {
			return err
		}
		alive()
		switch m.Type {
		case driverproto.TypeState:
			// Sequence numbers tie acknowledgements to states; one that
			// goes back would make them ambiguous. The same one twice is
			// tolerated: a daemon may send its current state to a new
			// connection just as it publishes it, and acting on a state
			// twice is harmless (the second time is a renewal).
			if m.Seq < lastSeq {
				return protocolErrorf(websocket.CloseProtocolError, "state seq %d after seq %d: sequence numbers must not go back", m.Seq, lastSeq)
			}
			lastSeq = m.Seq
			if c.opts.Role != "" && m.State.RoleName != c.opts.Role {
				// Never act on another role's state.
				return protocolErrorf(websocket.ClosePolicyViolation, "state of role %q on a connection for role %q", m.State.RoleName, c.opts.Role)
			}
			select {
			case states <- inState{cn: cn, seq: m.Seq, st: fromWire(m.State, c.opts.Clock())}:
			case <-ctx.Done():
				return ctx.Err()
			}
		case driverproto.TypeEvent:
			if events == nil {
				continue // not asked for; harmless
			}
			select {
			case events <- *m.Event:
				droppingEvents = false
			default:
				if !droppingEvents {
					c.log.Warn("OnEvent is not keeping up; dropping events", "queue", cap(events))
					droppingEvents = true
				}
			}
		default:
			return protocolErrorf(websocket.CloseProtocolError, "unexpected %q message from the daemon", m.Type)
		}
	}
}

// readMessage reads and decodes one message. An error message from the
// daemon is returned as a *daemonError, a malformed one as a
// *protocolError.
func readMessage(ws *websocket.Conn) (driverproto.Message, error) {
	typ, data, err := ws.ReadMessage()
	if err != nil {
		return driverproto.Message{}, err
	}
	if typ != websocket.TextMessage {
		return driverproto.Message{}, protocolErrorf(websocket.CloseUnsupportedData, "a binary message from the daemon; the protocol is JSON text")
	}
	m, err := driverproto.Decode(data)
	if err != nil {
		return driverproto.Message{}, protocolErrorf(websocket.CloseProtocolError, "malformed message from the daemon: %v", err)
	}
	if m.Type == driverproto.TypeError {
		return driverproto.Message{}, &daemonError{text: m.Error}
	}
	return m, nil
}

func writeMessage(ws *websocket.Conn, m driverproto.Message, wait time.Duration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_ = ws.SetWriteDeadline(time.Now().Add(wait))
	return ws.WriteMessage(websocket.TextMessage, b)
}

// fromWire converts a state received at now (CLOCK_BOOTTIME). A master's
// lease ends at the earlier of the absolute deadline and lease_ms after
// receipt: the deadline alone would mean nothing to a driver in another
// time namespace or on another host, whose clock differs, and lease_ms
// alone would stretch by however long the message took to arrive.
func fromWire(w *driverproto.State, now time.Duration) State {
	s := State{
		Node:     w.Node,
		Role:     w.Role,
		Master:   w.Master,
		IsMaster: w.IsMaster,
		Term:     w.Term,
		Members:  w.Members,
		Reason:   w.Reason,
		Planned:  w.Planned,
		RoleName: w.RoleName,
	}
	if w.IsMaster {
		s.LeaseDeadline = time.Duration(w.LeaseDeadlineNS)
		// A figure beyond a day is no lease a daemon grants (and could
		// overflow): the absolute deadline alone bounds it then.
		if w.LeaseMS >= 0 && w.LeaseMS <= int64(24*time.Hour/time.Millisecond) {
			s.LeaseDeadline = min(s.LeaseDeadline, now+time.Duration(w.LeaseMS)*time.Millisecond)
		}
	}
	s.StopDeadline = time.Duration(w.StopDeadlineNS)
	return s
}

// conn is one welcomed connection. Messages are queued by send, which
// never blocks, and written by writeLoop, the connection's only writer.
type conn struct {
	ws        *websocket.Conn
	writeWait time.Duration

	mu      sync.Mutex
	queue   []driverproto.Message
	closed  bool
	writing bool  // writeLoop has started
	why     error // why send closed the connection, if it did
	wake    chan struct{}
	// drain asks writeLoop to write what is queued and close.
	drain     chan struct{}
	drainOnce sync.Once
	done      chan struct{} // closed by close
}

// stop closes the connection because the driver is stopping: once the
// queue is written if writeLoop runs, at once otherwise.
func (cn *conn) stop() {
	cn.drainOnce.Do(func() { close(cn.drain) })
	cn.mu.Lock()
	writing := cn.writing
	cn.mu.Unlock()
	if !writing {
		cn.close(websocket.CloseNormalClosure, "the driver is stopping")
	}
}

// send queues m. It never blocks: the loop that enforces the lease calls
// it. A connection whose queue overflows is closed; a closed connection
// drops m.
func (cn *conn) send(m driverproto.Message) {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return
	}
	if len(cn.queue) >= sendQueueLen {
		cn.why = fmt.Errorf("the daemon is not reading: %d messages waiting", len(cn.queue))
		cn.mu.Unlock()
		// No close frame: writing one could block the caller, and the
		// daemon would not read it anyway.
		cn.close(websocket.CloseAbnormalClosure, "")
		return
	}
	cn.queue = append(cn.queue, m)
	cn.mu.Unlock()
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued messages and a ping every pingPeriod until the
// connection is closed.
func (cn *conn) writeLoop(pingPeriod time.Duration) {
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case <-cn.wake:
			if !cn.writeQueue() {
				return
			}
		case <-cn.drain:
			if cn.writeQueue() {
				cn.close(websocket.CloseNormalClosure, "the driver is stopping")
			}
			return
		case <-ping.C:
			if err := cn.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cn.writeWait)); err != nil {
				cn.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-cn.done:
			return
		}
	}
}

// writeQueue writes the queued messages. On failure it closes the
// connection and returns false.
func (cn *conn) writeQueue() bool {
	cn.mu.Lock()
	q := cn.queue
	cn.queue = nil
	cn.mu.Unlock()
	for _, m := range q {
		if err := writeMessage(cn.ws, m, cn.writeWait); err != nil {
			cn.close(websocket.CloseAbnormalClosure, "")
			return false
		}
	}
	return true
}

// close closes the connection once, telling the daemon why with a close
// frame unless code is CloseAbnormalClosure (the socket is broken, or
// writing could block). The frame may take up to writeWait; the loop that
// enforces the lease never calls close with a frame to send.
func (cn *conn) close(code int, text string) {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return
	}
	cn.closed = true
	cn.queue = nil
	close(cn.done)
	cn.mu.Unlock()
	if code != websocket.CloseAbnormalClosure {
		// A close frame's payload is limited to 125 bytes, code included.
		text = cutUTF8(text, 123)
		_ = cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(cn.writeWait))
	}
	_ = cn.ws.Close()
}

// cutUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
