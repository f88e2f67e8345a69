package seeddrv

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const testSecret = "the drivers secret of this test, long enough"

// client is a minimal driver built on this package's framing; the
// independent client of the protocol description is in node's tests.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	keys counters
}

func dial(t *testing.T, url, id string) *client {
	t.Helper()
	c := &client{t: t, keys: counters{secret: []byte(testSecret)}}
	h := http.Header{}
	h.Set(MetadataHeader, base64.StdEncoding.EncodeToString(c.keys.seal([]byte(`{"type":"driver"}`))))
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	c.ws = ws
	t.Cleanup(func() { ws.Close() })
	hello := c.read()
	json.Unmarshal(hello["hello_world"], &c.keys.ticket)
	c.write(map[string]any{"hello_world": c.keys.ticket, "id": id})
	c.keys.inTicket, c.keys.outTicket = true, true
	return c
}

func (c *client) read() map[string]json.RawMessage {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	msg, err := c.keys.open(b)
	if err != nil {
		c.t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *client) write(v any) {
	b, _ := json.Marshal(v)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, c.keys.seal(b)); err != nil {
		c.t.Fatal(err)
	}
}

// trigger reads a trigger request, checks its isMaster and answers it.
func (c *client) trigger(want bool) time.Time {
	c.t.Helper()
	m := c.read()
	var p struct {
		IsMaster bool `json:"isMaster"`
	}
	var method string
	json.Unmarshal(m["method"], &method)
	json.Unmarshal(m["params"], &p)
	if method != "trigger" || p.IsMaster != want {
		c.t.Fatalf("got %v, want trigger(%v)", m, want)
	}
	c.write(map[string]any{"res_id": m["req_id"], "data": map[string]any{}})
	return time.Now()
}

func newTestServer(t *testing.T, grace time.Duration) (*Server, *httptest.Server, chan struct{}) {
	released := make(chan struct{}, 16)
	s := New(Options{Secret: []byte(testSecret), Node: "n1", URL: "ws://127.0.0.1:3001", Grace: grace,
		Released: func() { released <- struct{}{} }})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, hs, released
}

func waitReleased(t *testing.T, s *Server, released chan struct{}) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for s.Holding() {
		select {
		case <-released:
		case <-deadline:
			t.Fatal("the driver was never released")
		}
	}
}

func TestGraceAfterAnswer(t *testing.T) {
	const grace = 300 * time.Millisecond
	s, hs, released := newTestServer(t, grace)
	s.SetMaster(true)
	c := dial(t, hs.URL, "shell-1")
	c.trigger(true)
	if !s.Holding() {
		t.Fatal("a driver told it is master does not hold the role")
	}
	s.SetMaster(false)
	if !s.Holding() {
		t.Fatal("released before answering trigger(false)")
	}
	answered := c.trigger(false)
	waitReleased(t, s, released)
	if d := time.Since(answered); d < grace {
		t.Fatalf("released %v after the answer; the grace is %v", d, grace)
	}
	if ds := s.Drivers(); len(ds) != 1 || ds[0].ID != "shell-1" || ds[0].ToldMaster || ds[0].Holding {
		t.Fatalf("Drivers() = %+v", ds)
	}
}

func TestMasterAgainCancelsTheGrace(t *testing.T) {
	s, hs, _ := newTestServer(t, 200*time.Millisecond)
	s.SetMaster(true)
	c := dial(t, hs.URL, "shell-1")
	c.trigger(true)
	s.SetMaster(false)
	c.trigger(false)
	s.SetMaster(true)
	c.trigger(true)
	time.Sleep(400 * time.Millisecond) // past the grace of the earlier answer
	if !s.Holding() {
		t.Fatal("the grace of an earlier trigger(false) released a driver told it is master again")
	}
}

func TestDriverGoneWhileMasterHoldsUntilItAnswers(t *testing.T) {
	s, hs, released := newTestServer(t, 100*time.Millisecond)
	s.SetMaster(true)
	c := dial(t, hs.URL, "shell-1")
	c.trigger(true)
	c.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Drivers()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server kept a closed connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.SetMaster(false)
	if !s.Holding() {
		t.Fatal("a driver gone while told it is master no longer counts as holding")
	}
	// Back, told it is not master, and answering: released after the grace.
	c2 := dial(t, hs.URL, "shell-1")
	c2.trigger(false)
	waitReleased(t, s, released)
}

func TestFollowerDriverNeverHolds(t *testing.T) {
	s, hs, _ := newTestServer(t, time.Second)
	c := dial(t, hs.URL, "shell-1")
	c.trigger(false)
	if s.Holding() {
		t.Fatal("a driver never told it is master holds the role")
	}
}

