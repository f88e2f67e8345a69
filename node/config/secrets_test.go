package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clustd/clustd/internal/secretfile"
)

func initCluster(t *testing.T) (dir string, res *InitResult) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "c")
	res, err := Init(InitOptions{Dir: dir, Members: "a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003"})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res
}

// TestEachProgramReadsOnlyItsSecret removes the peer secret: a driver and
// the admin commands still load the configuration, the daemon does not.
func TestEachProgramReadsOnlyItsSecret(t *testing.T) {
	_, res := initCluster(t)
	cfgPath := res.Nodes[0].ConfigFile
	full, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(res.SecretFile); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfgPath); err == nil {
		t.Fatal("the daemon's load succeeded without the peer secret")
	}
	d, err := LoadFor(cfgPath, DriversSecretOnly)
	if err != nil {
		t.Fatalf("a driver's load needs more than the drivers secret: %v", err)
	}
	if d.Secret != nil || d.AdminToken != "" || string(d.DriversSecret) != string(full.DriversSecret) {
		t.Fatalf("a driver's load read secret=%v admin token=%q", d.Secret != nil, d.AdminToken)
	}
	os.Rename(res.DriversSecretFile, res.DriversSecretFile+".away")
	a, err := LoadFor(cfgPath, AdminTokenOnly)
	if err != nil {
		t.Fatalf("the admin commands' load needs more than the admin token: %v", err)
	}
	if a.Secret != nil || a.DriversSecret != nil || a.AdminToken != full.AdminToken {
		t.Fatalf("the admin commands' load read secret=%v drivers secret=%v", a.Secret != nil, a.DriversSecret != nil)
	}
}

// TestSingleSecretConfigStillWorks: a configuration from before the three
// files, with secret_file only, serves drivers and admin from that secret.
func TestSingleSecretConfigStillWorks(t *testing.T) {
	dir, res := initCluster(t)
	cfgPath := filepath.Join(dir, "old.yml")
	b, _ := os.ReadFile(res.Nodes[0].ConfigFile)
	old := strings.NewReplacer("drivers_secret_file: \"drivers.secret\"\n", "", "admin_token_file: \"admin.token\"\n", "").Replace(string(b))
	os.WriteFile(cfgPath, []byte(old), 0o644)
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.DriversSecret) != string(c.Secret) || c.AdminToken != "" {
		t.Fatalf("old configuration: drivers secret is the peer secret: %v; admin token %q (want derived)", string(c.DriversSecret) == string(c.Secret), c.AdminToken)
	}
	if d, err := LoadFor(cfgPath, DriversSecretOnly); err != nil || string(d.DriversSecret) != string(c.Secret) {
		t.Fatalf("a driver with an old configuration: %v", err)
	}
}

func TestOpenSecretFileRefused(t *testing.T) {
	_, res := initCluster(t)
	for _, f := range []string{res.SecretFile, res.DriversSecretFile, res.AdminTokenFile} {
		os.Chmod(f, 0o640)
		_, err := Load(res.Nodes[0].ConfigFile)
		if !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+f) {
			t.Errorf("%s at 0640: %v", f, err)
		}
		os.Chmod(f, 0o600)
	}
}

func TestInlineSecretInReadableFileWarns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yml")
	yml := "id: a\ndata_dir: d\nsecret: \"" + strings.Repeat("s", 40) + "\"\nmembers:\n  - id: a\n    address: 127.0.0.1:7001\n"
	os.WriteFile(path, []byte(yml), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("private file warned: %q", c.Warnings)
	}
	os.Chmod(path, 0o644)
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "chmod 600 "+path) {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestInitRefusesUnsafeDirectories(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	_, err := Init(InitOptions{Dir: open, Members: "a=127.0.0.1:7001"})
	if err == nil || !strings.Contains(err.Error(), "chmod go-w "+open) {
		t.Errorf("world-writable dir: %v", err)
	}
	if entries, _ := os.ReadDir(open); len(entries) != 0 {
		t.Errorf("Init wrote into a world-writable dir: %v", entries)
	}
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	if _, err := Init(InitOptions{Dir: link, Members: "a=127.0.0.1:7001"}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked dir: %v", err)
	}
}

// TestInitForceReplacesLinks: a link planted where a secret goes is
// replaced, and the file it points to is left alone.
func TestInitForceReplacesLinks(t *testing.T) {
	dir, res := initCluster(t)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("untouched"), 0o644)
	os.Remove(res.SecretFile)
	if err := os.Symlink(victim, res.SecretFile); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(InitOptions{Dir: dir, Members: "a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003", Force: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Fatalf("Init wrote through a link: victim now %q", b)
	}
	if fi, err := os.Lstat(res.SecretFile); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret after forced Init: %v %v", fi.Mode(), err)
	}
}

func TestRequiredDrivers(t *testing.T) {
	dir := t.TempDir()
	base := "id: a\ndata_dir: d\nsecret: \"" + strings.Repeat("s", 40) + "\"\nmembers:\n  - id: a\n    address: 127.0.0.1:7001\n"
	path := filepath.Join(dir, "a.yml")
	write := func(extra string) (*Config, error) {
		os.WriteFile(path, []byte(base+extra), 0o600)
		return Load(path)
	}
	c, err := write("drivers:\n  required: [db, vip]\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.RequiredDrivers, ",") != "db,vip" {
		t.Fatalf("RequiredDrivers = %q", c.RequiredDrivers)
	}
	for extra, want := range map[string]string{
		"drivers:\n  required: db\n":        "drivers.required",
		"drivers:\n  required: [db, db]\n":  `"db" is listed twice`,
		"drivers:\n  required: [\"a b\"]\n": `"a b" is not a driver name`,
		"drivers:\n  requires: [db]\n":      "requires",
	} {
		if _, err := write(extra); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", extra, err, want)
		}
	}
}
