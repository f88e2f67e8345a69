package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files of testdata/check")

const testSecret = "0123456789abcdef0123456789abcdef0123456789abcdef"

// checkEnv writes a secret file and configuration files into a directory
// whose path the golden files show as DIR.
type checkEnv struct {
	t   *testing.T
	dir string
}

func newCheckEnv(t *testing.T) *checkEnv {
	dir := t.TempDir()
	e := &checkEnv{t: t, dir: dir}
	e.file("secret", testSecret+"\n", 0o600)
	return e
}

func (e *checkEnv) file(name, data string, mode os.FileMode) string {
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		e.t.Fatal(err)
	}
	return path
}

// golden compares got, with the directory replaced by DIR, against
// testdata/check/NAME, or rewrites it with -rewrite.
func golden(t *testing.T, dir, name, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, dir, "DIR")
	path := filepath.Join("testdata", "check", name)
	if *rewrite {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -rewrite to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run TestCheckGolden -rewrite updates it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestCheckGolden(t *testing.T) {
	e := newCheckEnv(t)
	three := "id: a\ndata_dir: a.data\nsecret_file: secret\nmembers:\n  - {id: a, address: 127.0.0.1:7001}\n  - {id: b, address: 127.0.0.1:7002}\n  - {id: w, address: 127.0.0.1:7003, witness: true}\n"
	e.file("good.yml", three, 0o640)
	e.file("risky.yml", "id: a\ndata_dir: a.data\nsecret_file: secret\nmembers:\n  - {id: a, address: 127.0.0.1:7001}\n  - {id: b, address: 127.0.0.1:7002}\n"+
		"timing:\n  heartbeat: 150ms\n  max_clock_drift: 0.001\n", 0o600)
	e.file("open-secret", testSecret, 0o644)
	e.file("open.yml", strings.Replace(three, "secret_file: secret", "secret_file: open-secret", 1), 0o600)
	e.file("bad.yml", "id: a\ndata_dir: a.data\nsecret_file: secret\nmembers:\n  - {id: b, address: 127.0.0.1:7002}\n", 0o600)

	for _, c := range []struct {
		file string
		json bool
		code int
	}{
		{"good.yml", false, 0},
		{"risky.yml", false, 2},
		{"risky.yml", true, 2},
		{"open.yml", false, 1},
		{"bad.yml", false, 1},
	} {
		out, code, msg := runApp(t, "check", "--config", filepath.Join(e.dir, c.file), fmt.Sprintf("--json=%v", c.json))
		if code != c.code || msg != "" {
			t.Errorf("%s: exit %d (%q), want %d", c.file, code, msg, c.code)
		}
		name := strings.TrimSuffix(c.file, ".yml")
		if c.json {
			name += ".json"
			var rep checkReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Errorf("%s: --json is not JSON: %v", c.file, err)
			}
		}
		golden(t, e.dir, name+".golden", out)
	}
}

// TestCheckPeers runs two real daemons of a three-member cluster (the third
// is down) and one with another timing, and checks what --peers reports.
func TestCheckPeers(t *testing.T) {
	e := newCheckEnv(t)
	ports := make([]int, 6)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	members := fmt.Sprintf("members:\n  - {id: a, address: 127.0.0.1:%d}\n  - {id: b, address: 127.0.0.1:%d}\n  - {id: c, address: 127.0.0.1:%d}\n", ports[0], ports[1], ports[2])
	conf := func(id string, http int, extra string) string {
		return e.file(id+".yml", fmt.Sprintf("id: %s\ndata_dir: %s.data\nsecret_file: secret\n%shttp:\n  listen: 127.0.0.1:%d\ntiming:\n  profile: fast\n%s", id, id, members, http, extra), 0o600)
	}
	aPath := conf("a", ports[3], "")
	conf("b", ports[4], "  heartbeat: 20ms\n") // differs: refuses a's hash
	for _, path := range []string{aPath, filepath.Join(e.dir, "b.yml")} {
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	out, code, _ := runApp(t, "check", "--config", aPath, "--peers", "--probe-time", "200ms", "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 || rep.Result != "errors" {
		t.Errorf("exit %d, result %q; want 1, errors (b's timing differs)", code, rep.Result)
	}
	if len(rep.Peers) != 3 {
		t.Fatalf("peers %+v", rep.Peers)
	}
	a, b, c := rep.Peers[0], rep.Peers[1], rep.Peers[2]
	if !a.Self || !a.Reachable || !a.SameConfig || a.RTTMS <= 0 || a.ClockRate < 0.9 || a.ClockRate > 1.1 || a.Problem != "" {
		t.Errorf("a: %+v", a)
	}
	if !b.Reachable || !b.Authenticated || b.SameConfig || !strings.Contains(b.Problem, "timing differs") {
		t.Errorf("b: %+v", b)
	}
	if c.Reachable || !strings.Contains(c.Problem, "cannot connect") {
		t.Errorf("c: %+v", c)
	}
	// A wrong secret is told apart from a different configuration.
	wrong := e.file("wrong-secret", strings.Repeat("x", 40), 0o600)
	e.file("a2.yml", strings.Replace(string(must(os.ReadFile(aPath))), "secret_file: secret", "secret_file: "+wrong, 1), 0o600)
	out, _, _ = runApp(t, "check", "--config", filepath.Join(e.dir, "a2.yml"), "--peers", "--probe-time", "100ms", "--json")
	rep = checkReport{}
	json.Unmarshal([]byte(out), &rep)
	if len(rep.Peers) != 3 || rep.Peers[0].Authenticated || !strings.Contains(rep.Peers[0].Problem, "secret") {
		t.Errorf("wrong secret: %+v", rep.Peers)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
