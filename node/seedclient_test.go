package node_test

// A client of the 2018 driver protocol, written from its description
// (the clustd-lib library as its drivers use it), independently of the
// daemon's implementation in node/seeddrv: if both misread the protocol the
// same way, these tests could not tell, so nothing is shared.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The library's timing.
const (
	seedPingEvery  = 1500 * time.Millisecond
	seedDeadAfter  = 3 * time.Second
	seedHandshake  = 5 * time.Second
	seedReadBound  = 10 * time.Second // the tests' bound on waiting for a message
	seedTriggerAck = `{}`
)

// seedKey is the first 16 bytes of SHA-256(secret || counter [|| ticket]).
func seedKey(secret []byte, counter, ticket uint32, initialized bool) []byte {
	b := append([]byte(nil), secret...)
	b = binary.BigEndian.AppendUint32(b, counter)
	if initialized {
		b = binary.BigEndian.AppendUint32(b, ticket)
	}
	sum := sha256.Sum256(b)
	return sum[:16]
}

func seedAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

// seedEncrypt returns IV || tag || ciphertext.
func seedEncrypt(key, msg []byte) []byte {
	iv := make([]byte, 12)
	rand.Read(iv)
	sealed := seedAEAD(key).Seal(nil, iv, msg, nil)
	ct, tag := sealed[:len(msg)], sealed[len(msg):]
	out := append(iv, tag...)
	return append(out, ct...)
}

func seedDecrypt(key, frame []byte) ([]byte, error) {
	if len(frame) < 28 {
		return nil, errors.New("frame too short")
	}
	iv, tag, ct := frame[:12], frame[12:28], frame[28:]
	return seedAEAD(key).Open(nil, iv, append(append([]byte(nil), ct...), tag...), nil)
}

// seedClient is one driver connection, as the library makes it.
type seedClient struct {
	t      *testing.T
	ws     *websocket.Conn
	secret []byte
	id     string

	// The reader's: incoming counter; the writer's (under mu): outgoing.
	in, out     uint32
	ticket      uint32
	initialized bool
	mu          sync.Mutex
	sent        [][]byte // every frame sent, for replays

	heardMu sync.Mutex
	heard   time.Time
}

