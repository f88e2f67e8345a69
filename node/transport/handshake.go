package transport

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Hello is what each daemon tells the other about itself at the start of a
// session.
type Hello struct {
	// Node is the daemon's node id, 1 to 255 bytes.
	Node string
	// ClusterHash is a digest of the configuration that must agree across
	// the cluster (member list, timing). Two daemons whose hashes differ
	// refuse to talk.
	ClusterHash [32]byte
	// Instance is drawn at random each time a daemon starts. It tells a
	// restarted daemon from a second one started with a copy of the same
	// configuration: two live instances claiming one node id must not
	// both be heard, or the member could vote twice in one term.
	Instance [InstanceSize]byte
	// Version is the handshake version. In the Hello given to Client it
	// is the one to speak, 0 meaning the newest (2); in a peer's Hello it
	// is the one the peer spoke. Version 1, spoken by older daemons,
	// carries no instance id (Instance is then zero). A server answers in
	// the client's version.
	Version int
}

// Versions of the handshake.
const (
	// V1 is the handshake without the instance id.
	V1 = 1
	// V2 added the instance id to the hello.
	V2 = 2
)

// InstanceSize is the length of Hello.Instance.
const InstanceSize = 16

// NewInstance returns a fresh random instance id.
func NewInstance() [InstanceSize]byte {
	var id [InstanceSize]byte
	rand.Read(id[:])
	return id
}

const (
	// version is the newest handshake version, the one a client speaks
	// unless told otherwise.
	version = V2

	typeClientHello = 1
	typeServerHello = 2

	nonceSize = 32
	proofSize = sha256.Size
	// maxNodeLen is what fits the one-byte length field of a hello.
	maxNodeLen = 255
	// helloPrefix is a hello's magic, version and type; helloFixed is a
	// version 2 hello up to and including its node length byte, and
	// helloFixedV1 a version 1 one.
	helloPrefix  = len(magic) + 1 + 1
	helloFixed   = helloPrefix + nonceSize + 32 + InstanceSize + 1
	helloFixedV1 = helloFixed - InstanceSize

	statusOK              = 0
	statusUnknownPeer     = 1
	statusClusterMismatch = 2
	statusDuplicate       = 3

	labelClientProof = "clustd transport v1 client proof"
	labelServerProof = "clustd transport v1 server proof"
	labelClientKey   = "clustd transport v1 client to server"
	labelServerKey   = "clustd transport v1 server to client"
)

const magic = "clsd"

// Client runs the handshake on conn as the side that dialled it, expecting
// the server to be node expectPeer (an empty expectPeer accepts any node
// id). The deadline of ctx bounds the handshake and cancelling ctx aborts
// it. On error conn is closed and the error matches ErrAuth, ErrUnknownPeer,
// ErrProtocol, ErrPeerClosed, *ClusterMismatchError, a context error or a
// network error.
func Client(ctx context.Context, conn net.Conn, secret []byte, self Hello, expectPeer string) (*Session, error) {
	return clientHandshake(ctx, conn, secret, self, expectPeer, rand.Reader)
}

// Server runs the handshake on conn as the side that accepted it. allowed
// is asked, once the client has proved the secret, whether its node id may
// connect; a nil allowed accepts every node. The deadline of ctx bounds the
// handshake and cancelling ctx aborts it. On error conn is closed and the
// error matches ErrAuth, ErrUnknownPeer, ErrProtocol, ErrPeerClosed,
// *ClusterMismatchError, a context error or a network error.
func Server(ctx context.Context, conn net.Conn, secret []byte, self Hello, allowed func(peer string) bool) (*Session, error) {
	var admit func(Hello) error
	if allowed != nil {
		admit = func(h Hello) error {
			if !allowed(h.Node) {
				return fmt.Errorf("%w: node %q is not allowed to connect", ErrUnknownPeer, h.Node)
			}
			return nil
		}
	}
	return serverHandshake(ctx, conn, secret, self, admit, rand.Reader)
}

// ServerAdmit is Server with a richer check: admit is asked, once the
// client has proved the secret, whether its hello (node id and instance)
// may connect. An error matching ErrUnknownPeer or ErrDuplicate is reported
// to the client as such; any other error refuses it as an unknown peer. A
// nil admit accepts every client.
func ServerAdmit(ctx context.Context, conn net.Conn, secret []byte, self Hello, admit func(peer Hello) error) (*Session, error) {
	return serverHandshake(ctx, conn, secret, self, admit, rand.Reader)
}

