package seeddrv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// MetadataHeader is the upgrade request header that carries the encrypted
// connection type and tells these drivers apart from everything else on
// the root path.
const MetadataHeader = "Metadata"

// Protocol timing. The drivers give up on a handshake after 5 s, fail a
// request after 3 s and ping every 1.5 s.
const (
	helloTimeout   = 5 * time.Second
	requestTimeout = 3 * time.Second
	// readTimeout closes a driver heard from neither by message nor by
	// ping for this long: several of its pings.
	readTimeout  = 10 * time.Second
	pingPeriod   = 3 * time.Second
	writeTimeout = 5 * time.Second
	tickPeriod   = time.Second
	queueLen     = 16
	// MaxMessage bounds one frame. Real messages are a few dozen bytes.
	MaxMessage = 64 << 10
	maxIDLen   = 256
	// burstQuiet separates bursts of the same refusal in the log: a
	// misconfigured driver retries every 5 s, for ever.
	burstQuiet = 30 * time.Second
)

// The answer the drivers' library gives to a method it does not serve; the
// daemon serves none.
const unknownMethod = "unrecognized method for this machine"

// Options configure a Server.
type Options struct {
	// Secret is the drivers secret, exactly as the drivers are given it.
	Secret []byte
	// Node is the daemon's id, sent in its hello.
	Node string
	// URL is the daemon's address as its hello names it (remote_address).
	URL string
	// Grace is how long a driver that answered trigger(false) still counts
	// as holding the master role.
	Grace time.Duration
	// Log receives connections, and refusals once per burst.
	Log *slog.Logger
	// AuthFailed, if set, is called for every connection refused for a
	// wrong secret.
	AuthFailed func()
	// Released, if set, is called with no lock held whenever a driver stops
	// holding the master role, so that a waiting hand-over can go on.
	Released func()
	// Connected, if set, is called with the number of connected drivers
	// after every change.
	Connected func(n int)
}

// Info describes one connected driver.
type Info struct {
	// ID is the id the driver sent in its hello.
	ID string
	// Remote is its address.
	Remote string
	// ToldMaster is the last isMaster it was sent.
	ToldMaster bool
	// Holding: it was told it is master and has not yet answered
	// trigger(false) longer than the grace ago.
	Holding bool
	// Since is when it completed its handshake.
	Since time.Time
}

// Server accepts the 2018 drivers and tells them this node's master status.
// Its methods are safe for concurrent use; it calls its Options' functions
// with no lock of its own held, except that SetMaster and Holding may be
// called with the caller's lock held, which the server never asks for.
type Server struct {
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader
	burst    burst
	// silence is how long a driver may send nothing, not even a ping or a
	// pong, before it is cut off: readTimeout, shorter in tests.
	silence time.Duration

	mu      sync.Mutex
	conns   map[*conn]struct{}
	master  bool
	closed  bool
	orphans map[string]bool // drivers gone while holding, by id
}

// New returns a Server.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		opts: opts,
		log:  log,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  4096,
			WriteBufferSize: 4096,
			// A browser page must not drive this node: drivers are
			// programs, which send no Origin.
			CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		},
		conns:   map[*conn]struct{}{},
		orphans: map[string]bool{},
		silence: readTimeout,
	}
}

// conn is one connected driver.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	keys   counters
	remote string
	id     string
	since  time.Time
	send   chan []byte
	closed chan struct{}
	once   sync.Once

	// Guarded by s.mu.
	ready      bool
	nextReq    int
	toldMaster bool
	holding    bool
	releaseReq int // the trigger(false) whose answer starts the grace, or -1
	grace      *time.Timer
	pending    map[int]time.Time
}

func (c *conn) close() { c.once.Do(func() { close(c.closed) }) }

// refusal is a reason to refuse or close a connection; kind groups the
// log lines into bursts.
type refusal struct {
	kind, msg string
	code      int
}

func (r *refusal) Error() string { return r.msg }

func refuse(kind, format string, args ...any) *refusal {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...), code: http.StatusForbidden}
}

// ServeHTTP accepts one driver: it checks the metadata header, upgrades the
// connection, runs the handshake and serves the driver until it goes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	keys := counters{secret: s.opts.Secret}
	if rf := s.admit(r, &keys); rf != nil {
		s.refused(r.RemoteAddr, rf)
		http.Error(w, rf.msg, rf.code)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the request.
		s.refused(r.RemoteAddr, refuse("upgrade", "not a websocket upgrade: %v", err))
		return
	}
	ws.SetReadLimit(MaxMessage)
	c := &conn{
		s: s, ws: ws, keys: keys, remote: r.RemoteAddr,
		send: make(chan []byte, queueLen), closed: make(chan struct{}),
		releaseReq: -1, pending: map[int]time.Time{},
	}
	if rf := s.handshake(c); rf != nil {
		s.refused(r.RemoteAddr, rf)
		ws.Close()
		return
	}
	s.run(c)
}