func TestBurst(t *testing.T) {
	var b burst
	t0 := time.Unix(1000, 0)
	if _, first := b.first("secret", t0); !first {
		t.Fatal("the first event is not first of its burst")
	}
	for i := 1; i <= 3; i++ {
		if _, first := b.first("secret", t0.Add(time.Duration(i)*5*time.Second)); first {
			t.Fatalf("event %d, 5 s after the previous, starts a burst", i)
		}
	}
	if _, first := b.first("frame", t0.Add(16*time.Second)); !first {
		t.Fatal("another kind is part of the same burst")
	}
	n, first := b.first("secret", t0.Add(15*time.Second+burstQuiet+time.Second))
	if !first || n != 3 {
		t.Fatalf("after a quiet spell: first %v, suppressed %d; want true, 3", first, n)
	}
}

func FuzzMetadata(f *testing.F) {
	k := counters{secret: []byte(testSecret)}
	f.Add(base64.StdEncoding.EncodeToString(k.seal([]byte(`{"type":"driver"}`))))
	f.Add("")
	f.Add("not base64!")
	s := New(Options{Secret: []byte(testSecret)})
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:5000"
		r.Header.Set(MetadataHeader, header)
		keys := counters{secret: []byte(testSecret)}
		if rf := s.admit(r, &keys); rf == nil && keys.in != 1 {
			t.Fatal("admitted without reading the header")
		}
	})
}

func TestAdmit(t *testing.T) {
	s := New(Options{Secret: []byte(testSecret)})
	header := func(secret, typ string) string {
		k := counters{secret: []byte(secret)}
		return base64.StdEncoding.EncodeToString(k.seal([]byte(`{"type":"` + typ + `"}`)))
	}
	for _, tc := range []struct {
		name, remote, header, kind string
	}{
		{"driver", "127.0.0.1:5000", header(testSecret, "driver"), ""},
		{"driver over IPv6 loopback", "[::1]:5000", header(testSecret, "driver"), ""},
		{"from another machine", "10.0.0.2:5000", header(testSecret, "driver"), "remote"},
		{"wrong secret", "127.0.0.1:5000", header("another secret", "driver"), "secret"},
		{"a 2018 daemon", "127.0.0.1:5000", header(testSecret, "cluster"), "cluster"},
		{"unknown type", "127.0.0.1:5000", header(testSecret, "printer"), "type"},
		{"not base64", "127.0.0.1:5000", "%%%", "malformed"},
		{"not JSON", "127.0.0.1:5000", base64.StdEncoding.EncodeToString((&counters{secret: []byte(testSecret)}).seal([]byte("driver"))), "malformed"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set(MetadataHeader, tc.header)
		rf := s.admit(r, &counters{secret: []byte(testSecret)})
		switch {
		case tc.kind == "" && rf != nil:
			t.Errorf("%s: refused: %v", tc.name, rf)
		case tc.kind != "" && (rf == nil || rf.kind != tc.kind):
			t.Errorf("%s: %+v, want a refusal of kind %q", tc.name, rf, tc.kind)
		}
	}
}

func TestRefusalsLoggedOncePerBurst(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	auth := 0
	s := New(Options{Secret: []byte(testSecret), Log: log, AuthFailed: func() { auth++ }})
	k := counters{secret: []byte("another secret")}
	header := base64.StdEncoding.EncodeToString(k.seal([]byte(`{"type":"driver"}`)))
	for range 5 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:5000"
		r.Header.Set(MetadataHeader, header)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("wrong secret: code %d", rec.Code)
		}
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Errorf("%d log lines for a burst of 5 refusals, want 1:\n%s", n, buf.String())
	}
	if auth != 5 {
		t.Errorf("%d authentication failures counted, want 5", auth)
	}

	buf.Reset()
	d := Disabled(log)
	for range 3 {
		r := httptest.NewRequest("GET", "/", nil)
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, r)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "http.seed_drivers: true") {
			t.Fatalf("disabled: %d %s", rec.Code, rec.Body)
		}
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Errorf("%d log lines for 3 refusals while disabled, want 1:\n%s", n, buf.String())
	}
}

// A driver that falls silent (no message, ping or pong) is cut off; told it
// is master, it still holds the role, since it may still be acting.
func TestSilentDriverIsCutOff(t *testing.T) {
	s, hs, _ := newTestServer(t, 100*time.Millisecond)
	s.silence = 300 * time.Millisecond
	s.SetMaster(true)
	c := dial(t, hs.URL, "shell-1")
	c.trigger(true)
	// The client stops reading, so the server's pings go unanswered.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Drivers()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a silent driver was never cut off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.SetMaster(false)
	if !s.Holding() {
		t.Fatal("a driver cut off while told it is master no longer holds the role")
	}
	s.SetMaster(true)
	if s.Holding() {
		t.Fatal("master again: nothing should hold a hand-over that is not happening")
	}
}
