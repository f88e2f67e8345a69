package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/localcluster"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// freePorts finds n free loopback ports, from the one picker every
// real-process suite uses, so that in-process clusters and the daemons of
// other suites running at the same time keep out of each other's way.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := localcluster.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// inProcessCluster runs n daemons in this process.
type inProcessCluster struct {
	t       *testing.T
	cfgs    []*config.Config
	daemons []*Daemon
	cancels []context.CancelFunc
	done    []chan error
}

func newTestCluster(t *testing.T, n int) *inProcessCluster {
	t.Helper()
	return newTestClusterYAML(t, n, "")
}

// newTestClusterYAML is newTestCluster with extra appended to every node's
// configuration, whose last section is http.
func newTestClusterYAML(t *testing.T, n int, extra string) *inProcessCluster {
	t.Helper()
	dir := t.TempDir()
	peerPorts := freePorts(t, n)
	httpPorts := freePorts(t, n)
	var secret [32]byte
	rand.Read(secret[:])
	var members strings.Builder
	for i := range n {
		fmt.Fprintf(&members, "  - id: n%d\n    address: 127.0.0.1:%d\n", i+1, peerPorts[i])
	}
	tc := &inProcessCluster{t: t}
	for i := range n {
		yml := fmt.Sprintf("id: n%d\ndata_dir: n%d.data\nsecret: %q\nmembers:\n%stiming:\n  profile: fast\nhttp:\n  listen: 127.0.0.1:%d\n%s",
			i+1, i+1, hex.EncodeToString(secret[:]), members.String(), httpPorts[i], extra)
		path := filepath.Join(dir, fmt.Sprintf("n%d.yml", i+1))
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		tc.cfgs = append(tc.cfgs, cfg)
	}
	tc.daemons = make([]*Daemon, n)
	tc.cancels = make([]context.CancelFunc, n)
	tc.done = make([]chan error, n)
	for i := range n {
		tc.start(i)
	}
	t.Cleanup(func() {
		for i := range tc.daemons {
			tc.stop(i)
		}
	})
	return tc
}

func (tc *inProcessCluster) start(i int) {
	tc.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", tc.cfgs[i].ID)
	}
	d, err := New(tc.cfgs[i], log)
	if err != nil {
		tc.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tc.daemons[i], tc.cancels[i], tc.done[i] = d, cancel, done
}

// stop stops daemon i gracefully and waits for it.
func (tc *inProcessCluster) stop(i int) {
	tc.t.Helper()
	if tc.cancels[i] == nil {
		return
	}
	tc.cancels[i]()
	select {
	case err := <-tc.done[i]:
		if err != nil {
			tc.t.Errorf("n%d stopped with %v", i+1, err)
		}
	case <-time.After(10 * time.Second):
		tc.t.Errorf("n%d did not stop", i+1)
	}
	tc.cancels[i] = nil
}

// waitMaster polls until exactly one running daemon is master and every
// running daemon agrees.
func (tc *inProcessCluster) waitMaster(not int) int {
	tc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		master := -1
		agree := true
		for i, d := range tc.daemons {
			if tc.cancels[i] == nil {
				continue
			}
			s := d.Status()
			if s.Role == "master" {
				if master >= 0 {
					tc.t.Fatalf("two nodes report master: n%d and n%d", master+1, i+1)
				}
				master = i
			}
			if master >= 0 && s.Master != tc.cfgs[master].ID {
				agree = false
			}
		}
		if master >= 0 && master != not && agree {
			return master
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.t.Fatal("no master agreed on within 10s")
	return -1
}

func TestDaemonElectsAndHandsOver(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	term := tc.daemons[m].Status().Term
	// A graceful stop of the master hands over.
	tc.stop(m)
	n := tc.waitMaster(m)
	if got := tc.daemons[n].Status().Term; got <= term {
		t.Fatalf("new master's term %d not above %d", got, term)
	}
	// The old master comes back as a follower.
	tc.start(m)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := tc.daemons[m].Status()
		if s.Role == "follower" && s.Master == tc.cfgs[n].ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node status %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tc.waitMaster(-1) != n {
		t.Fatal("restarted node disturbed the master")
	}
}

func TestDaemonTransferAndMaintenance(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	target := (m + 1) % 3
	ctx := context.Background()
	if err := tc.daemons[target].Transfer(ctx, ""); err == nil {
		t.Fatal("transfer on a follower accepted")
	}
	if err := tc.daemons[m].Transfer(ctx, "nobody"); err == nil {
		t.Fatal("transfer to an unknown node accepted")
	}
	if err := tc.daemons[m].Transfer(ctx, tc.cfgs[target].ID); err != nil {
		t.Fatal(err)
	}
	if got := tc.waitMaster(m); got != target {
		t.Fatalf("transfer to n%d elected n%d", target+1, got+1)
	}
	if err := tc.daemons[target].SetMaintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	next := tc.waitMaster(target)
	if s := tc.daemons[target].Status(); !s.Maintenance || s.Eligible {
		t.Fatalf("maintenance node status %+v", s)
	}
	_ = next
}

// driver is a bare protocol client for tests of the daemon's side.
type driver struct {
	t  *testing.T
	ws *websocket.Conn
	mu sync.Mutex // one writer at a time, as gorilla/websocket requires
}

func (dr *driver) send(m driverproto.Message) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	dr.ws.WriteJSON(m)
}