// admit checks the upgrade request: from this machine, with a metadata
// header that decrypts under the secret and names a driver.
func (s *Server) admit(r *http.Request, keys *counters) *refusal {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip, err := netip.ParseAddr(host); err != nil || !ip.Unmap().IsLoopback() {
		return refuse("remote", "2018 drivers are accepted from this machine only (loopback), not from %s", r.RemoteAddr)
	}
	raw := r.Header.Get(MetadataHeader)
	frame, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		frame, err = base64.RawStdEncoding.DecodeString(raw)
	}
	if err != nil {
		return refuse("malformed", "the metadata header is not base64")
	}
	msg, err := keys.open(frame)
	if err != nil {
		if s.opts.AuthFailed != nil {
			s.opts.AuthFailed()
		}
		return refuse("secret", "the metadata header does not decrypt: the driver's secret is not this node's drivers secret (or the header is damaged)")
	}
	var meta struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &meta); err != nil {
		return refuse("malformed", "the metadata header is not a JSON object with a type")
	}
	switch meta.Type {
	case "driver":
		return nil
	case "cluster":
		return refuse("cluster", "a 2018 daemon tried to connect as a peer; it cannot join this cluster: move every machine to clustd (clustd import-seed converts its config.yml)")
	}
	return refuse("type", "unknown connection type %q in the metadata header; only drivers connect here", truncate(meta.Type, 64))
}

// handshake sends the daemon's hello and waits for the driver's. From then
// on both sides' keys include the ticket.
func (s *Server) handshake(c *conn) *refusal {
	var tb [4]byte
	for c.keys.ticket == 0 {
		rand.Read(tb[:])
		c.keys.ticket = binary.BigEndian.Uint32(tb[:])
	}
	hello, _ := json.Marshal(map[string]any{"hello_world": c.keys.ticket, "id": s.opts.Node, "remote_address": s.opts.URL})
	c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.ws.WriteMessage(websocket.BinaryMessage, c.keys.seal(hello)); err != nil {
		return refuse("io", "sending hello: %v", err)
	}
	c.ws.SetReadDeadline(time.Now().Add(helloTimeout))
	m, rf := c.readMessage()
	if rf != nil {
		return rf
	}
	hw, ok := m["hello_world"]
	if !ok {
		return refuse("early", "a message before the handshake")
	}
	var ticket uint32
	if err := json.Unmarshal(hw, &ticket); err != nil || ticket != c.keys.ticket {
		return refuse("ticket", "the driver's hello carries the wrong ticket")
	}
	var id string
	if err := json.Unmarshal(m["id"], &id); err != nil || id == "" || len(id) > maxIDLen {
		return refuse("malformed", "the driver's hello has no id (a string of 1 to %d bytes)", maxIDLen)
	}
	c.id, c.since = id, time.Now()
	c.keys.inTicket, c.keys.outTicket = true, true

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return refuse("io", "the daemon is stopping")
	}
	c.ready = true
	s.conns[c] = struct{}{}
	if s.orphans[id] {
		// It went away while told it is master and may have acted on
		// that ever since: it holds the role until it answers.
		delete(s.orphans, id)
		c.holding = !s.master
	}
	c.trigger(s.master)
	n := len(s.conns)
	s.mu.Unlock()
	s.connected(n)
	return nil
}

// readMessage reads one frame and decrypts it into a JSON object.
func (c *conn) readMessage() (map[string]json.RawMessage, *refusal) {
	t, b, err := c.ws.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, refuse("gone", "closed by the driver")
		}
		return nil, refuse("io", "reading: %v", err)
	}
	if t != websocket.BinaryMessage {
		return nil, refuse("malformed", "a text message; the protocol sends binary frames")
	}
	msg, err := c.keys.open(b)
	if err != nil {
		if c.s.opts.AuthFailed != nil && !c.ready {
			c.s.opts.AuthFailed()
		}
		return nil, refuse("frame", "%v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil || m == nil {
		return nil, refuse("malformed", "a frame that is not a JSON object")
	}
	return m, nil
}

// trigger queues trigger(isMaster). Called with s.mu held.
func (c *conn) trigger(isMaster bool) {
	id := c.nextReq
	c.nextReq++
	b, _ := json.Marshal(map[string]any{"req_id": id, "method": "trigger", "params": map[string]bool{"isMaster": isMaster}})
	c.toldMaster = isMaster
	if isMaster {
		c.holding, c.releaseReq = true, -1
		if c.grace != nil {
			c.grace.Stop()
			c.grace = nil
		}
	} else if c.holding {
		c.releaseReq = id
	}
	c.pending[id] = time.Now()
	c.enqueue(b)
}

