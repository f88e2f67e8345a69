package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/tcptest"
)

func tcpPair(t *testing.T) (a, b net.Conn) {
	a, b = tcptest.Pair(t)
	return Wrap(a), Wrap(b)
}

// TestLargeWrite writes far more than the socket buffers hold, so Write
// must wait in the poller for the reader, and checks every byte arrives.
func TestLargeWrite(t *testing.T) {
	a, b := tcpPair(t)
	want := make([]byte, 16<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		io.Copy(&buf, b)
		got <- buf.Bytes()
	}()
	n, err := a.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	a.Close() // the reader sees io.EOF
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("read %d bytes, not the %d written", len(g), len(want))
	}
}

func TestReadDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want a deadline error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v is not a timeout net.Error", err)
	}
}

func TestWriteDeadline(t *testing.T) {
	a, _ := tcpPair(t) // nobody reads the other end
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := a.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past its deadline: %v, want a deadline error", err)
	}
}

func TestClose(t *testing.T) {
	a, b := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		done <- err
	}()
	b.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}
	a.Close()
	if _, err := a.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
}

func TestTryWriteFull(t *testing.T) {
	a, _ := tcpPair(t)
	rc, err := a.(*conn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	for try := 0; ; try++ {
		if try > 10000 {
			t.Fatal("the socket never filled")
		}
		var n int
		var werr error
		rc.Control(func(fd uintptr) { n, werr = TryWrite(fd, big) })
		if werr != nil {
			t.Fatal(werr)
		}
		if n == 0 {
			return // full, and TryWrite did not wait
		}
	}
}

func TestWrapWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a connection that has no descriptor")
	}
}
