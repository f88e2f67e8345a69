package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
)

// fuzzPayloads are the only payloads ever sealed in the fuzz corpora, and
// fuzzPayloads[i] is always sealed as frame i. A fuzzer cannot forge a
// frame, so whatever it makes of the seeds, the i-th payload a receiver
// returns can only be fuzzPayloads[i].
var fuzzPayloads = [][]byte{
	[]byte("heartbeat term=7"),
	{},
	bytes.Repeat([]byte{0x5a}, 300),
	{0},
	[]byte("vote granted"),
}

var fuzzKey = bytes.Repeat([]byte{0x42}, 32)

// sealAll returns the frames of fuzzPayloads in order, sealed with key.
func sealAll(t testing.TB, key []byte) [][]byte {
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, len(fuzzPayloads))
	for i, p := range fuzzPayloads {
		if frames[i], err = s.seal(nil, p); err != nil {
			t.Fatal(err)
		}
	}
	return frames
}

// addFrameSeeds adds, after prefix, streams of genuine frames and their
// usual corruptions.
func addFrameSeeds(f *testing.F, prefix []byte, frames [][]byte) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{prefix}, parts...), nil) }
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	f.Add(cat())
	f.Add(cat(frames...))
	for i := range frames {
		f.Add(cat(frames[:i+1]...))
	}
	f.Add(cat(frames[0], frames[0]))              // replay
	f.Add(cat(frames[1], frames[0]))              // reorder
	f.Add(cat(frames[0], frames[2]))              // loss
	f.Add(cat(frames[0][:len(frames[0])-1]))      // truncated
	f.Add(cat(flip(frames[0], lenSize)))          // tampered body
	f.Add(cat(flip(frames[0], len(frames[0])-1))) // tampered tag
	f.Add(cat(flip(frames[0], 3)))                // tampered length
	f.Add(cat(binary.BigEndian.AppendUint32(nil, 1<<32-1)))
	f.Add(cat(binary.BigEndian.AppendUint32(nil, maxSealed+1)))
	f.Add(cat(binary.BigEndian.AppendUint32(nil, tagSize-1)))
	f.Add(cat(binary.BigEndian.AppendUint32(nil, 0)))
}

// drain reads payloads until the stream fails and checks each against
// fuzzPayloads, and that the failure is final.
func drain(t *testing.T, recv func() ([]byte, error)) {
	for i := 0; ; i++ {
		p, err := recv()
		if err != nil {
			if p != nil {
				t.Fatalf("frame %d: payload returned with error %v", i, err)
			}
			if _, again := recv(); again != err {
				t.Fatalf("frame %d: error %v, then %v", i, err, again)
			}
			return
		}
		if i >= len(fuzzPayloads) || !bytes.Equal(p, fuzzPayloads[i]) {
			t.Fatalf("frame %d: payload %q was never sealed as that frame", i, p)
		}
	}
}

// FuzzRecv feeds arbitrary bytes to the receiving side of a session.
func FuzzRecv(f *testing.F) {
	frames := sealAll(f, fuzzKey)
	addFrameSeeds(f, nil, frames)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := newOpener(fuzzKey)
		if err != nil {
			t.Fatal(err)
		}
		r := bytes.NewReader(data)
		drain(t, func() ([]byte, error) { return o.read(r) })

		// The whole-frame form must agree with the stream form on a
		// single frame.
		o2, _ := newOpener(fuzzKey)
		p, err := o2.Open(data)
		if err == nil && !bytes.Equal(p, fuzzPayloads[0]) {
			t.Fatalf("Open returned %q, never sealed as frame 0", p)
		}
		if err != nil && p != nil {
			t.Fatalf("Open returned a payload with error %v", err)
		}
	})
}

func fuzzRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

const (
	fuzzClientSeed = 1
	fuzzServerSeed = 2
)

// recording holds what each side wrote during one genuine session with
// fixed nonces: the handshake messages, then fuzzPayloads as frames.
type recording struct {
	client, server         []byte
	clientHello, serverEnd int // length of each side's handshake messages
}

