package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func testPayloads() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 15, 16, 17, 64, 4095, 4096, 4097, MaxFrame - 1, MaxFrame, 0}
	for range 100 {
		sizes = append(sizes, r.IntN(2048))
	}
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		out[i] = p
	}
	return out
}

// stream sends payloads from one session and checks them at the other,
// both concurrently, reporting through t.
func stream(t *testing.T, from, to *Session, payloads [][]byte, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i, p := range payloads {
			if err := from.Send(p); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i, want := range payloads {
			got, err := to.Recv()
			if err != nil {
				t.Errorf("Recv %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("payload %d: got %d bytes, want %d", i, len(got), len(want))
				return
			}
		}
	}()
}

func TestRoundTrip(t *testing.T) {
	cs, ss := pipePair(t)
	payloads := testPayloads()
	var wg sync.WaitGroup
	stream(t, cs, ss, payloads, &wg)
	stream(t, ss, cs, payloads, &wg)
	wg.Wait()
}

func TestSendTooLarge(t *testing.T) {
	cs, ss := pipePair(t)
	if err := cs.Send(make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send error %v, want ErrFrameTooLarge", err)
	}
	// Refusing an oversized payload consumes no counter, so the session
	// goes on.
	var wg sync.WaitGroup
	stream(t, cs, ss, [][]byte{[]byte("after")}, &wg)
	wg.Wait()
}

func TestConcurrentSend(t *testing.T) {
	cs, ss := pipePair(t)
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := cs.Send(fmt.Appendf(nil, "%d/%d", g, i)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		p, err := ss.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		var g, i int
		if _, err := fmt.Sscanf(string(p), "%d/%d", &g, &i); err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		if i != next[g] {
			t.Fatalf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g]++
	}
	wg.Wait()
}

// recvExpectingError runs Recv against what inject delivers and checks that
// it fails with want and returns no payload.
func recvExpectingError(t *testing.T, s *Session, want error) error {
	t.Helper()
	p, err := s.Recv()
	if !errors.Is(err, want) {
		t.Fatalf("Recv error %v, want %v", err, want)
	}
	if p != nil {
		t.Fatalf("Recv returned %d bytes with its error", len(p))
	}
	return err
}

func TestTamperedFrame(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(f []byte)
	}{
		{"first ciphertext byte", func(f []byte) { f[lenSize] ^= 1 }},
		{"last ciphertext byte", func(f []byte) { f[len(f)-tagSize-1] ^= 0x80 }},
		{"first tag byte", func(f []byte) { f[len(f)-tagSize] ^= 1 }},
		{"last tag byte", func(f []byte) { f[len(f)-1] ^= 1 }},
		{"shorter length", func(f []byte) { binary.BigEndian.PutUint32(f, uint32(len(f)-lenSize-1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, tap, raw, ss := framePair(t)
			f := captureFrame(t, cs, tap, []byte("a heartbeat worth protecting"))
			tc.mutate(f)
			inject(raw, f, true)
			recvExpectingError(t, ss, ErrBadFrame)
		})
	}
}

func TestTruncatedFrame(t *testing.T) {
	for _, cut := range []int{1, lenSize, lenSize + 1, -1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			cs, tap, raw, ss := framePair(t)
			f := captureFrame(t, cs, tap, bytes.Repeat([]byte("x"), 100))
			if cut < 0 {
				cut += len(f)
			}
			inject(raw, f[:cut], true)
			err := recvExpectingError(t, ss, ErrBadFrame)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v does not say the frame was cut short", err)
			}
		})
	}
}

func TestReplayedFrame(t *testing.T) {
	cs, tap, raw, ss := framePair(t)
	f := captureFrame(t, cs, tap, []byte("transfer leadership"))
	inject(raw, append(bytes.Clone(f), f...), false)
	if p, err := ss.Recv(); err != nil || string(p) != "transfer leadership" {
		t.Fatalf("first copy: %q, %v", p, err)
	}
	recvExpectingError(t, ss, ErrBadFrame)
}

func TestReorderedFrame(t *testing.T) {
	cs, tap, raw, ss := framePair(t)
	f0 := captureFrame(t, cs, tap, []byte("zero"))
	f1 := captureFrame(t, cs, tap, []byte("one"))
	inject(raw, append(f1, f0...), false)
	recvExpectingError(t, ss, ErrBadFrame)
}

