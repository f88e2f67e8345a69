package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/sdnotify"
)

// oneNode writes the configuration of a single-member cluster, which
// elects itself.
func oneNode(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2)
	var secret [32]byte
	rand.Read(secret[:])
	yml := fmt.Sprintf("id: n1\ndata_dir: n1.data\nsecret: %q\nmembers:\n  - id: n1\n    address: 127.0.0.1:%d\ntiming:\n  profile: fast\nhttp:\n  listen: 127.0.0.1:%d\n",
		hex.EncodeToString(secret[:]), ports[0], ports[1])
	path := filepath.Join(dir, "n1.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fakeManager is a service manager's notification socket.
type fakeManager struct {
	t  *testing.T
	ln *net.UnixConn
}

func newFakeManager(t *testing.T) (*fakeManager, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeManager{t: t, ln: ln}, path
}

// next returns the next datagram, or "" if none comes within wait.
func (m *fakeManager) next(wait time.Duration) string {
	m.ln.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := m.ln.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// waitFor returns the first datagram holding want, failing after a
// generous bound.
func (m *fakeManager) waitFor(want string) string {
	m.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if msg := m.next(time.Until(deadline)); strings.Contains(msg, want) {
			return msg
		}
	}
	m.t.Fatalf("no %s within 15s", want)
	return ""
}

func startNotified(t *testing.T, cfg *config.Config, n *sdnotify.Notifier) (*Daemon, context.CancelFunc, chan error) {
	t.Helper()
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d.Notify = n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d, cancel, done
}

func TestNotifyReadyAfterListeners(t *testing.T) {
	m, path := newFakeManager(t)
	n, err := sdnotify.New(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cfg := oneNode(t)
	d, cancel, done := startNotified(t, cfg, n)
	msg := m.waitFor(sdnotify.Ready)
	if !strings.Contains(msg, "STATUS=") {
		t.Errorf("READY without a STATUS: %q", msg)
	}
	// Ready means both listeners answer at once.
	resp, err := http.Get("http://" + d.HTTPAddr().String() + "/v1/status")
	if err != nil {
		t.Fatalf("READY=1 sent but the local listener does not answer: %v", err)
	}
	resp.Body.Close()
	c, err := net.Dial("tcp", cfg.Listen)
	if err != nil {
		t.Fatalf("READY=1 sent but the peer listener does not answer: %v", err)
	}
	c.Close()
	// The role summary follows the election.
	m.waitFor("STATUS=master, term ")
	cancel()
	m.waitFor(sdnotify.Stopping)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
}

func TestNotifyNothingBeforeRun(t *testing.T) {
	m, path := newFakeManager(t)
	n, err := sdnotify.New(path, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, err := New(oneNode(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d.Notify = n
	// The state is loaded and the listeners bound, but nothing serves
	// them yet: neither READY nor a watchdog ping may have gone.
	if msg := m.next(300 * time.Millisecond); msg != "" {
		t.Errorf("notified before Run: %q", msg)
	}
	d.store.Close()
	d.peerLn.Close()
	d.httpLn.Close()
}

func TestWatchdogFromLoop(t *testing.T) {
	m, path := newFakeManager(t)
	// A watchdog timeout far longer than the fast profile's lease: the
	// pings must come at least twice per lease anyway.
	n, err := sdnotify.New(path, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, cancel, done := startNotified(t, oneNode(t), n)
	m.waitFor(sdnotify.Ready)
	for range 3 {
		m.waitFor(sdnotify.Watchdog)
	}
	if every := d.watchdogEvery(); every > d.cfg.Timing.LeaseDuration()/2 {
		t.Errorf("pings every %v, not within half the lease %v", every, d.cfg.Timing.LeaseDuration())
	}

	// Wedge the loop: with the core's lock held, no input runs, and no
	// ping may go either.
	// A ping sent before the lock was taken is already queued on the
	// socket (a unix datagram is delivered by the send): drain those.
	d.mu.Lock()
	for m.next(10*time.Millisecond) != "" {
	}
	quiet := 20 * d.watchdogEvery()
	msg := m.next(quiet)
	d.mu.Unlock()
	if strings.Contains(msg, sdnotify.Watchdog) {
		t.Fatalf("watchdog pinged while the loop was wedged: %q", msg)
	}
	m.waitFor(sdnotify.Watchdog) // unwedged: pings resume

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	for m.next(10*time.Millisecond) != "" {
	}
	if msg := m.next(quiet); strings.Contains(msg, sdnotify.Watchdog) {
		t.Errorf("watchdog pinged after the loop stopped: %q", msg)
	}
}