// enqueue sends without blocking; a driver too far behind is cut off.
func (c *conn) enqueue(b []byte) {
	select {
	case c.send <- b:
	default:
		c.s.log.Warn("2018 driver fell too far behind; disconnecting it", "driver", c.id)
		c.close()
	}
}

// run serves a driver after its handshake: the writer here, the reader in
// its own goroutine.
func (s *Server) run(c *conn) {
	s.log.Info("2018 driver connected (legacy: no lease, no acknowledgement)", "driver", c.id, "remote", c.remote)
	done := make(chan *refusal, 1)
	go func() { done <- s.read(c) }()
	tick := time.NewTicker(tickPeriod)
	defer tick.Stop()
	lastPing := time.Now()
	var why *refusal
loop:
	for {
		select {
		case b := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteMessage(websocket.BinaryMessage, c.keys.seal(b)); err != nil {
				why = refuse("io", "writing: %v", err)
				break loop
			}
		case now := <-tick.C:
			if now.Sub(lastPing) >= pingPeriod {
				lastPing = now
				if err := c.ws.WriteControl(websocket.PingMessage, nil, now.Add(writeTimeout)); err != nil {
					why = refuse("io", "ping: %v", err)
					break loop
				}
			}
			s.expire(c, now)
		case <-c.closed:
			break loop
		}
	}
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.ws.Close()
	c.close()
	if r := <-done; why == nil {
		why = r
	}
	s.drop(c, why)
}

// expire warns about triggers unanswered for the protocol's 3 s. The driver
// keeps counting as holding: it may still be acting.
func (s *Server) expire(c *conn, now time.Time) {
	s.mu.Lock()
	var late []int
	for id, at := range c.pending {
		if now.Sub(at) > requestTimeout {
			late = append(late, id)
			delete(c.pending, id)
		}
	}
	s.mu.Unlock()
	for _, id := range late {
		s.log.Warn("2018 driver did not answer trigger within 3s", "driver", c.id, "req_id", id)
	}
}

// read handles what the driver sends after the handshake: answers to
// trigger, and requests, which the daemon does not serve.
func (s *Server) read(c *conn) *refusal {
	defer c.close()
	alive := func() { c.ws.SetReadDeadline(time.Now().Add(s.silence)) }
	alive()
	c.ws.SetPingHandler(func(data string) error {
		alive()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		return nil
	})
	c.ws.SetPongHandler(func(string) error { alive(); return nil })
	for {
		m, rf := c.readMessage()
		if rf != nil {
			return rf
		}
		alive()
		msg, rf := parseMessage(m)
		if rf != nil {
			return rf
		}
		if msg.request {
			s.log.Debug("2018 driver sent a request; the daemon serves none", "driver", c.id, "method", truncate(msg.method, 64))
			ans, _ := json.Marshal(map[string]any{"res_id": msg.id, "error": unknownMethod})
			s.mu.Lock()
			c.enqueue(ans)
			s.mu.Unlock()
			continue
		}
		s.answered(c, msg.id, msg.failure)
	}
}

// message is what a driver may send after its handshake: a response to
// trigger, or a request of its own.
type message struct {
	request bool
	id      int    // res_id of a response, req_id of a request
	failure string // a response's error
	method  string // a request's method
}

// parseMessage tells a response from a request, and refuses a second hello
// or anything else.
func parseMessage(m map[string]json.RawMessage) (message, *refusal) {
	switch {
	case m["hello_world"] != nil:
		return message{}, refuse("hello", "a second hello after the handshake")
	case m["res_id"] != nil:
		msg := message{}
		if err := json.Unmarshal(m["res_id"], &msg.id); err != nil {
			return message{}, refuse("malformed", "a response whose res_id is not a whole number")
		}
		if e := m["error"]; e != nil && string(e) != "null" {
			if json.Unmarshal(e, &msg.failure) != nil || msg.failure == "" {
				msg.failure = truncate(string(e), 200)
			}
		}
		return msg, nil
	case m["method"] != nil:
		msg := message{request: true}
		if m["req_id"] == nil || json.Unmarshal(m["req_id"], &msg.id) != nil {
			return message{}, refuse("malformed", "a request without a whole-number req_id")
		}
		if json.Unmarshal(m["method"], &msg.method) != nil {
			return message{}, refuse("malformed", "a request whose method is not a string")
		}
		return msg, nil
	}
	return message{}, refuse("malformed", "a message that is neither a request nor a response")
}

