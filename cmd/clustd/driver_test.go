package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/drivers/common"
	"github.com/clustd/clustd/drivers/shelldriver"
)

const driverTestSecret = "0123456789abcdef0123456789abcdef0123456789"

// lockedBuffer is an output that the driver's goroutines may log to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// driverRun is a clustd invocation running in the background.
type driverRun struct {
	stop   context.CancelFunc
	done   chan struct{}
	code   int
	msg    string
	stderr *lockedBuffer
}

// startDriver runs clustd with args until stop is called, as run does
// until SIGTERM.
func startDriver(t *testing.T, args ...string) *driverRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &driverRun{stop: cancel, done: make(chan struct{}), stderr: &lockedBuffer{}}
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, r.stderr
	go func() {
		defer close(r.done)
		err := app.RunContext(ctx, append([]string{"clustd"}, args...))
		var ee *exitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.code, r.msg = ee.code, ee.msg
		default:
			r.code, r.msg = 2, err.Error()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait stops the driver, as SIGTERM does, and returns its exit status.
func (r *driverRun) wait(t *testing.T) int {
	t.Helper()
	r.stop()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the driver did not exit")
	}
	if r.code != 0 {
		t.Logf("exit %d: %s\n%s", r.code, r.msg, r.stderr.String())
	}
	return r.code
}

// fakeDaemon is the daemon's side of the driver protocol, enough to drive
// a real driver.
type fakeDaemon struct {
	t     *testing.T
	srv   *httptest.Server
	conns chan *daemonConn
}

type daemonConn struct {
	t     *testing.T
	ws    *websocket.Conn
	hello driverproto.Message
	in    chan driverproto.Message
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	d := &fakeDaemon{t: t, conns: make(chan *daemonConn, 16)}
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc(driverproto.Path, func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		nb := make([]byte, driverproto.NonceLen)
		rand.Read(nb)
		nonce := hex.EncodeToString(nb)
		if ws.WriteJSON(driverproto.Message{Type: driverproto.TypeChallenge, Version: driverproto.Version, Node: "a", Nonce: nonce}) != nil {
			return
		}
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		hello, err := driverproto.Decode(b)
		if err != nil || !driverproto.CheckMAC(hello.MAC, driverproto.HelloMACDemote([]byte(driverTestSecret), nonce, hello.Nonce, hello.ID, hello.Required, hello.Events, hello.DemoteTimeoutMS)) {
			t.Errorf("fake daemon: bad hello %s: %v", b, err)
			return
		}
		if ws.WriteJSON(driverproto.Message{Type: driverproto.TypeWelcome, Node: "a", MAC: driverproto.WelcomeMAC([]byte(driverTestSecret), hello.Nonce, nonce, hello.ID)}) != nil {
			return
		}
		dc := &daemonConn{t: t, ws: ws, hello: hello, in: make(chan driverproto.Message, 256)}
		d.conns <- dc
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			m, err := driverproto.Decode(b)
			if err != nil {
				t.Errorf("fake daemon: malformed message %s: %v", b, err)
				return
			}
			select {
			case dc.in <- m:
			case <-quit:
				return
			}
		}
	})
	d.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(quit)
		d.srv.CloseClientConnections()
		d.srv.Close()
	})
	return d
}

func (d *fakeDaemon) addr() string { return d.srv.Listener.Addr().String() }

func (d *fakeDaemon) accept() *daemonConn {
	d.t.Helper()
	select {
	case dc := <-d.conns:
		return dc
	case <-time.After(10 * time.Second):
		d.t.Fatal("the driver did not connect")
		return nil
	}
}

// monotonicNow reads CLOCK_BOOTTIME, the clock of lease deadlines.
func monotonicNow(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// send sends a state: master with a lease of the given length, or
// follower when lease is zero.
func (dc *daemonConn) send(seq, term uint64, lease time.Duration) {
	dc.t.Helper()
	st := driverproto.State{Node: "a", Role: driverproto.RoleFollower, Term: term, Master: "b", Reason: "b elected"}
	if lease > 0 {
		st = driverproto.State{Node: "a", Role: driverproto.RoleMaster, IsMaster: true, Term: term, Master: "a", Reason: "elected",
			LeaseMS: lease.Milliseconds(), LeaseDeadlineNS: int64(monotonicNow(dc.t) + lease)}
	}
	if err := dc.ws.WriteJSON(driverproto.Message{Type: driverproto.TypeState, Seq: seq, State: &st}); err != nil {
		dc.t.Fatalf("sending state %d: %v", seq, err)
	}
}

// ack waits for the acknowledgement of state seq and returns its error
// text, empty if ok; health reports on the way are returned too.
func (dc *daemonConn) ack(seq uint64) (errText string, health []string) {
	dc.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-dc.in:
			switch m.Type {
			case driverproto.TypeHealth:
				health = append(health, fmt.Sprintf("%v %s", *m.OK, m.Reason))
			case driverproto.TypeAck:
				if m.Seq == seq {
					if *m.OK {
						return "", health
					}
					return m.Error, health
				}
			}
		case <-timeout:
			dc.t.Fatalf("no ack of state %d", seq)
		}
	}
}

