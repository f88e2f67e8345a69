package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

func TestStatusListsSeedDriversAsLegacy(t *testing.T) {
	e := newAdminEnv(t)
	out, code, msg := runApp(t, "status", "--addr", e.addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if strings.Contains(out, "LEGACY") {
		t.Errorf("a status without 2018 drivers mentions them:\n%s", out)
	}
	e.d.mu.Lock()
	e.d.status.SeedDrivers = []api.SeedDriverStatus{{ID: "driver-shell-7", Remote: "127.0.0.1:40000", ToldMaster: true, Holding: true, SinceMS: 2000}}
	e.d.mu.Unlock()
	out, code, msg = runApp(t, "status", "--addr", e.addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{"WARNING: 1 legacy 2018 (clustd-lib) drivers", "no lease", "unplanned failover", "LEGACY DRIVER", "driver-shell-7", "127.0.0.1:40000", "2s ago"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestImportSeedCommand(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "config.yml")
	src := "server:\n  bind_address: 0.0.0.0\n  bind_port: 3001\n  remote_address: ws://10.0.0.1:3001\n" +
		"cluster:\n  secret: 'vxLjIO8pOjvcA48RlXWCy8D/RIr/2S0y/gF1ncypHDjM9oINXfRkUW2wN/tKmjYF'\n  id: cm-1\n  machines:\n    - ws://10.0.0.2:3001\n"
	if err := os.WriteFile(old, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "new")
	out, code, msg := runApp(t, "import-seed", "--config", old, "--dir", outDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{"wrote " + filepath.Join(outDir, "secret"), "not carried over:", `cluster.id: "cm-1" is not carried over`, "start each node with:", "WARNING: legacy 2018"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := config.Load(filepath.Join(outDir, "10.0.0.1-3001.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SeedDrivers || cfg.HTTPListen != "127.0.0.1:3001" || string(cfg.DriversSecret) != "vxLjIO8pOjvcA48RlXWCy8D/RIr/2S0y/gF1ncypHDjM9oINXfRkUW2wN/tKmjYF" {
		t.Errorf("converted configuration: seed drivers %v, http %s, drivers secret %q", cfg.SeedDrivers, cfg.HTTPListen, cfg.DriversSecret)
	}
	if _, code, msg := runApp(t, "import-seed", "--config", old, "--dir", outDir); code != 1 || !strings.Contains(msg, "already exists") {
		t.Errorf("second run: exit %d, %s", code, msg)
	}
}
