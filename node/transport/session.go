package transport

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clustd/clustd/node/rawio"
)

// MaxFrame is the largest payload one frame may carry. It bounds what a
// peer can make the receiver allocate for a single frame.
const MaxFrame = 64 << 10

const (
	lenSize      = 4
	tagSize      = 16
	gcmNonceSize = 12
	// maxSealed is the largest length prefix a receiver accepts.
	maxSealed = MaxFrame + tagSize
	// readBufferSize lets a small frame arrive in one read rather than
	// two (prefix, then body).
	readBufferSize = 4 << 10
)

// Session is an authenticated, encrypted stream of frames to one peer.
// Send may be called from several goroutines at once; Recv must be called
// from one goroutine at a time.
type Session struct {
	conn net.Conn
	peer Hello
	r    *bufio.Reader
	in   opener

	wmu  sync.Mutex
	out  sealer
	wbuf []byte
	// owed is the rest of a frame TrySend sealed but could not write
	// whole: the stream must carry it before anything else.
	owed         []byte
	raw          syscall.RawConn // nil when conn has no file descriptor
	werr         error
	deadlineSet  bool
	writeTimeout atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

func newSession(conn net.Conn, peer Hello, sendKey, recvKey []byte) (*Session, error) {
	out, err := newSealer(sendKey)
	if err != nil {
		return nil, err
	}
	in, err := newOpener(recvKey)
	if err != nil {
		return nil, err
	}
	s := &Session{
		// Plain reads and writes as raw system calls, TrySend with the
		// descriptor itself: see rawio for why.
		conn: rawio.Wrap(conn),
		peer: peer,
		in:   *in,
		out:  *out,
	}
	s.r = bufio.NewReaderSize(s.conn, readBufferSize)
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s, nil
}

// Peer returns the hello the peer authenticated with.
func (s *Session) Peer() Hello { return s.peer }

// SetWriteTimeout bounds each later Send: a Send that cannot hand its frame
// to the connection within d fails, and the session with it. Zero, the
// default, means no bound. A peer that stops reading would otherwise block
// every sender for ever once the socket buffers fill.
func (s *Session) SetWriteTimeout(d time.Duration) { s.writeTimeout.Store(int64(d)) }

// Send seals payload into one frame and writes it. A payload longer than
// MaxFrame is refused with ErrFrameTooLarge and the session stays usable.
// Any write error is final: the peer may have received part of a frame, so
// every later Send returns the same error.
func (s *Session) Send(payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: %d payload bytes, at most %d", ErrFrameTooLarge, len(payload), MaxFrame)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.flushOwed(); err != nil {
		return err
	}
	if err := s.applyWriteTimeout(); err != nil {
		s.werr = fmt.Errorf("transport: send: %w", err)
		return s.werr
	}
	frame, err := s.out.seal(s.wbuf[:0], payload)
	if err != nil {
		s.werr = err
		return err
	}
	s.wbuf = frame
	if _, err := s.conn.Write(frame); err != nil {
		s.werr = fmt.Errorf("transport: send: %w", err)
		return s.werr
	}
	return nil
}

// TryResult says what TrySend did with a frame.
type TryResult int

const (
	// Busy: nothing was done, because another Send holds the connection,
	// bytes are still owed, or the connection has no file descriptor. The
	// payload is the caller's to send another way.
	Busy TryResult = iota
	// Sent: the whole frame was handed to the kernel.
	Sent
	// Owed: the frame was sealed but the kernel took only part of it, or
	// none. The rest is kept and goes out first on the next Send or Flush,
	// which someone who may block must call.
	Owed
)

// TrySend is Send for a caller that must never block, such as the goroutine
// that owns the election: it writes the frame only if nobody else is
// writing and the kernel takes it at once, which it does unless the peer has
// stopped reading for a long while. It saves handing each frame to a
// writer goroutine, a wake-up per frame. Errors are as for Send.
func (s *Session) TrySend(payload []byte) (TryResult, error) {
	if len(payload) > MaxFrame {
		return Busy, fmt.Errorf("%w: %d payload bytes, at most %d", ErrFrameTooLarge, len(payload), MaxFrame)
	}
	if s.raw == nil || !s.wmu.TryLock() {
		return Busy, nil
	}
	defer s.wmu.Unlock()
	if s.werr != nil {
		return Busy, s.werr
	}
	if len(s.owed) > 0 {
		return Busy, nil
	}
	frame, err := s.out.seal(s.wbuf[:0], payload)
	if err != nil {
		s.werr = err
		return Busy, err
	}
	s.wbuf = frame
	var n int
	var werr error
	if cerr := s.raw.Control(func(fd uintptr) { n, werr = rawio.TryWrite(fd, frame) }); cerr != nil {
		werr = cerr
	}
	if werr != nil {
		s.werr = fmt.Errorf("transport: send: %w", werr)
		return Owed, s.werr
	}
	if n == len(frame) {
		return Sent, nil
	}
	s.owed = append([]byte(nil), frame[n:]...)
	return Owed, nil
}

// Flush writes what TrySend left owed, blocking like Send.
func (s *Session) Flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.flushOwed()
}