// driverFiles writes a secret file and a node configuration whose
// http.listen is addr.
func driverFiles(t *testing.T, addr string) (dir, secretFile, configFile string) {
	t.Helper()
	for _, v := range []string{"CLUSTD_CONFIG", "CLUSTD_ADDR"} {
		t.Setenv(v, "")
	}
	dir = t.TempDir()
	secretFile = filepath.Join(dir, "secret")
	write(t, secretFile, driverTestSecret+"\n")
	configFile = filepath.Join(dir, "a.yml")
	write(t, configFile, "id: a\n"+
		"data_dir: data\n"+
		"secret_file: secret\n"+
		"members:\n"+
		"  - id: a\n"+
		"    address: 10.0.0.1:7946\n"+
		"  - id: b\n"+
		"    address: 10.0.0.2:7946\n"+
		"  - id: c\n"+
		"    address: 10.0.0.3:7946\n"+
		"http:\n  listen: "+addr+"\n")
	write(t, filepath.Join(dir, "broken.yml"), "id: [\n")
	return dir, secretFile, configFile
}

func TestDriverFlagErrors(t *testing.T) {
	dir, secret, cfg := driverFiles(t, "127.0.0.1:1")
	conn := []string{"--addr", "127.0.0.1:1", "--secret-file", secret}
	with := func(cmd string, args ...string) []string {
		return append(append([]string{"driver", cmd}, conn...), args...)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  []string
	}{
		{"exec without command", with("exec"), 2, []string{"no command to run: give it after --", "usage: clustd driver exec [options] -- CMD [ARGS…]"}},
		{"exec after -- only", with("exec", "--"), 2, []string{"no command to run"}},
		{"exec bad signal", with("exec", "--stop-signal", "STOP!", "--", "true"), 2, []string{`--stop-signal: unknown signal "STOP!"`}},
		{"exec bad timeout", with("exec", "--stop-timeout", "0s", "--", "true"), 2, []string{"--stop-timeout 0s: must be positive"}},
		{"shell without scripts", with("shell"), 2, []string{"missing --on-master and --on-standby", "usage: clustd driver shell [options]"}},
		{"shell without on-standby", with("shell", "--on-master", "true"), 2, []string{"missing --on-standby: both scripts are required"}},
		{"shell blank on-master", with("shell", "--on-master", " ", "--on-standby", "true"), 2, []string{"missing --on-master:"}},
		{"shell stray argument", with("shell", "--on-master", "a", "--on-standby", "b", "c"), 2, []string{`unexpected argument "c"`}},
		{"shell bad timeout", with("shell", "--on-master", "a", "--on-standby", "b", "--timeout", "-1s"), 2, []string{"--timeout -1s: must be positive"}},
		{"webhook without url", with("webhook"), 2, []string{"--url: no URL", "usage: clustd driver webhook [options]"}},
		{"webhook bad url", with("webhook", "--url", "ftp://example.com/x"), 2, []string{`--url: URL "ftp://example.com/x": want an http:// or https:// URL`}},
		{"webhook relative url", with("webhook", "--url", "example.com/x"), 2, []string{"--url: "}},
		{"webhook bad events", with("webhook", "--url", "http://h/", "--events", "some"), 2, []string{`--events "some": expected role, failover or all`}},
		{"webhook bad queue", with("webhook", "--url", "http://h/", "--queue", "0"), 2, []string{"--queue 0: must be at least 1"}},
		{"webhook bad header", with("webhook", "--url", "http://h/", "--header", "nocolon"), 2, []string{"want Name: value"}},
		{"no secret", []string{"driver", "exec", "--addr", "127.0.0.1:1", "--", "true"}, 2, []string{"a driver needs the drivers secret: give --config FILE"}},
		{"bad addr", []string{"driver", "exec", "--addr", "localhost", "--secret-file", secret, "--", "true"}, 2, []string{`--addr "localhost": want HOST:PORT`}},
		{"bad name", with("exec", "--name", "no spaces", "--", "true"), 2, []string{`--name "no spaces"`}},
		{"long name", with("exec", "--name", strings.Repeat("x", 88), "--", "true"), 2, []string{"need 1 to 87"}},
		{"bad log level", with("exec", "--log-level", "loud", "--", "true"), 2, []string{`--log-level "loud"`}},
		{"bad log format", with("exec", "--log-format", "xml", "--", "true"), 2, []string{`--log-format "xml"`}},
		{"missing secret file", []string{"driver", "shell", "--secret-file", filepath.Join(dir, "nope"), "--on-master", "a", "--on-standby", "b"}, 1, []string{"--secret-file " + filepath.Join(dir, "nope") + ": no such file or directory"}},
		{"broken config", []string{"driver", "webhook", "--config", filepath.Join(dir, "broken.yml"), "--url", "http://h/"}, 1, []string{"broken.yml"}},
		{"unknown flag", []string{"driver", "exec", "--nope", "--config", cfg, "--", "true"}, 2, []string{"flag provided but not defined"}},
		{"exec stop too long for the daemon", []string{"driver", "exec", "--config", cfg, "--stop-timeout", "26s", "--", "true"}, 2,
			[]string{"--stop-timeout 26s plus the 5s wait after SIGKILL lets a demote take 31s, longer than demote_timeout 30s in " + cfg, "the daemon would refuse this driver"}},
		{"shell timeout too long for the daemon", []string{"driver", "shell", "--config", cfg, "--timeout", "31s", "--on-master", "a", "--on-standby", "b"}, 2,
			[]string{"--timeout 31s lets a demote take 31s, longer than demote_timeout 30s in " + cfg}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code, msg := runApp(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, msg)
			}
			for _, m := range tt.msg {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not contain %q", msg, m)
				}
			}
		})
	}
}