// dialSeed opens a connection with the metadata header for kind
// ("driver" for a driver), encrypted under secret.
func dialSeed(t *testing.T, addr string, secret []byte, kind string) (*seedClient, *http.Response, error) {
	t.Helper()
	c := &seedClient{t: t, secret: secret, id: fmt.Sprintf("shell-%d", randUint32())}
	meta, _ := json.Marshal(map[string]string{"type": kind})
	c.out++
	h := http.Header{}
	h.Set("metadata", base64.StdEncoding.EncodeToString(seedEncrypt(seedKey(secret, c.out, 0, false), meta)))
	d := websocket.Dialer{HandshakeTimeout: seedHandshake}
	ws, resp, err := d.Dial("ws://"+addr, h)
	if err != nil {
		return nil, resp, err
	}
	c.ws = ws
	c.touch()
	ws.SetPongHandler(func(string) error { c.touch(); return nil })
	ws.SetPingHandler(func(data string) error {
		c.touch()
		c.mu.Lock()
		defer c.mu.Unlock()
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	t.Cleanup(func() { ws.Close() })
	return c, resp, nil
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func (c *seedClient) touch() {
	c.heardMu.Lock()
	c.heard = time.Now()
	c.heardMu.Unlock()
}

func (c *seedClient) lastHeard() time.Time {
	c.heardMu.Lock()
	defer c.heardMu.Unlock()
	return c.heard
}

// sendRaw sends a frame as is.
func (c *seedClient) sendRaw(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.BinaryMessage, frame)
}

// send encrypts v with the next outgoing counter.
func (c *seedClient) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.out++
	frame := seedEncrypt(seedKey(c.secret, c.out, c.ticket, c.initialized), b)
	c.sent = append(c.sent, frame)
	c.mu.Unlock()
	return c.sendRaw(frame)
}

// next reads and decrypts the next message.
func (c *seedClient) next() (map[string]json.RawMessage, error) {
	c.ws.SetReadDeadline(time.Now().Add(seedReadBound))
	t, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	c.touch()
	if t != websocket.BinaryMessage {
		return nil, fmt.Errorf("a message of type %d, not binary", t)
	}
	c.in++
	msg, err := seedDecrypt(seedKey(c.secret, c.in, c.ticket, c.initialized), b)
	if err != nil {
		return nil, fmt.Errorf("decrypting message %d: %w", c.in, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, fmt.Errorf("message %d is not a JSON object: %s", c.in, msg)
	}
	return m, nil
}

// handshake reads the daemon's hello and answers with the driver's own.
func (c *seedClient) handshake() (daemonID string, err error) {
	m, err := c.readHello()
	if err != nil {
		return "", err
	}
	json.Unmarshal(m["id"], &daemonID)
	return daemonID, c.sendHello()
}

func (c *seedClient) readHello() (map[string]json.RawMessage, error) {
	m, err := c.next()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(m["hello_world"], &c.ticket); err != nil || c.ticket == 0 {
		return nil, fmt.Errorf("the daemon's first message is no hello: %v", m)
	}
	return m, nil
}

func (c *seedClient) sendHello() error {
	if err := c.send(map[string]any{"hello_world": c.ticket, "id": c.id}); err != nil {
		return err
	}
	c.mu.Lock()
	c.initialized = true
	c.mu.Unlock()
	return nil
}

// request is a request the daemon sent.
type request struct {
	ID       int
	Method   string
	IsMaster bool
}

// nextRequest reads until a request arrives and returns it unanswered.
func (c *seedClient) nextRequest() (request, error) {
	for {
		m, err := c.next()
		if err != nil {
			return request{}, err
		}
		if m["method"] == nil {
			continue
		}
		var r request
		var p struct {
			IsMaster bool `json:"isMaster"`
		}
		json.Unmarshal(m["req_id"], &r.ID)
		json.Unmarshal(m["method"], &r.Method)
		json.Unmarshal(m["params"], &p)
		r.IsMaster = p.IsMaster
		return r, nil
	}
}

// answer answers a request as the library does: trigger with empty data,
// anything else with its error.
func (c *seedClient) answer(r request) error {
	if r.Method == "trigger" {
		return c.send(map[string]any{"res_id": r.ID, "data": json.RawMessage(seedTriggerAck)})
	}
	return c.send(map[string]any{"res_id": r.ID, "error": "unrecognized method for this machine"})
}

// keepAlive pings every 1.5 s and closes the connection once nothing was
// heard for more than 3 s, as the library does. It returns a channel that
// receives how long the daemon had been silent when it gave up.
func (c *seedClient) keepAlive(stop <-chan struct{}) <-chan time.Duration {
	dead := make(chan time.Duration, 1)
	go func() {
		tick := time.NewTicker(seedPingEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if silent := now.Sub(c.lastHeard()); silent > seedDeadAfter {
					c.ws.Close()
					dead <- silent
					return
				}
				c.mu.Lock()
				c.ws.WriteControl(websocket.PingMessage, nil, now.Add(time.Second))
				c.mu.Unlock()
			}
		}
	}()
	return dead
}

// waitClosed reads until the daemon closes the connection, failing the test
// if it has not within the bound.
func (c *seedClient) waitClosed(what string) {
	c.t.Helper()
	for {
		c.ws.SetReadDeadline(time.Now().Add(seedReadBound))
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("%s: the daemon did not close the connection within %v", what, seedReadBound)
		}
		return
	}
}

// serve answers requests until the connection ends, as a driver does; its
// reads are also what lets pings and pongs through.
func (c *seedClient) serve() {
	for {
		r, err := c.nextRequest()
		if err != nil {
			return
		}
		if c.answer(r) != nil {
			return
		}
	}
}