func TestDroppedFrame(t *testing.T) {
	cs, tap, raw, ss := framePair(t)
	f0 := captureFrame(t, cs, tap, []byte("zero"))
	captureFrame(t, cs, tap, []byte("one")) // lost on the way
	f2 := captureFrame(t, cs, tap, []byte("two"))
	inject(raw, append(f0, f2...), false)
	if p, err := ss.Recv(); err != nil || string(p) != "zero" {
		t.Fatalf("first frame: %q, %v", p, err)
	}
	recvExpectingError(t, ss, ErrBadFrame)
}

// TestCrossDirectionFrame sends a client frame back to the client: the keys
// differ per direction, so it must not open.
func TestCrossDirectionFrame(t *testing.T) {
	cconn, sconn := net.Pipe()
	cs, ss, cerr, serr := handshakePair(t, cconn, sconn, clientSide(), serverSide())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	// Take the client's frame off the wire at the server's end, unopened.
	sent := make(chan error, 1)
	go func() { sent <- cs.Send([]byte("from the client")) }()
	hdr := make([]byte, lenSize)
	if _, err := io.ReadFull(ss.r, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr))
	if _, err := io.ReadFull(ss.r, body); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	inject(sconn, append(hdr, body...), false)
	recvExpectingError(t, cs, ErrBadFrame)
}

func TestOversizedLength(t *testing.T) {
	for _, n := range []uint32{maxSealed + 1, 1 << 31, 1<<32 - 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, _, raw, ss := framePair(t)
			// Only the prefix is sent and the conn stays open: the
			// receiver must decide without waiting for a body.
			inject(raw, binary.BigEndian.AppendUint32(nil, n), false)
			recvExpectingError(t, ss, ErrFrameTooLarge)
		})
	}
}

func TestShortLength(t *testing.T) {
	_, _, raw, ss := framePair(t)
	inject(raw, binary.BigEndian.AppendUint32(nil, tagSize-1), false)
	recvExpectingError(t, ss, ErrBadFrame)
}

// TestOversizedLengthAllocatesNothing checks that a huge length prefix is
// refused before memory is set aside for it.
func TestOversizedLengthAllocatesNothing(t *testing.T) {
	o, err := newOpener(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	in := binary.BigEndian.AppendUint32(nil, 1<<32-1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = o.read(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("error %v, want ErrFrameTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<10 {
		t.Errorf("refusing the prefix allocated %d bytes", d)
	}
}

func TestRecvErrorIsSticky(t *testing.T) {
	cs, tap, raw, ss := framePair(t)
	f0 := captureFrame(t, cs, tap, []byte("zero"))
	f1 := captureFrame(t, cs, tap, []byte("one"))
	f0[lenSize] ^= 1
	written := inject(raw, f0, false)
	first := recvExpectingError(t, ss, ErrBadFrame)
	<-written
	// A valid next frame is on its way, but the session is done: Recv
	// must not even read it.
	inject(raw, f1, false)
	for range 3 {
		if _, err := ss.Recv(); err != first {
			t.Fatalf("later Recv error %v, want the first one again (%v)", err, first)
		}
	}
}

func TestOpenWholeFrame(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 32)
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	o, err := newOpener(key)
	if err != nil {
		t.Fatal(err)
	}
	f0, _ := s.seal(nil, []byte("zero"))
	f1, _ := s.seal(nil, []byte("one"))
	if p, err := o.Open(f0); err != nil || string(p) != "zero" {
		t.Fatalf("Open f0: %q, %v", p, err)
	}
	if _, err := o.Open(append(bytes.Clone(f1), 0)); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Open with a trailing byte: %v, want ErrBadFrame", err)
	}
	if _, err := o.Open(f1); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Open after an error: %v, want the error again", err)
	}
}

func TestRecvEOF(t *testing.T) {
	cs, ss := pipePair(t)
	cs.Close()
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("Recv error %v, want io.EOF", err)
	}
}

