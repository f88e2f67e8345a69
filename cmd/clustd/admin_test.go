package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clustd/clustd/node/api"
)

const adminTestSecret = "0123456789abcdef0123456789abcdef0123456789"

// adminDaemon is a fake daemon that records what it is asked.
type adminDaemon struct {
	mu        sync.Mutex
	status    api.Status
	err       error
	transfers []string
	maint     []bool
}

func (d *adminDaemon) Status() api.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *adminDaemon) Transfer(_ context.Context, to string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.transfers = append(d.transfers, to)
	return d.err
}

func (d *adminDaemon) SetMaintenance(_ context.Context, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maint = append(d.maint, on)
	return d.err
}

func testStatus() api.Status {
	return api.Status{
		Node: "a", Role: "master", Term: 7, Master: "a", LeaseMS: 1450,
		Eligible: true, Healthy: true, Reason: "elected", SinceMS: 192000,
		Members: []api.MemberStatus{
			{ID: "a", Address: "10.0.0.1:7946", Priority: 100, Self: true, Reachable: true},
			{ID: "b", Address: "10.0.0.2:7946", Priority: 50, Reachable: true, LastSeenMS: 20, RTTMS: 0.4},
			{ID: "w", Address: "10.0.0.3:7946", Witness: true, LastSeenMS: -1},
		},
	}
}

