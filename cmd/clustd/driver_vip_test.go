package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

func TestDriverVIPAndCheckFlagErrors(t *testing.T) {
	_, secret, _ := driverFiles(t, "127.0.0.1:1")
	conn := []string{"--addr", "127.0.0.1:1", "--secret-file", secret}
	with := func(cmd string, args ...string) []string {
		return append(append([]string{"driver", cmd}, conn...), args...)
	}
	vip := func(args ...string) []string {
		return with("vip", append([]string{"--address", "10.0.0.100/24", "--interface", "eth0"}, args...)...)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"vip without address", with("vip", "--interface", "eth0"), "missing --address"},
		{"vip bad address", with("vip", "--interface", "eth0", "--address", "10.0.0.300/24"), `--address "10.0.0.300/24": want an address with its prefix length`},
		{"vip loopback address", with("vip", "--interface", "eth0", "--address", "127.0.0.5/8"), "not an address a host can hold"},
		{"vip without interface", with("vip", "--address", "10.0.0.100/24"), "missing --interface"},
		{"vip negative count", vip("--garp-count", "-1"), "--garp-count -1: must not be negative"},
		{"vip zero interval", vip("--garp-interval", "0s"), "--garp-interval 0s: must be positive"},
		{"vip negative refresh", vip("--refresh", "-1s"), "--refresh -1s: must not be negative"},
		{"vip stray argument", vip("eth1"), `unexpected argument "eth1"`},
		{"check without probe", with("check"), "no check: give one of --exec, --http, --tcp, --link or --ping"},
		{"check two probes", with("check", "--tcp", "h:1", "--link", "eth0"), "--tcp, --link: one check per driver"},
		{"check bad url", with("check", "--http", "ftp://h/"), `--http "ftp://h/": want an http:// or https:// URL`},
		{"check expect without http", with("check", "--tcp", "h:1", "--expect", "204"), "--expect goes with --http"},
		{"check bad expect", with("check", "--http", "http://h/", "--expect", "42"), "--expect 42: want an HTTP status"},
		{"check bad tcp", with("check", "--tcp", "h"), `--tcp "h": want HOST:PORT`},
		{"check zero fall", with("check", "--tcp", "h:1", "--fall", "0"), "--fall 0: must be at least 1"},
		{"check zero interval", with("check", "--tcp", "h:1", "--interval", "0s"), "--interval 0s: must be positive"},
		{"check negative window", with("check", "--tcp", "h:1", "--flap-window", "-1m"), "--flap-window -1m0s: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code, msg := runApp(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (%s)", code, msg)
			}
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
		})
	}
}

// TestDriverCheckReportsHealth runs clustd driver check against a fake
// daemon: the failing check's health reaches the daemon after --fall
// failures, and the recovery after --rise successes.
func TestDriverCheckReportsHealth(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	d := newFakeDaemon(t)
	_, secret, _ := driverFiles(t, d.addr())
	r := startDriver(t, "driver", "check", "--addr", d.addr(), "--secret-file", secret, "--required", "--name", "web",
		"--http", srv.URL+"/healthz", "--interval", "20ms", "--fall", "2", "--rise", "2")
	dc := d.accept()
	if !dc.hello.Required || !strings.HasPrefix(dc.hello.ID, "web-") {
		t.Fatalf("hello %+v: want a required driver named web", dc.hello)
	}
	failing.Store(true)
	health := func(want bool) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-dc.in:
				if m.Type == driverproto.TypeHealth && *m.OK == want {
					return m.Reason
				}
			case <-timeout:
				t.Fatalf("no health report ok=%v within 10s", want)
			}
		}
	}
	if why := health(false); !strings.Contains(why, "503") || !strings.Contains(why, "web") {
		t.Errorf("unhealthy report %q: want it to name the check and the status", why)
	}
	failing.Store(false)
	health(true)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestDriverVIPHelp(t *testing.T) {
	for _, cmd := range []string{"vip", "check"} {
		out, code, msg := runApp(t, "driver", cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, msg)
		}
		for _, want := range []string{"clustd driver " + cmd, "Examples:", "--config", "--required"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help does not mention %q", cmd, want)
			}
		}
	}
}
