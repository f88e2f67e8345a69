// Package systemd holds clustd's systemd units; its test checks them with
// systemd-analyze.
package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on the units, with the
// binary they name replaced by a freshly built one (verify checks that
// ExecStart is executable). Any warning fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze not found; install the Debian package systemd (.ci/run does) to check the units")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "clustd")
	build := exec.Command("go", "build", "-o", bin, "github.com/clustd/clustd/cmd/clustd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	files, err := filepath.Glob("*.service*")
	if err != nil || len(files) < 3 {
		t.Fatalf("units: %v %v", files, err)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.IsDir() {
			os.MkdirAll(filepath.Join(dir, f), 0o755)
			confs, _ := filepath.Glob(filepath.Join(f, "*.conf"))
			for _, c := range confs {
				copyUnit(t, c, filepath.Join(dir, c), bin)
			}
			continue
		}
		copyUnit(t, f, filepath.Join(dir, f), bin)
	}
	// The template is checked through an instance, which also reads the
	// instance's drop-in directory.
	for _, unit := range []string{"clustd.service", "clustd-driver@vip.service", "clustd-driver@web.service"} {
		cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, unit))
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil || strings.TrimSpace(out.String()) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out.String())
		}
	}
}

func copyUnit(t *testing.T, from, to, bin string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("/usr/bin/clustd"), []byte(bin))
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnitsHardened checks the directives the units promise.
func TestUnitsHardened(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"clustd.service", []string{"Type=notify", "WatchdogSec=", "ExecReload=", "Restart=on-failure", "NoNewPrivileges=yes",
			"ProtectSystem=strict", "StateDirectory=clustd", "\nCapabilityBoundingSet=\n"}},
		{"clustd-driver@.service", []string{"Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "\nCapabilityBoundingSet=\n", "/etc/clustd/drivers/%i.yml"}},
		{"clustd-driver@vip.service.d/net-admin.conf", []string{"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW"}},
	} {
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", c.file, w)
			}
		}
	}
}