func TestDriverHelp(t *testing.T) {
	for _, cmd := range []string{"exec", "shell", "webhook"} {
		out, code, msg := runApp(t, "driver", cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, msg)
		}
		for _, want := range []string{"clustd driver " + cmd, "Examples:", "--config", "--secret-file", "--required", "CLUSTD_"} {
			if cmd == "webhook" && want == "CLUSTD_" {
				continue
			}
			if !strings.Contains(out, want) {
				t.Errorf("%s --help does not mention %q", cmd, want)
			}
		}
	}
	out, _, _ := runApp(t, "driver", "shell", "--help")
	if !strings.Contains(out, "also once at\n   start-up if the node is not master") {
		t.Error("shell --help does not say that on-standby runs at start-up")
	}
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

func TestDriverShellEndToEnd(t *testing.T) {
	d := newFakeDaemon(t)
	dir, _, cfg := driverFiles(t, d.addr())
	ran := filepath.Join(dir, "ran")
	r := startDriver(t, "driver", "shell", "--config", cfg, "--required", "--name", "vip",
		"--on-master", `echo "master $CLUSTD_TERM $CLUSTD_NODE" >> `+ran,
		"--on-standby", `echo "$CLUSTD_ROLE $CLUSTD_TERM" >> `+ran+`; test ! -e `+filepath.Join(dir, "fail"))
	dc := d.accept()
	if dc.hello.Name != "vip" || !dc.hello.Required || !strings.HasPrefix(dc.hello.ID, "vip-") {
		t.Errorf("hello %+v: want name vip, required", dc.hello)
	}
	// shell declares its --timeout as its demote time.
	if dc.hello.DemoteTimeoutMS != shelldriver.DefaultTimeout.Milliseconds() {
		t.Errorf("hello declares a demote time of %dms, want the %v timeout", dc.hello.DemoteTimeoutMS, shelldriver.DefaultTimeout)
	}
	dc.send(1, 3, 0)
	if e, _ := dc.ack(1); e != "" {
		t.Fatalf("state 1: %s", e)
	}
	dc.send(2, 4, time.Hour)
	if e, _ := dc.ack(2); e != "" {
		t.Fatalf("state 2: %s", e)
	}
	// A failing on-standby is reported in the ack and as health.
	write(t, filepath.Join(dir, "fail"), "")
	dc.send(3, 5, 0)
	e, health := dc.ack(3)
	if e != "on-standby failed: exit status 1" || len(health) != 1 || health[0] != "false on-standby failed: exit status 1" {
		t.Errorf("state 3: ack error %q, health %q", e, health)
	}
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	want := "follower 3 master 4 a follower 5"
	if got := strings.Join(lines(ran), " "); got != want {
		t.Errorf("scripts ran %q, want %q", got, want)
	}
	if log := r.stderr.String(); !strings.Contains(log, "script=on-master") || !strings.Contains(log, "node=a") {
		t.Errorf("the log does not name the script and node:\n%s", log)
	}
}