// answered handles the driver's answer to trigger request id: the answer
// to the last trigger(false) starts the grace.
func (s *Server) answered(c *conn, id int, failure string) {
	s.mu.Lock()
	_, known := c.pending[id]
	never := !known && id >= c.nextReq
	delete(c.pending, id)
	start := failure == "" && c.holding && !c.toldMaster && id == c.releaseReq && c.grace == nil
	if start {
		c.grace = time.AfterFunc(s.opts.Grace, func() { s.release(c, id) })
	}
	s.mu.Unlock()
	switch {
	case failure != "":
		s.log.Warn("2018 driver answered trigger with an error", "driver", c.id, "req_id", id, "error", truncate(failure, 200))
	case never:
		s.log.Warn("2018 driver answered a request never sent", "driver", c.id, "res_id", id)
	}
}

// release ends the grace that began with the answer to request id, unless
// the driver has been told it is master again since.
func (s *Server) release(c *conn, id int) {
	s.mu.Lock()
	ok := c.releaseReq == id && !c.toldMaster && c.holding
	if ok {
		c.holding, c.grace = false, nil
	}
	s.mu.Unlock()
	if ok {
		s.log.Info("2018 driver let go of the master role (its answer plus the grace)", "driver", c.id, "grace", s.opts.Grace)
		if s.opts.Released != nil {
			s.opts.Released()
		}
	}
}

func (s *Server) drop(c *conn, why *refusal) {
	s.mu.Lock()
	delete(s.conns, c)
	orphan := c.holding && c.grace == nil && !s.closed
	if orphan {
		s.orphans[c.id] = true
	}
	n := len(s.conns)
	s.mu.Unlock()
	s.connected(n)
	reason := "closed"
	if why != nil {
		reason = why.msg
	}
	level := slog.LevelInfo
	if why != nil && why.kind != "gone" && why.kind != "io" {
		// A driver that breaks the protocol does it again on each of
		// its reconnections: the burst log speaks for it.
		s.refused(c.remote, why)
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "2018 driver gone", "driver", c.id, "reason", reason, "still_holding", orphan)
}

func (s *Server) connected(n int) {
	if s.opts.Connected != nil {
		s.opts.Connected(n)
	}
}

// SetMaster tells every driver this node's master status when it changes.
// It never blocks and may be called with the caller's lock held.
func (s *Server) SetMaster(isMaster bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isMaster == s.master {
		return
	}
	s.master = isMaster
	if isMaster {
		// Told master again as they reconnect: nothing to wait for.
		clear(s.orphans)
	}
	for c := range s.conns {
		if c.ready {
			c.trigger(isMaster)
		}
	}
}

// Holding reports whether some driver may still act as master: one told so
// that has not answered trigger(false) longer than the grace ago, or one
// that went away while told so and has not come back to answer. It may be
// called with the caller's lock held.
func (s *Server) Holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.orphans) > 0 {
		return true
	}
	for c := range s.conns {
		if c.holding {
			return true
		}
	}
	return false
}

// Drivers lists the connected drivers, by id.
func (s *Server) Drivers() []Info {
	s.mu.Lock()
	out := make([]Info, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, Info{ID: c.id, Remote: c.remote, ToldMaster: c.toldMaster, Holding: c.holding, Since: c.since})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Remote < out[j].Remote
	})
	return out
}

// Close disconnects every driver and accepts no more. The drivers keep
// their last state, as the protocol has them do.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
}

// refused logs a refused or closed connection once per burst of its kind.
func (s *Server) refused(remote string, r *refusal) {
	if n, first := s.burst.first(r.kind, time.Now()); first {
		args := []any{"remote", remote, "reason", r.msg}
		if n > 0 {
			args = append(args, "suppressed_since_last", n)
		}
		s.log.Warn("2018 driver connection refused or closed (further ones like it are not logged for 30s)", args...)
	}
}

// Disabled returns the handler for the root path when these drivers are
// not accepted: it refuses the upgrade, saying how to allow them, and logs
// once per burst.
func Disabled(log *slog.Logger) http.Handler {
	s := &Server{log: log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rf := &refusal{kind: "disabled", code: http.StatusForbidden,
			msg: "this node does not accept 2018 (clustd-lib) drivers; set http.seed_drivers: true in its configuration to allow them"}
		s.refused(r.RemoteAddr, rf)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(rf.code)
		b, _ := json.Marshal(map[string]string{"error": rf.msg})
		w.Write(append(b, '\n'))
	})
}

// burst tells the first of a burst of like events from the rest.
type burst struct {
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

// first reports whether an event of kind at now starts a burst, and how
// many were suppressed in the burst before.
func (b *burst) first(kind string, now time.Time) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last, b.suppressed = map[string]time.Time{}, map[string]int{}
	}
	prev, ok := b.last[kind]
	b.last[kind] = now
	if ok && now.Sub(prev) <= burstQuiet {
		b.suppressed[kind]++
		return 0, false
	}
	n := b.suppressed[kind]
	b.suppressed[kind] = 0
	return n, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