func clientHandshake(ctx context.Context, conn net.Conn, secret []byte, self Hello, expectPeer string, rnd io.Reader) (*Session, error) {
	return runHandshake(ctx, conn, secret, self, rnd, func(h *handshake) (*Session, error) {
		if h.ver == 0 {
			h.ver = version
		}
		m1, err := h.writeHello(typeClientHello)
		if err != nil {
			return nil, err
		}
		m2, peer, peerNonce, err := h.readHello(typeServerHello)
		// An older daemon hangs up on a version it does not speak; the
		// bytes of our hello it left unread make that a reset.
		if errors.Is(err, ErrPeerClosed) || errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("%w: %w", ErrHelloRefused, err)
		}
		if err != nil {
			return nil, err
		}
		// Refuse before proving anything: a wrong server gets no proof.
		if peerNonce == h.nonce {
			return nil, fmt.Errorf("%w: peer echoed our challenge", ErrAuth)
		}
		if expectPeer != "" && peer.Node != expectPeer {
			return nil, fmt.Errorf("%w: dialled %q but the peer says it is %q", ErrUnknownPeer, expectPeer, peer.Node)
		}
		k, err := deriveKeys(secret, h.nonce[:], peerNonce[:], m1, m2)
		if err != nil {
			return nil, err
		}
		if err := h.write(k.clientProof()); err != nil {
			return nil, err
		}
		var m4 [1 + proofSize]byte
		if err := h.read(m4[:], "verdict"); err != nil {
			if errors.Is(err, ErrPeerClosed) {
				return nil, fmt.Errorf("%w: %q hung up on our proof; do both nodes have the same secret?", ErrPeerClosed, peer.Node)
			}
			return nil, err
		}
		status := m4[0]
		if !hmac.Equal(m4[1:], k.serverProof(status)) {
			return nil, fmt.Errorf("%w: peer %q sent a wrong proof", ErrAuth, peer.Node)
		}
		// The status byte is trustworthy from here on. The server checks
		// its allow list before the hashes, so follow the same order and
		// both logs name the same reason.
		if status == statusUnknownPeer {
			return nil, fmt.Errorf("%w: peer %q does not allow node %q", ErrUnknownPeer, peer.Node, self.Node)
		}
		if status == statusDuplicate {
			return nil, fmt.Errorf("%w: peer %q is already connected to another live instance of node %q", ErrDuplicate, peer.Node, self.Node)
		}
		if peer.ClusterHash != self.ClusterHash {
			return nil, &ClusterMismatchError{Local: self.Node, Peer: peer.Node}
		}
		if status != statusOK {
			return nil, fmt.Errorf("%w: peer %q sent status %d", ErrProtocol, peer.Node, status)
		}
		return newSession(conn, peer, k.clientKey, k.serverKey)
	})
}

func serverHandshake(ctx context.Context, conn net.Conn, secret []byte, self Hello, admit func(Hello) error, rnd io.Reader) (*Session, error) {
	return runHandshake(ctx, conn, secret, self, rnd, func(h *handshake) (*Session, error) {
		m1, peer, peerNonce, err := h.readHello(typeClientHello)
		if err != nil {
			return nil, err
		}
		m2, err := h.writeHello(typeServerHello)
		if err != nil {
			return nil, err
		}
		k, err := deriveKeys(secret, peerNonce[:], h.nonce[:], m1, m2)
		if err != nil {
			return nil, err
		}
		var proof [proofSize]byte
		if err := h.read(proof[:], "proof"); err != nil {
			return nil, err
		}
		if !hmac.Equal(proof[:], k.clientProof()) {
			// Nothing is sent back: a verdict would be an oracle for
			// whoever is guessing the secret.
			return nil, fmt.Errorf("%w: peer claiming to be %q sent a wrong proof; do both nodes have the same secret?", ErrAuth, peer.Node)
		}
		// The client is a cluster member now, so it may learn why it is
		// refused; that spares both operators a guessing game.
		var status byte = statusOK
		var refusal error
		if admit != nil {
			refusal = admit(peer)
		}
		switch {
		case refusal != nil && errors.Is(refusal, ErrDuplicate):
			status = statusDuplicate
		case refusal != nil:
			status = statusUnknownPeer
			if !errors.Is(refusal, ErrUnknownPeer) {
				refusal = fmt.Errorf("%w: %w", ErrUnknownPeer, refusal)
			}
		case peer.ClusterHash != self.ClusterHash:
			status = statusClusterMismatch
			refusal = &ClusterMismatchError{Local: self.Node, Peer: peer.Node}
		}
		if err := h.write(append([]byte{status}, k.serverProof(status)...)); err != nil {
			if refusal != nil {
				return nil, refusal
			}
			return nil, err
		}
		if refusal != nil {
			return nil, refusal
		}
		return newSession(conn, peer, k.serverKey, k.clientKey)
	})
}