func TestDriverExecEndToEnd(t *testing.T) {
	d := newFakeDaemon(t)
	dir, secret, _ := driverFiles(t, "127.0.0.1:1")
	pidFile := filepath.Join(dir, "pid")
	r := startDriver(t, "driver", "exec", "--addr", d.addr(), "--secret-file", secret, "--stop-timeout", "5s",
		"--", "/bin/sh", "-c", `echo $$ > `+pidFile+`.tmp && mv `+pidFile+`.tmp `+pidFile+`; exec sleep 100`)
	dc := d.accept()
	// The declared demote time is the stop timeout plus the wait after
	// SIGKILL.
	if ms := dc.hello.DemoteTimeoutMS; ms != (5*time.Second + common.KillWait).Milliseconds() {
		t.Errorf("hello declares a demote time of %dms, want 5s + %v", ms, common.KillWait)
	}
	readPid := func() int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(pidFile)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
			if time.Now().After(deadline) {
				t.Fatal("the command did not start")
			}
			<-time.After(2 * time.Millisecond)
		}
	}

	// Master with a lease that is never renewed: the command must stop
	// when it runs out, though nothing else happens.
	dc.send(1, 2, time.Second)
	if e, _ := dc.ack(1); e != "" {
		t.Fatalf("state 1: %s", e)
	}
	pid := readPid()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("the command survived its lease")
		}
		<-time.After(2 * time.Millisecond)
	}
	os.Remove(pidFile)

	// Master again; SIGTERM to the driver stops the command and exits 0.
	dc.send(2, 3, time.Hour)
	if e, _ := dc.ack(2); e != "" {
		t.Fatalf("state 2: %s", e)
	}
	pid = readPid()
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	if processAlive(pid) {
		t.Error("the command outlived the driver")
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z'
}

func TestDriverWebhookEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var auth []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer hook.Close()
	received := func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), got...)
	}

	d := newFakeDaemon(t)
	_, secret, _ := driverFiles(t, "127.0.0.1:1")
	r := startDriver(t, "driver", "webhook", "--addr", d.addr(), "--secret-file", secret,
		"--url", hook.URL+"/in", "--events", "all", "--header", "Authorization: Bearer a, b")
	dc := d.accept()
	if !dc.hello.Events {
		t.Error("--events all did not ask for the event stream")
	}
	dc.send(1, 7, time.Hour)
	if e, _ := dc.ack(1); e != "" {
		t.Fatalf("state 1: %s", e)
	}
	if err := dc.ws.WriteJSON(driverproto.Message{Type: driverproto.TypeEvent, Seq: 2, Event: &driverproto.Event{Kind: driverproto.EventMemberLost, Node: "a", Term: 7, Detail: "b"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(received()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("received %v", received())
		}
		<-time.After(2 * time.Millisecond)
	}
	// Stopping while master: the final demote is posted before exit.
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	g := received()
	if len(g) != 3 {
		t.Fatalf("received %v, want master, the event and the final demote", g)
	}
	if g[0]["type"] != "role" || g[0]["role"] != "master" || g[0]["term"] != 7.0 {
		t.Errorf("first notification %v", g[0])
	}
	if g[1]["type"] != "event" || g[1]["kind"] != "member_lost" || g[1]["detail"] != "b" {
		t.Errorf("second notification %v", g[1])
	}
	if g[2]["role"] != "follower" || g[2]["local"] != true {
		t.Errorf("third notification %v", g[2])
	}
	if auth[0] != "Bearer a, b" {
		t.Errorf("Authorization %q", auth[0])
	}
}

func TestDriverShellBurst(t *testing.T) {
	// States faster than the scripts: the client library skips the ones
	// in between, and the scripts that do run never overlap, go in term
	// order and end at the last state.
	d := newFakeDaemon(t)
	dir, secret, _ := driverFiles(t, "127.0.0.1:1")
	log := filepath.Join(dir, "log")
	script := `echo "start $CLUSTD_ROLE $CLUSTD_TERM" >> ` + log + `; sleep 0.02; echo "end $CLUSTD_ROLE $CLUSTD_TERM" >> ` + log
	r := startDriver(t, "driver", "shell", "--addr", d.addr(), "--secret-file", secret, "--on-master", script, "--on-standby", script)
	dc := d.accept()
	const n = 30
	for seq := uint64(1); seq <= n; seq++ {
		lease := time.Duration(0)
		if seq%2 == 0 {
			lease = time.Hour
		}
		dc.send(seq, seq, lease)
	}
	dc.ack(n)
	b, _ := os.ReadFile(log)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last uint64
	for i := 0; i < len(got); i += 2 {
		role, term, ok := strings.Cut(strings.TrimPrefix(got[i], "start "), " ")
		if !ok || !strings.HasPrefix(got[i], "start ") || i+1 >= len(got) || got[i+1] != "end "+role+" "+term {
			t.Fatalf("scripts overlapped at line %d:\n%s", i+1, b)
		}
		tn, _ := strconv.ParseUint(term, 10, 64)
		if tn < last {
			t.Fatalf("term %d ran after term %d:\n%s", tn, last, b)
		}
		last = tn
	}
	if want := fmt.Sprintf("end master %d", n); got[len(got)-1] != want {
		t.Errorf("the last script ended with %q, want %q", got[len(got)-1], want)
	}
	if r.wait(t) != 0 {
		t.Error("non-zero exit")
	}
}