// adminEnv is a daemon's handler on a test server, with the files that the
// CLI reads to find it.
type adminEnv struct {
	d          *adminDaemon
	addr       string
	dir        string
	config     string // http.listen is the server's address
	wildConfig string // http.listen is 0.0.0.0 on the server's port
	secretFile string
	token      string
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	// The environment must not leak into the tests, nor the tests into it.
	for _, v := range []string{"CLUSTD_CONFIG", "CLUSTD_ADDR", "CLUSTD_TOKEN"} {
		t.Setenv(v, "")
	}
	e := &adminEnv{d: &adminDaemon{status: testStatus()}, dir: t.TempDir(), token: api.AdminToken([]byte(adminTestSecret))}
	srv := httptest.NewServer(api.NewHandler(api.HandlerOptions{Daemon: e.d, Token: e.token}))
	t.Cleanup(srv.Close)
	e.addr = srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(e.addr)

	e.secretFile = filepath.Join(e.dir, "secret")
	write(t, e.secretFile, adminTestSecret+"\n")
	write(t, filepath.Join(e.dir, "short"), "too short\n")
	write(t, filepath.Join(e.dir, "wrong-secret"), strings.Repeat("z", 40)+"\n")
	base := "id: a\n" +
		"data_dir: data\n" +
		"secret_file: secret\n" +
		"members:\n" +
		"  - id: a\n" +
		"    address: 10.0.0.1:7946\n" +
		"  - id: b\n" +
		"    address: 10.0.0.2:7946\n" +
		"  - id: w\n" +
		"    address: 10.0.0.3:7946\n" +
		"    witness: true\n"
	e.config = filepath.Join(e.dir, "a.yml")
	write(t, e.config, base+"http:\n  listen: "+e.addr+"\n")
	e.wildConfig = filepath.Join(e.dir, "wild.yml")
	write(t, e.wildConfig, base+"http:\n  listen: 0.0.0.0:"+port+"\n  allow_non_loopback: true\n")
	write(t, filepath.Join(e.dir, "broken.yml"), "id: [\n")
	return e
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runApp runs the CLI as run does and returns its output, exit code and
// error message.
func runApp(t *testing.T, args ...string) (out string, code int, msg string) {
	t.Helper()
	app := newApp()
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	err := app.RunContext(context.Background(), append([]string{"clustd"}, args...))
	if err == nil {
		return stdout.String(), 0, ""
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return stdout.String(), ee.code, ee.msg
	}
	return stdout.String(), 2, err.Error()
}

func TestAdminCommands(t *testing.T) {
	e := newAdminEnv(t)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	f := func(name string) string { return filepath.Join(e.dir, name) }

	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		daemonErr error
		code      int
		out       []string // substrings of stdout
		msg       []string // substrings of the error message
		transfers []string
		maint     []bool
	}{
		// status
		{name: "status via config", args: []string{"status", "--config", e.config},
			out: []string{"node:         a\n", "role:         master (elected, 3m12s ago)\n", "term:         7\n", "master:       a\n", "lease:        1.45s\n", "eligible:     yes\n", "maintenance:  no\n",
				"MEMBER    ADDRESS        REACHABLE  LAST SEEN  RTT     WITNESS  PRIORITY\n",
				"a (self)  10.0.0.1:7946  -          -          -       no       100\n",
				"b         10.0.0.2:7946  yes        20ms ago   0.40ms  no       50\n",
				"w         10.0.0.3:7946  no         never      -       yes      0\n"}},
		{name: "status via wildcard config", args: []string{"status", "-c", e.wildConfig}, out: []string{"node:         a\n"}},
		{name: "status via addr", args: []string{"status", "--addr", e.addr}, out: []string{"role:         master"}},
		{name: "status addr beats config", args: []string{"status", "--config", f("broken.yml"), "--addr", e.addr}, out: []string{"node:"}},
		{name: "status via env", args: []string{"status"}, env: map[string]string{"CLUSTD_ADDR": e.addr}, out: []string{"node:"}},
		{name: "status via config env", args: []string{"status"}, env: map[string]string{"CLUSTD_CONFIG": e.config}, out: []string{"node:"}},
		{name: "status json", args: []string{"status", "--addr", e.addr, "--json"}, out: []string{`"node": "a"`, `"lease_ms": 1450`, `"last_seen_ms": -1`}},
		{name: "status not running", args: []string{"status", "--addr", closed}, code: 1, msg: []string{"the clustd daemon at " + closed + " is not running (or not listening there)"}},
		{name: "status bad addr", args: []string{"status", "--addr", "localhost"}, code: 2, msg: []string{`--addr "localhost": want HOST:PORT`, "usage: clustd status"}},
		{name: "status bad port", args: []string{"status", "--addr", "127.0.0.1:99999"}, code: 2, msg: []string{"not a number from 1 to 65535"}},
		{name: "status extra argument", args: []string{"status", "a"}, code: 2, msg: []string{`unexpected argument "a"`}},
		{name: "status unknown flag", args: []string{"status", "--nope"}, code: 2, msg: []string{"flag provided but not defined"}},
		{name: "status broken config", args: []string{"status", "--config", f("broken.yml")}, code: 1, msg: []string{"broken.yml"}},
		{name: "status missing config", args: []string{"status", "--config", f("nope.yml")}, code: 1, msg: []string{"nope.yml"}},

		// transfer
		{name: "transfer via config", args: []string{"transfer", "--config", e.config, "--to", "b"}, out: []string{"transfer to b accepted by the master at " + e.addr}, transfers: []string{"b"}},
		{name: "transfer to best", args: []string{"transfer", "--config", e.config}, out: []string{"transfer to the best eligible node accepted"}, transfers: []string{""}},
		{name: "transfer secret file", args: []string{"transfer", "--addr", e.addr, "--secret-file", e.secretFile, "--to", "b"}, transfers: []string{"b"}},
		{name: "transfer token", args: []string{"transfer", "--addr", e.addr, "--token", e.token}, transfers: []string{""}},
		{name: "transfer token env", args: []string{"transfer", "--to", "b"}, env: map[string]string{"CLUSTD_ADDR": e.addr, "CLUSTD_TOKEN": e.token}, transfers: []string{"b"}},
		{name: "transfer addr with config token", args: []string{"transfer", "--addr", e.addr, "--config", e.wildConfig}, transfers: []string{""}},
		{name: "transfer not master", args: []string{"transfer", "--config", e.config, "--to", "b"}, daemonErr: fmt.Errorf("%w: the master is b; run the transfer there", api.ErrNotMaster),
			code: 1, msg: []string{"409 Conflict: this node is not the master: the master is b; run the transfer there"}, transfers: []string{"b"}},
		{name: "transfer unknown target", args: []string{"transfer", "--config", e.config, "--to", "z"}, daemonErr: fmt.Errorf("%w: z", api.ErrUnknownTarget),
			code: 1, msg: []string{"400 Bad Request: no such member: z"}, transfers: []string{"z"}},
		{name: "transfer wrong secret", args: []string{"transfer", "--addr", e.addr, "--secret-file", f("wrong-secret")}, code: 1, msg: []string{"401 Unauthorized: the token derived from " + f("wrong-secret") + " is not this daemon's; is it the same cluster's secret?"}},
		{name: "transfer wrong token", args: []string{"transfer", "--addr", e.addr, "--token", strings.Repeat("ab", 32)}, code: 1, msg: []string{"401 Unauthorized: wrong admin token"}},
		{name: "transfer no credentials", args: []string{"transfer", "--addr", e.addr}, code: 2, msg: []string{"transfer needs the admin token: give --config FILE"}},
		{name: "transfer token and secret", args: []string{"transfer", "--addr", e.addr, "--token", e.token, "--secret-file", e.secretFile}, code: 2, msg: []string{"give --token or --secret-file, not both"}},
		{name: "transfer malformed token", args: []string{"transfer", "--addr", e.addr, "--token", adminTestSecret}, code: 2, msg: []string{"an admin token is 64 hex digits"}},
		{name: "transfer short secret", args: []string{"transfer", "--addr", e.addr, "--secret-file", f("short")}, code: 1, msg: []string{"holds 9 bytes"}},
		{name: "transfer missing secret", args: []string{"transfer", "--addr", e.addr, "--secret-file", f("nope")}, code: 1, msg: []string{"--secret-file " + f("nope") + ": no such file or directory"}},
		{name: "transfer secret is a directory", args: []string{"transfer", "--addr", e.addr, "--secret-file", e.dir}, code: 1, msg: []string{"not a regular file"}},
		{name: "transfer bad target", args: []string{"transfer", "--config", e.config, "--to", "b c"}, code: 2, msg: []string{`--to "b c" is not a node id`}},
		{name: "transfer empty target", args: []string{"transfer", "--config", e.config, "--to", ""}, code: 2, msg: []string{`--to "" is not a node id`}},
		{name: "transfer positional target", args: []string{"transfer", "--config", e.config, "b"}, code: 2, msg: []string{`unexpected argument "b"; to name the target, use --to b`}},
		{name: "transfer not running", args: []string{"transfer", "--addr", closed, "--token", e.token}, code: 1, msg: []string{"is not running"}},

		// maintenance
		{name: "maintenance on", args: []string{"maintenance", "--config", e.config, "on"}, out: []string{"maintenance on for the node at " + e.addr}, maint: []bool{true}},
		{name: "maintenance off", args: []string{"maintenance", "--addr", e.addr, "--secret-file", e.secretFile, "OFF"}, out: []string{"maintenance OFF"}, maint: []bool{false}},
		{name: "maintenance missing", args: []string{"maintenance", "--config", e.config}, code: 2, msg: []string{"say on or off", "usage: clustd maintenance [options] on|off"}},
		{name: "maintenance bad value", args: []string{"maintenance", "--config", e.config, "yes"}, code: 2, msg: []string{`"yes": say on or off`}},
		{name: "maintenance flags after value", args: []string{"maintenance", "on", "--config", e.config, "--for", "2h", "--reason", "kernel upgrade"}, out: []string{"maintenance on for the node at " + e.addr}, maint: []bool{true}},
		{name: "maintenance off flags after value", args: []string{"maintenance", "off", "--config", e.config}, out: []string{"maintenance off for the node at " + e.addr}, maint: []bool{false}},
		{name: "maintenance for with off", args: []string{"maintenance", "off", "--config", e.config, "--for", "2h"}, code: 2, msg: []string{"--for and --reason go with on"}},
		{name: "maintenance for too short", args: []string{"maintenance", "on", "--config", e.config, "--for", "10ms"}, code: 2, msg: []string{"--for 10ms: give a duration from 1s to 168h0m0s"}},
		{name: "maintenance argument after flags", args: []string{"maintenance", "on", "--config", e.config, "now"}, code: 2, msg: []string{`unexpected argument "now"`}},
		{name: "maintenance no token", args: []string{"maintenance", "--addr", e.addr, "on"}, code: 2, msg: []string{"maintenance needs the admin token"}},
		{name: "maintenance daemon error", args: []string{"maintenance", "--config", e.config, "on"}, daemonErr: fmt.Errorf("%w: shutting down", api.ErrUnavailable),
			code: 1, msg: []string{"503 Service Unavailable: the daemon is not ready: shutting down"}, maint: []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			e.d.mu.Lock()
			e.d.err, e.d.transfers, e.d.maint = tt.daemonErr, nil, nil
			e.d.mu.Unlock()

			out, code, msg := runApp(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; message %q; output:\n%s", code, tt.code, msg, out)
			}
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tt.msg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			e.d.mu.Lock()
			transfers, maint := e.d.transfers, e.d.maint
			e.d.mu.Unlock()
			if !slices.Equal(transfers, tt.transfers) || !slices.Equal(maint, tt.maint) {
				t.Errorf("daemon got transfers %q maintenance %v, want %q %v", transfers, maint, tt.transfers, tt.maint)
			}
		})
	}
}