func dialDriver(t *testing.T, d *Daemon, secret []byte, id string, required bool) (*driver, error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+d.HTTPAddr().String()+driverproto.Path, nil)
	if err != nil {
		return nil, err
	}
	dr := &driver{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	ch := dr.read()
	if ch.Type != driverproto.TypeChallenge {
		t.Fatalf("first message %+v", ch)
	}
	var nb [32]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	ws.WriteJSON(driverproto.Message{Type: driverproto.TypeHello, Version: driverproto.Version, ID: id, Name: strings.Split(id, "-")[0],
		Required: required, Nonce: nonce, MAC: driverproto.HelloMAC(secret, ch.Nonce, nonce, id, required, false)})
	w := dr.read()
	if w.Type == driverproto.TypeError {
		return nil, fmt.Errorf("%s", w.Error)
	}
	if !driverproto.CheckMAC(w.MAC, driverproto.WelcomeMAC(secret, nonce, ch.Nonce, id)) {
		t.Fatal("daemon's welcome does not prove the secret")
	}
	return dr, nil
}

func (dr *driver) read() driverproto.Message {
	dr.t.Helper()
	dr.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := dr.ws.ReadMessage()
	if err != nil {
		dr.t.Fatalf("driver read: %v", err)
	}
	m, err := driverproto.Decode(b)
	if err != nil {
		dr.t.Fatalf("daemon sent a bad message: %v", err)
	}
	return m
}

// waitState reads until a state satisfying ok arrives, acking each.
func (dr *driver) waitState(ok func(*driverproto.State) bool, ack bool) driverproto.Message {
	dr.t.Helper()
	for {
		m := dr.read()
		if m.Type != driverproto.TypeState {
			continue
		}
		if ok(m.State) {
			return m
		}
		if ack {
			dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: m.Seq, OK: driverproto.Bool(true)})
		}
	}
}

func TestDriverProtocol(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	secret := tc.cfgs[m].DriversSecret
	d := tc.daemons[m]

	if _, err := dialDriver(t, d, []byte("not the secret at all, 32 bytes!"), "bad-1", false); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("wrong secret: %v", err)
	}
	dr, err := dialDriver(t, d, secret, "rec-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialDriver(t, d, secret, "rec-1", false); err == nil || !strings.Contains(err.Error(), "already connected") {
		t.Fatalf("duplicate id: %v", err)
	}
	st := dr.waitState(func(s *driverproto.State) bool { return s.IsMaster }, true)
	now := int64(Monotonic())
	if st.State.LeaseDeadlineNS <= now || st.State.LeaseDeadlineNS > now+int64(time.Second) {
		t.Fatalf("lease deadline %d not shortly after now %d", st.State.LeaseDeadlineNS, now)
	}
	// A renewal follows while master.
	dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: st.Seq, OK: driverproto.Bool(true)})
	ren := dr.waitState(func(s *driverproto.State) bool { return s.IsMaster && s.LeaseDeadlineNS > st.State.LeaseDeadlineNS }, true)
	dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: ren.Seq, OK: driverproto.Bool(true)})

	// Transfer: the demote comes first, and the hand-over waits for our ack.
	target := (m + 1) % 3
	if err := d.Transfer(context.Background(), tc.cfgs[target].ID); err != nil {
		t.Fatal(err)
	}
	dem := dr.waitState(func(s *driverproto.State) bool { return !s.IsMaster }, false)
	acked := time.Now()
	dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: dem.Seq, OK: driverproto.Bool(true)})
	if got := tc.waitMaster(m); got != target {
		t.Fatalf("new master n%d, want n%d", got+1, target+1)
	}
	t.Logf("demote ack to new master seen by polling: %v", time.Since(acked))

	// Malformed input: an error back and the connection closed, the
	// daemon unaffected.
	dr.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","seq":`))
	for {
		dr.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := dr.ws.ReadMessage()
		if err != nil {
			break
		}
		if msg, _ := driverproto.Decode(b); msg.Type == driverproto.TypeError {
			continue
		}
	}
	if s := d.Status(); s.Node != tc.cfgs[m].ID {
		t.Fatalf("daemon unwell after a malformed driver message: %+v", s)
	}
}