func TestCloseUnblocksRecv(t *testing.T) {
	_, ss := pipePair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := ss.Recv()
		errc <- err
	}()
	if err := ss.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("Recv returned no error after Close")
	}
	if err := ss.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := ss.Send([]byte("x")); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func TestWriteTimeout(t *testing.T) {
	cs, _ := pipePair(t)
	cs.SetWriteTimeout(10 * time.Millisecond)
	// Nobody reads the server's end, so the write can never complete.
	err := cs.Send([]byte("lost"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Send error %v, want a deadline error", err)
	}
	if err2 := cs.Send([]byte("more")); err2 != err {
		t.Errorf("later Send error %v, want the first one again", err2)
	}
}

func TestWriteTimeoutCleared(t *testing.T) {
	cs, ss := pipePair(t)
	cs.SetWriteTimeout(time.Hour)
	cs.SetWriteTimeout(0)
	var wg sync.WaitGroup
	stream(t, cs, ss, [][]byte{[]byte("one"), []byte("two")}, &wg)
	wg.Wait()
}

func TestTrySend(t *testing.T) {
	cs, ss := tcpPair(t)
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			got, err := ss.Recv()
			if err != nil {
				done <- err
				return
			}
			if want := fmt.Sprint(i); string(got) != want {
				done <- fmt.Errorf("frame %d: got %q", i, got)
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		p := []byte(fmt.Sprint(i))
		if i%3 == 0 { // Send and TrySend share one stream
			if err := cs.Send(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		res, err := cs.TrySend(p)
		if err != nil || res != Sent {
			t.Fatalf("TrySend %d: %v, %v; want Sent", i, res, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTrySendOwed fills the socket buffers of a peer that does not read:
// TrySend must then keep the frame it sealed, refuse more until it is
// flushed, and never block.
func TestTrySendOwed(t *testing.T) {
	cs, ss := tcpPair(t)
	big := bytes.Repeat([]byte{7}, MaxFrame)
	var sent int
	for {
		res, err := cs.TrySend(big)
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if res == Owed {
			break
		}
		if res != Sent {
			t.Fatalf("TrySend %d: %v, want Sent or Owed", sent, res)
		}
		if sent > 100000 {
			t.Fatal("the socket never filled")
		}
	}
	if res, err := cs.TrySend([]byte("later")); res != Busy || err != nil {
		t.Fatalf("TrySend with bytes owed: %v, %v; want Busy", res, err)
	}
	recvd := make(chan error, 1)
	go func() {
		for i := range sent + 1 {
			got, err := ss.Recv()
			if err != nil {
				recvd <- fmt.Errorf("Recv %d: %w", i, err)
				return
			}
			want := big
			if i == sent {
				want = []byte("after")
			}
			if !bytes.Equal(got, want) {
				recvd <- fmt.Errorf("frame %d: %d bytes, want %d", i, len(got), len(want))
				return
			}
		}
		recvd <- nil
	}()
	if err := cs.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := cs.Send([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := <-recvd; err != nil {
		t.Fatal(err)
	}
}

func TestTrySendBusy(t *testing.T) {
	pc, _ := pipePair(t)
	if res, err := pc.TrySend([]byte("x")); res != Busy || err != nil {
		t.Errorf("TrySend on a connection without a descriptor: %v, %v; want Busy", res, err)
	}
	cs, _ := tcpPair(t)
	cs.wmu.Lock() // a Send in progress
	res, err := cs.TrySend([]byte("x"))
	cs.wmu.Unlock()
	if res != Busy || err != nil {
		t.Errorf("TrySend while another Send writes: %v, %v; want Busy", res, err)
	}
	if _, err := cs.TrySend(make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized TrySend: %v, want ErrFrameTooLarge", err)
	}
	cs.Close()
	if _, err := cs.TrySend([]byte("x")); err == nil {
		t.Error("TrySend on a closed session succeeded")
	}
}

func benchmarkSendRecv(b *testing.B, cs, ss *Session, size int) {
	payload := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	done := make(chan error, 1)
	n := b.N
	b.ResetTimer()
	go func() {
		for range n {
			if _, err := ss.Recv(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n {
		if err := cs.Send(payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSendRecv64Pipe(b *testing.B) {
	cs, ss := pipePair(b)
	benchmarkSendRecv(b, cs, ss, 64)
}

func BenchmarkSendRecv64TCP(b *testing.B) {
	cs, ss := tcpPair(b)
	benchmarkSendRecv(b, cs, ss, 64)
}

// BenchmarkSealOpen64 measures the frame cryptography alone.
func BenchmarkSealOpen64(b *testing.B) {
	key := bytes.Repeat([]byte{3}, 32)
	s, _ := newSealer(key)
	o, _ := newOpener(key)
	payload := make([]byte, 64)
	var buf []byte
	r := bytes.NewReader(nil)
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.seal(buf[:0], payload)
		r.Reset(buf)
		if _, err := o.read(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandshake(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		cconn, sconn := net.Pipe()
		cs, ss, cerr, serr := handshakePair(b, cconn, sconn, clientSide(), serverSide())
		if cerr != nil || serr != nil {
			b.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
		cs.Close()
		ss.Close()
	}
}