func record(tb testing.TB) recording {
	cconn, sconn := net.Pipe()
	ctap, stap := &tapConn{Conn: cconn}, &tapConn{Conn: sconn}
	ctx := context.Background()
	var ss *Session
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss, serr = serverHandshake(ctx, stap, testSecret, testHello("b", 7), nil, fuzzRand(fuzzServerSeed))
	}()
	cs, cerr := clientHandshake(ctx, ctap, testSecret, testHello("a", 7), "b", fuzzRand(fuzzClientSeed))
	<-done
	if cerr != nil || serr != nil {
		tb.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	defer cs.Close()
	defer ss.Close()
	ctap.diverted.Store(true)
	stap.diverted.Store(true)
	var rec recording
	rec.clientHello = len(ctap.written.Bytes())
	rec.serverEnd = len(stap.written.Bytes())
	for _, p := range fuzzPayloads {
		if err := cs.Send(p); err != nil {
			tb.Fatal(err)
		}
		if err := ss.Send(p); err != nil {
			tb.Fatal(err)
		}
	}
	rec.client, rec.server = ctap.take(), stap.take()
	return rec
}

// checkHandshakeError accepts only the errors an unauthenticated peer can
// cause.
func checkHandshakeError(t *testing.T, err error) {
	var m *ClusterMismatchError
	if errors.As(err, &m) {
		t.Fatalf("cluster mismatch reported without a valid proof: %v", err)
	}
	for _, want := range []error{ErrProtocol, ErrAuth, ErrPeerClosed, ErrUnknownPeer} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("unexpected handshake error %v", err)
}

// FuzzClientHandshake plays arbitrary bytes as the server to a client whose
// nonce is fixed. Only the recorded genuine answer may succeed, and then
// the bytes after it are the server's frames.
func FuzzClientHandshake(f *testing.F) {
	rec := record(f)
	valid := rec.server[:rec.serverEnd]
	frames := splitFrames(f, rec.server[rec.serverEnd:])
	addFrameSeeds(f, valid, frames)
	for i := range valid {
		b := bytes.Clone(valid)
		b[i] ^= 0x80
		f.Add(b)
		f.Add(valid[:i])
	}
	for _, m := range malformedHellos(typeServerHello) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := newByteConn(data)
		s, err := clientHandshake(context.Background(), conn, testSecret, testHello("a", 7), "b", fuzzRand(fuzzClientSeed))
		if !bytes.HasPrefix(data, valid) {
			if err == nil {
				t.Fatal("handshake succeeded on bytes that are not the genuine answer")
			}
			checkHandshakeError(t, err)
			return
		}
		if err != nil {
			t.Fatalf("genuine answer refused: %v", err)
		}
		drain(t, s.Recv)
	})
}

// FuzzServerHandshake plays arbitrary bytes as the client to a server whose
// nonce is fixed. Only the recorded genuine hello and proof may succeed.
func FuzzServerHandshake(f *testing.F) {
	rec := record(f)
	valid := rec.client[:rec.clientHello]
	frames := splitFrames(f, rec.client[rec.clientHello:])
	addFrameSeeds(f, valid, frames)
	for i := range valid {
		b := bytes.Clone(valid)
		b[i] ^= 0x80
		f.Add(b)
		f.Add(valid[:i])
	}
	for _, m := range malformedHellos(typeClientHello) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := newByteConn(data)
		s, err := serverHandshake(context.Background(), conn, testSecret, testHello("b", 7), nil, fuzzRand(fuzzServerSeed))
		if !bytes.HasPrefix(data, valid) {
			if err == nil {
				t.Fatal("handshake succeeded on bytes that are not the genuine client's")
			}
			checkHandshakeError(t, err)
			return
		}
		if err != nil {
			t.Fatalf("genuine client refused: %v", err)
		}
		drain(t, s.Recv)
	})
}

// splitFrames cuts a recorded stream into its frames.
func splitFrames(tb testing.TB, b []byte) [][]byte {
	var frames [][]byte
	for len(b) > 0 {
		n := lenSize + int(binary.BigEndian.Uint32(b))
		frames = append(frames, b[:n])
		b = b[n:]
	}
	if len(frames) != len(fuzzPayloads) {
		tb.Fatalf("recorded %d frames, want %d", len(frames), len(fuzzPayloads))
	}
	return frames
}