// handshake carries what both roles need while the four messages are
// exchanged.
type handshake struct {
	ctx   context.Context
	conn  net.Conn
	self  Hello
	nonce [nonceSize]byte
	// ver is the version spoken: the client's choice; on the server,
	// 0 until the client's hello sets it.
	ver byte
}

// runHandshake owns conn for the duration of the handshake: it applies ctx
// to conn, closes conn on failure and clears the deadline on success, so
// that a session is never cut off later by the handshake's deadline.
func runHandshake(ctx context.Context, conn net.Conn, secret []byte, self Hello, rnd io.Reader, run func(*handshake) (*Session, error)) (s *Session, err error) {
	if err := checkLocal(secret, self); err != nil {
		conn.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: handshake: %w", err)
	}
	h := &handshake{ctx: ctx, conn: conn, self: self}
	switch self.Version {
	case 0, V1, V2:
		// 0: a client speaks the newest, a server whatever the client does.
		h.ver = byte(self.Version)
	default:
		conn.Close()
		return nil, fmt.Errorf("transport: unknown handshake version %d", self.Version)
	}
	if _, err := io.ReadFull(rnd, h.nonce[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: reading random nonce: %w", err)
	}
	deadline, _ := ctx.Deadline() // zero when there is none, which clears any old one
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: setting handshake deadline: %w", err)
	}
	// A cancellation without a deadline must still unblock reads and
	// writes; a deadline in the past does that for any net.Conn.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	s, err = run(h)
	if !stop() && err == nil {
		// The cancellation raced with success and may have poisoned the
		// deadline after we would clear it: give up rather than hand out
		// a session that will fail at random.
		err = fmt.Errorf("transport: handshake: %w", context.Cause(ctx))
	}
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func checkLocal(secret []byte, self Hello) error {
	if len(secret) == 0 {
		return errors.New("transport: empty cluster secret")
	}
	if len(self.Node) == 0 || len(self.Node) > maxNodeLen {
		return fmt.Errorf("transport: node id %q: must be 1 to %d bytes", self.Node, maxNodeLen)
	}
	return nil
}

func (h *handshake) writeHello(typ byte) ([]byte, error) {
	m := make([]byte, 0, helloFixed+len(h.self.Node))
	m = append(m, magic...)
	m = append(m, h.ver, typ)
	m = append(m, h.nonce[:]...)
	m = append(m, h.self.ClusterHash[:]...)
	if h.ver >= V2 {
		m = append(m, h.self.Instance[:]...)
	}
	m = append(m, byte(len(h.self.Node)))
	m = append(m, h.self.Node...)
	return m, h.write(m)
}

// readHello reads and checks a hello of type typ and returns its exact bytes
// for the transcript.
// A server takes either version and answers in it; a client wants its own.
func (h *handshake) readHello(typ byte) (msg []byte, peer Hello, nonce [nonceSize]byte, err error) {
	msg = make([]byte, helloPrefix, helloFixed+maxNodeLen)
	if err = h.read(msg, "hello"); err != nil {
		return nil, Hello{}, nonce, err
	}
	if err := checkPrefix(msg, typ, h.ver); err != nil {
		return nil, Hello{}, nonce, err
	}
	if typ == typeClientHello {
		h.ver = msg[len(magic)]
	}
	fixed := helloFixed
	if h.ver == V1 {
		fixed = helloFixedV1
	}
	msg = msg[:fixed]
	if err = h.read(msg[helloPrefix:], "hello"); err != nil {
		if errors.Is(err, ErrPeerClosed) {
			err = fmt.Errorf("%w: truncated hello", ErrProtocol)
		}
		return nil, Hello{}, nonce, err
	}
	peer, nonce, n, err := parseHelloFixed(msg, typ)
	if err != nil {
		return nil, Hello{}, nonce, err
	}
	msg = msg[:fixed+n]
	if err = h.read(msg[fixed:], "hello"); err != nil {
		if errors.Is(err, ErrPeerClosed) {
			err = fmt.Errorf("%w: truncated hello", ErrProtocol)
		}
		return nil, Hello{}, nonce, err
	}
	peer.Node = string(msg[fixed:])
	return msg, peer, nonce, nil
}

// checkPrefix checks a hello's magic, version and type. want is the version
// the reader speaks, 0 for either (a server before the client's hello).
func checkPrefix(b []byte, typ, want byte) error {
	if string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: not a clustd peer (bad magic %q)", ErrProtocol, b[:len(magic)])
	}
	v := b[len(magic)]
	switch {
	case want != 0 && v != want:
		return fmt.Errorf("%w: unsupported version %d (want %d)", ErrProtocol, v, want)
	case v != V1 && v != V2:
		return fmt.Errorf("%w: unsupported version %d (want %d or %d)", ErrProtocol, v, V1, V2)
	}
	if b[len(magic)+1] != typ {
		return fmt.Errorf("%w: hello of type %d, want %d", ErrProtocol, b[len(magic)+1], typ)
	}
	return nil
}

