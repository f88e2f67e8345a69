package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDriverFileArgs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, yml string
		want      []string
		errSub    string
	}{
		{"shell", "kind: shell\nconfig: /etc/clustd/clustd.yml\nrequired: true\non-master: ip addr add 10.0.0.100/24 dev eth0\non-standby: 'true'\n",
			[]string{"shell", "--config=/etc/clustd/clustd.yml", "--required=true", "--on-master=ip addr add 10.0.0.100/24 dev eth0", "--on-standby=true"}, ""},
		{"exec", "kind: exec\nstop-timeout: 30s\ncommand: [/usr/sbin/mysvc, --foreground, '--x=1']\n",
			[]string{"exec", "--stop-timeout=30s", "--", "/usr/sbin/mysvc", "--foreground", "--x=1"}, ""},
		{"repeated", "kind: webhook\nurl: http://127.0.0.1:9/\nheader: ['A: 1', 'B: 2, 3']\n",
			[]string{"webhook", "--url=http://127.0.0.1:9/", "--header=A: 1", "--header=B: 2, 3"}, ""},
		{"vip", "kind: vip\ninterface: eth0\naddress: [10.0.0.100/24, '2001:db8::100/64']\n",
			[]string{"vip", "--interface=eth0", "--address=10.0.0.100/24", "--address=2001:db8::100/64"}, ""},
		{"no kind", "config: x\n", nil, "kind is missing"},
		{"bad kind", "kind: vipp\n", nil, "expected exec, shell, webhook, vip or check"},
		{"exec without command", "kind: exec\n", nil, "needs command"},
		{"command for shell", "kind: shell\ncommand: [x]\n", nil, "command is for kind: exec"},
		{"dashes", "kind: shell\n--config: x\n", nil, "without dashes"},
		{"nested", "kind: shell\nconfig: {a: 1}\n", nil, "expected a value"},
		{"empty", "", nil, "empty"},
		{"list", "- a\n", nil, "expected a mapping"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yml")
		os.WriteFile(path, []byte(c.yml), 0o644)
		got, err := driverFileArgs(path)
		if c.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSub) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.errSub)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, %v\nwant %q", c.name, got, err, c.want)
		}
	}
}

func TestDriverFileRunsTheDriver(t *testing.T) {
	// An unknown flag reaches the driver's own parser, which names it.
	path := filepath.Join(t.TempDir(), "x.yml")
	os.WriteFile(path, []byte("kind: shell\nno-such-flag: 1\n"), 0o644)
	_, code, msg := runApp(t, "driver", "file", path)
	if code == 0 || !strings.Contains(msg, "no-such-flag") {
		t.Errorf("exit %d, message %q", code, msg)
	}
}

func FuzzDriverFile(f *testing.F) {
	f.Add([]byte("kind: shell\nconfig: /etc/clustd/clustd.yml\non-master: 'true'\n"))
	f.Add([]byte("kind: exec\ncommand: [a, b]\nheader: [x, y]\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("kind: &k exec\ncommand: *k\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		args, err := parseDriverFile("f.yml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "f.yml") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if len(args) == 0 || !slices.Contains([]string{"exec", "shell", "webhook"}, args[0]) {
			t.Fatalf("args %q", args)
		}
		for _, a := range args[1:] {
			if a == "--" {
				break
			}
			if !strings.HasPrefix(a, "--") || strings.HasPrefix(a, "---") {
				t.Fatalf("flag %q in %q", a, args)
			}
		}
	})
}