func TestStatusJSONRoundTrips(t *testing.T) {
	e := newAdminEnv(t)
	out, code, msg := runApp(t, "status", "--addr", e.addr, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	var got api.Status
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testStatus()) {
		t.Errorf("got %+v\nwant %+v", got, testStatus())
	}
}

func TestStatusQuotesControlCharacters(t *testing.T) {
	e := newAdminEnv(t)
	e.d.mu.Lock()
	e.d.status = api.Status{Node: "a\x1b[2J", Role: "follower", Members: []api.MemberStatus{{ID: "x\ty", Address: "h:1"}}}
	e.d.mu.Unlock()
	out, code, msg := runApp(t, "status", "--addr", e.addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if strings.ContainsAny(out, "\x1b") {
		t.Errorf("output holds an escape character:\n%q", out)
	}
	for _, want := range []string{`"a\x1b[2J"`, `"x\ty"`, "master:       (none known)", "lease:        -"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAdminHelp(t *testing.T) {
	for cmd, want := range map[string][]string{
		"status":      {"clustd status --config /etc/clustd/clustd.yml", "--json", "$CLUSTD_ADDR", "$CLUSTD_CONFIG"},
		"transfer":    {"clustd transfer --config /etc/clustd/clustd.yml --to b", "--secret-file", "$CLUSTD_TOKEN"},
		"maintenance": {"clustd maintenance --config /etc/clustd/clustd.yml on", "on|off"},
	} {
		out, code, msg := runApp(t, cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, msg)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, w, out)
			}
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:3001": "127.0.0.1:3001",
		"0.0.0.0:3001":   "127.0.0.1:3001",
		"[::]:3001":      "127.0.0.1:3001",
		":3001":          "127.0.0.1:3001",
		"[::1]:3001":     "[::1]:3001",
		"localhost:3001": "localhost:3001",
	} {
		got, err := dialAddr(in)
		if err != nil || got != want {
			t.Errorf("dialAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3001", "host", "h:0", "h:x", "h:65536"} {
		if got, err := dialAddr(in); err == nil {
			t.Errorf("dialAddr(%q) = %q, want an error", in, got)
		}
	}
}