// parseHelloFixed checks the fixed part of a hello (of either version, as
// its length says) and returns the length of the node id that follows it.
func parseHelloFixed(b []byte, typ byte) (peer Hello, nonce [nonceSize]byte, nodeLen int, err error) {
	if err := checkPrefix(b, typ, 0); err != nil {
		return peer, nonce, 0, err
	}
	peer.Version = int(b[len(magic)])
	b = b[helloPrefix:]
	copy(nonce[:], b[:nonceSize])
	b = b[nonceSize:]
	copy(peer.ClusterHash[:], b[:32])
	b = b[32:]
	if peer.Version >= V2 {
		copy(peer.Instance[:], b[:InstanceSize])
		b = b[InstanceSize:]
	}
	nodeLen = int(b[0])
	if nodeLen == 0 {
		return peer, nonce, 0, fmt.Errorf("%w: empty node id", ErrProtocol)
	}
	return peer, nonce, nodeLen, nil
}

func (h *handshake) write(b []byte) error {
	if _, err := h.conn.Write(b); err != nil {
		return h.ioError(err)
	}
	return nil
}

// read fills b. A close before the first byte is ErrPeerClosed because that
// is how a peer refuses; a close in the middle of a message is malformed.
func (h *handshake) read(b []byte, what string) error {
	_, err := io.ReadFull(h.conn, b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w (waiting for its %s)", ErrPeerClosed, what)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated %s", ErrProtocol, what)
	}
	return h.ioError(err)
}

// ioError reports a context that ended as such, because the deadline error
// the conn returns does not say that the caller's budget ran out.
func (h *handshake) ioError(err error) error {
	if cerr := h.ctx.Err(); cerr != nil {
		return fmt.Errorf("transport: handshake: %w (%w)", cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The conn's timer can fire a moment before the context's.
		if _, ok := h.ctx.Deadline(); ok {
			return fmt.Errorf("transport: handshake: %w (%w)", context.DeadlineExceeded, err)
		}
	}
	return fmt.Errorf("transport: handshake: %w", err)
}

// keys is everything derived from the secret and the transcript.
type keys struct {
	transcript           [sha256.Size]byte
	clientProofKey       []byte
	serverProofKey       []byte
	clientKey, serverKey []byte
}

func deriveKeys(secret, clientNonce, serverNonce, m1, m2 []byte) (*keys, error) {
	salt := make([]byte, 0, 2*nonceSize)
	salt = append(append(salt, clientNonce...), serverNonce...)
	prk, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return nil, fmt.Errorf("transport: deriving keys: %w", err)
	}
	th := sha256.New()
	th.Write(m1)
	th.Write(m2)
	k := &keys{}
	th.Sum(k.transcript[:0])
	for _, d := range []struct {
		dst  *[]byte
		info string
	}{
		{&k.clientProofKey, labelClientProof},
		{&k.serverProofKey, labelServerProof},
		{&k.clientKey, labelClientKey + string(k.transcript[:])},
		{&k.serverKey, labelServerKey + string(k.transcript[:])},
	} {
		if *d.dst, err = hkdf.Expand(sha256.New, prk, d.info, 32); err != nil {
			return nil, fmt.Errorf("transport: deriving keys: %w", err)
		}
	}
	return k, nil
}

func (k *keys) clientProof() []byte {
	m := hmac.New(sha256.New, k.clientProofKey)
	m.Write([]byte("client"))
	m.Write(k.transcript[:])
	return m.Sum(nil)
}

func (k *keys) serverProof(status byte) []byte {
	m := hmac.New(sha256.New, k.serverProofKey)
	m.Write([]byte("server"))
	m.Write(k.transcript[:])
	m.Write([]byte{status})
	return m.Sum(nil)
}