// flushOwed must be called with wmu held.
func (s *Session) flushOwed() error {
	if s.werr != nil {
		return s.werr
	}
	if len(s.owed) == 0 {
		return nil
	}
	if err := s.applyWriteTimeout(); err != nil {
		s.werr = fmt.Errorf("transport: send: %w", err)
		return s.werr
	}
	if _, err := s.conn.Write(s.owed); err != nil {
		s.werr = fmt.Errorf("transport: send: %w", err)
		return s.werr
	}
	s.owed = nil
	return nil
}

// applyWriteTimeout must be called with wmu held.
func (s *Session) applyWriteTimeout() error {
	d := time.Duration(s.writeTimeout.Load())
	if d <= 0 {
		if !s.deadlineSet {
			return nil
		}
		s.deadlineSet = false
		return s.conn.SetWriteDeadline(time.Time{})
	}
	s.deadlineSet = true
	return s.conn.SetWriteDeadline(time.Now().Add(d))
}

// Recv returns the next payload. It returns io.EOF when the peer closed the
// connection between frames. Any error is final and is returned again by
// every later call: after a bad frame the two counters no longer agree, so
// nothing later could be opened anyway.
func (s *Session) Recv() ([]byte, error) { return s.in.read(s.r) }

// Close closes the connection, which also makes a blocked Recv or Send
// return. It is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.conn.Close() })
	return s.closeErr
}

// sealer is the sending half of one direction.
type sealer struct {
	aead  cipher.AEAD
	seq   uint64
	nonce [gcmNonceSize]byte
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return aead, nil
}

func newSealer(key []byte) (*sealer, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal appends the frame carrying payload to dst. The counter nonce is
// never reused under one key because keys are fresh for every session and
// the counter only goes up.
func (s *sealer) seal(dst, payload []byte) ([]byte, error) {
	if s.seq == math.MaxUint64 {
		return dst, errors.New("transport: send: frame counter exhausted")
	}
	binary.BigEndian.PutUint64(s.nonce[4:], s.seq)
	s.seq++
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+tagSize))
	return s.aead.Seal(dst, s.nonce[:], payload, nil), nil
}

// opener is the receiving half of one direction. It needs no socket, so it
// can be fed arbitrary bytes.
type opener struct {
	aead  cipher.AEAD
	seq   uint64
	nonce [gcmNonceSize]byte
	hdr   [lenSize]byte
	err   error
}

func newOpener(key []byte) (*opener, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &opener{aead: aead}, nil
}

// read reads one frame from r and returns its payload, or the error that
// ends the stream.
func (o *opener) read(r io.Reader) ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	p, err := o.readFrame(r)
	if err != nil {
		o.err = err
		return nil, err
	}
	return p, nil
}

func (o *opener) readFrame(r io.Reader) ([]byte, error) {
	if _, err := io.ReadFull(r, o.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, recvError(err)
	}
	n, err := sealedLen(o.hdr[:])
	if err != nil {
		return nil, err
	}
	// Fresh memory per frame: the caller owns the payload and may keep it.
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the prefix promised a body
		}
		return nil, recvError(err)
	}
	return o.open(buf)
}

// Open checks one whole frame, length prefix included, and returns its
// payload. It is the socket-free form of read.
func (o *opener) Open(frame []byte) ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	p, err := o.openFrame(frame)
	if err != nil {
		o.err = err
		return nil, err
	}
	return p, nil
}

func (o *opener) openFrame(frame []byte) ([]byte, error) {
	if len(frame) < lenSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a length prefix", ErrBadFrame, len(frame))
	}
	n, err := sealedLen(frame[:lenSize])
	if err != nil {
		return nil, err
	}
	if len(frame)-lenSize != n {
		return nil, fmt.Errorf("%w: length prefix says %d bytes, frame has %d", ErrBadFrame, n, len(frame)-lenSize)
	}
	sealed := make([]byte, n)
	copy(sealed, frame[lenSize:])
	return o.open(sealed)
}

// sealedLen checks a length prefix before anything is allocated for it.
func sealedLen(hdr []byte) (int, error) {
	n := binary.BigEndian.Uint32(hdr)
	if n > maxSealed {
		return 0, fmt.Errorf("%w: peer announced %d bytes, at most %d", ErrFrameTooLarge, n, maxSealed)
	}
	if n < tagSize {
		return 0, fmt.Errorf("%w: %d bytes cannot hold the %d-byte tag", ErrBadFrame, n, tagSize)
	}
	return int(n), nil
}

// open authenticates sealed in place with the next expected counter.
func (o *opener) open(sealed []byte) ([]byte, error) {
	binary.BigEndian.PutUint64(o.nonce[4:], o.seq)
	p, err := o.aead.Open(sealed[:0], o.nonce[:], sealed, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d does not authenticate (tampered, replayed, reordered or lost)", ErrBadFrame, o.seq)
	}
	o.seq++
	return p, nil
}

func recvError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: %w", ErrBadFrame, err)
	}
	return fmt.Errorf("transport: recv: %w", err)
}