// Only drivers.required makes a driver required: a required driver absent
// at start keeps its node ineligible and is named in status, while a
// driver that merely declares itself required changes nothing.
func TestRequiredDriver(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	tc.cfgs[m].RequiredDrivers = []string{"db"}
	tc.stop(m)
	tc.start(m)
	n := tc.waitMaster(m)
	waitStatus := func(i int, what string, ok func(s api.Status) bool) api.Status {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := tc.daemons[i].Status()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d: %s: status %+v", i+1, what, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s := waitStatus(m, "ineligible with db missing", func(s api.Status) bool {
		return !s.Eligible && !s.Healthy && strings.Join(s.MissingDrivers, ",") == "db"
	})
	if s.Role == "master" {
		t.Fatalf("n%d became master without its required driver", m+1)
	}

	// A driver that calls itself required and unhealthy, on a node whose
	// configuration requires nothing: no effect.
	f := 3 - m - n
	evil, err := dialDriver(t, tc.daemons[f], tc.cfgs[f].DriversSecret, "evil-1", true)
	if err != nil {
		t.Fatal(err)
	}
	go ackStates(evil)
	evil.send(driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(false), Reason: "says so"})
	time.Sleep(10 * tc.cfgs[f].Timing.Heartbeat) // a deliberate window for a wrong verdict to show
	if s := tc.daemons[f].Status(); !s.Eligible || !s.Healthy {
		t.Fatalf("a self-declared required driver made n%d ineligible: %+v", f+1, s)
	}

	dr, err := dialDriver(t, tc.daemons[m], tc.cfgs[m].DriversSecret, "db-1", false)
	if err != nil {
		t.Fatal(err)
	}
	go ackStates(dr)
	waitStatus(m, "eligible once db connected", func(s api.Status) bool { return s.Eligible && s.Healthy && len(s.MissingDrivers) == 0 })
	dr.send(driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(false), Reason: "disk full"})
	waitStatus(m, "unhealthy while db is", func(s api.Status) bool { return !s.Healthy && !s.Eligible })
	dr.send(driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(true)})
	waitStatus(m, "healthy again", func(s api.Status) bool { return s.Healthy })
	dr.ws.Close()
	waitStatus(m, "db missing again", func(s api.Status) bool {
		return !s.Healthy && strings.Join(s.MissingDrivers, ",") == "db"
	})
}

// ackStates acknowledges every state dr receives, as a driver does: a
// hand-over waits for the demote to be confirmed.
func ackStates(dr *driver) {
	for {
		_, b, err := dr.ws.ReadMessage()
		if err != nil {
			return
		}
		if msg, err := driverproto.Decode(b); err == nil && msg.Type == driverproto.TypeState {
			dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: msg.Seq, OK: driverproto.Bool(true)})
		}
	}
}

func TestLimitProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	runtime.GOMAXPROCS(2)
	t.Setenv("GOMAXPROCS", "2")
	LimitProcs()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("GOMAXPROCS=2 in the environment: LimitProcs set %d", n)
	}
	os.Unsetenv("GOMAXPROCS") // t.Setenv restores it
	LimitProcs()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("no GOMAXPROCS in the environment: LimitProcs left %d, want 1", n)
	}
}
