package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clustd/clustd/election"
)

func TestInitRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	res, err := Init(InitOptions{
		Dir:       dir,
		Members:   "a=10.0.0.1:7946, b=10.0.0.2:7946,w=[fd00::3]:7946",
		Witnesses: []string{"w"},
		Profile:   "fast",
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v, %v", fi.Mode(), err)
	}
	secretFile := filepath.Join(dir, "secret")
	if res.SecretFile != secretFile {
		t.Errorf("SecretFile = %q", res.SecretFile)
	}
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v, %v", fi.Mode(), err)
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	secret = bytes.TrimSuffix(secret, []byte("\n"))
	if len(secret) < MinSecretLen {
		t.Errorf("secret is %d bytes", len(secret))
	}

	driversFile, tokenFile := filepath.Join(dir, "drivers.secret"), filepath.Join(dir, "admin.token")
	if res.DriversSecretFile != driversFile || res.AdminTokenFile != tokenFile {
		t.Errorf("DriversSecretFile = %q, AdminTokenFile = %q", res.DriversSecretFile, res.AdminTokenFile)
	}
	for _, f := range []string{driversFile, tokenFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi.Mode(), err)
		}
	}
	driversSecret, _ := os.ReadFile(driversFile)
	driversSecret = bytes.TrimSuffix(driversSecret, []byte("\n"))
	token, _ := os.ReadFile(tokenFile)
	token = bytes.TrimSuffix(token, []byte("\n"))
	if bytes.Equal(driversSecret, secret) || len(driversSecret) < MinSecretLen || len(token) != 64 {
		t.Errorf("drivers secret %d bytes (equal to the peer secret: %v), admin token %d bytes", len(driversSecret), bytes.Equal(driversSecret, secret), len(token))
	}

	wantFiles := []string{secretFile, driversFile, tokenFile, filepath.Join(dir, "a.yml"), filepath.Join(dir, "b.yml"), filepath.Join(dir, "w.yml")}
	if strings.Join(res.Files, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("Files = %q, want %q", res.Files, wantFiles)
	}
	wantMembers := []Member{{"a", "10.0.0.1:7946", false, 0}, {"b", "10.0.0.2:7946", false, 0}, {"w", "[fd00::3]:7946", true, 0}}
	var hash [32]byte
	for i, n := range res.Nodes {
		id := wantMembers[i].ID
		path := filepath.Join(dir, id+".yml")
		if n.ID != id || n.ConfigFile != path || n.Command != "clustd run --config "+path {
			t.Errorf("node %d = %+v", i, n)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%s): %v", path, err)
		}
		wantHTTP := []string{"127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"}[i]
		switch {
		case c.ID != id:
			t.Errorf("%s: ID = %q", path, c.ID)
		case c.DataDir != filepath.Join(dir, id+".data"):
			t.Errorf("%s: DataDir = %q", path, c.DataDir)
		case !bytes.Equal(c.Secret, secret) || !bytes.Equal(c.DriversSecret, driversSecret) || c.AdminToken != string(token):
			t.Errorf("%s: a secret differs from its file", path)
		case c.HTTPListen != wantHTTP || n.HTTPListen != wantHTTP:
			t.Errorf("%s: HTTPListen = %q, node says %q, want %q", path, c.HTTPListen, n.HTTPListen, wantHTTP)
		case c.Listen != wantMembers[i].Address:
			t.Errorf("%s: Listen = %q", path, c.Listen)
		case c.Timing != election.MustProfile(election.ProfileFast):
			t.Errorf("%s: Timing = %+v", path, c.Timing)
		}
		for j, m := range c.Members {
			if m != wantMembers[j] {
				t.Errorf("%s: member %d = %+v, want %+v", path, j, m, wantMembers[j])
			}
		}
		if i == 0 {
			hash = c.MembersHash()
		} else if c.MembersHash() != hash {
			t.Errorf("%s: members hash differs from node a's", path)
		}
	}

	// Running it again must not touch anything.
	before := readAll(t, wantFiles)
	_, err = Init(InitOptions{Dir: dir, Members: "a=10.0.0.1:7946,b=10.0.0.2:7946,w=10.0.0.3:1"})
	if err == nil || err.Error() != secretFile+" already exists; pass --force to overwrite it" {
		t.Errorf("second Init: %v", err)
	}
	if after := readAll(t, wantFiles); after != before {
		t.Error("a refused Init changed files")
	}

	// One existing file is enough to refuse, and the error names it.
	for _, f := range []string{secretFile, driversFile, tokenFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Init(InitOptions{Dir: dir, Members: "a=10.0.0.1:7946,b=10.0.0.2:7946"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a.yml")+" already exists") {
		t.Errorf("Init over a.yml: %v", err)
	}
	if _, err := os.Stat(secretFile); !os.IsNotExist(err) {
		t.Error("a refused Init wrote the secret")
	}

	// With Force it overwrites, and tightens a loosened secret file.
	if err := os.WriteFile(secretFile, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = Init(InitOptions{Dir: dir, Members: "a=127.0.0.1:7001,b=127.0.0.1:7002", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("forced secret: %v, %v", fi.Mode(), err)
	}
	for _, n := range res.Nodes {
		if _, err := Load(n.ConfigFile); err != nil {
			t.Error(err)
		}
	}
}

func readAll(t *testing.T, paths []string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

func TestInitQuotesUnusualIDs(t *testing.T) {
	// Ids that YAML would read as null, a boolean or a number unquoted.
	dir := filepath.Join(t.TempDir(), "dir with 'space'")
	res, err := Init(InitOptions{Dir: dir, Members: "null=127.0.0.1:7001,true=127.0.0.1:7002,1e3=127.0.0.1:7003,0x1=127.0.0.1:7004"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Nodes {
		c, err := Load(n.ConfigFile)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != n.ID {
			t.Errorf("ID = %q, want %q", c.ID, n.ID)
		}
		want := "clustd run --config '" + strings.ReplaceAll(n.ConfigFile, "'", `'\''`) + "'"
		if n.Command != want {
			t.Errorf("Command = %s, want %s", n.Command, want)
		}
	}
}

func TestInitErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := "a=10.0.0.1:1,b=10.0.0.2:1"
	cases := []struct {
		name string
		opts InitOptions
		want string
	}{
		{"no dir", InitOptions{Members: ok}, "--dir: required"},
		{"no members", InitOptions{Dir: tmp}, "--members: required; expected ID=HOST:PORT[,ID=HOST:PORT…]"},
		{"empty entry", InitOptions{Dir: tmp, Members: "a=10.0.0.1:1,,b=10.0.0.2:1"}, "--members: entry 2 is empty"},
		{"trailing comma", InitOptions{Dir: tmp, Members: ok + ","}, "--members: entry 3 is empty"},
		{"no equals", InitOptions{Dir: tmp, Members: "a=10.0.0.1:1,b10.0.0.2:1"}, `--members: entry 2, "b10.0.0.2:1", is not ID=HOST:PORT`},
		{"bad id", InitOptions{Dir: tmp, Members: "a/b=10.0.0.1:1"}, `--members: entry 1: "a/b" is not a valid id`},
		{"empty id", InitOptions{Dir: tmp, Members: "=10.0.0.1:1"}, `--members: entry 1: "" is not a valid id`},
		{"duplicate id", InitOptions{Dir: tmp, Members: "a=10.0.0.1:1,a=10.0.0.2:1"}, `--members: entry 2: id "a" appears twice`},
		{"missing port", InitOptions{Dir: tmp, Members: "a=10.0.0.1:1,b=10.0.0.2"}, `--members: entry 2 (b): "10.0.0.2" is not HOST:PORT (missing port)`},
		{"bad port", InitOptions{Dir: tmp, Members: "a=10.0.0.1:99999"}, `--members: entry 1 (a): "10.0.0.1:99999" is not HOST:PORT (port 99999 is outside 1..65535)`},
		{"unspecified", InitOptions{Dir: tmp, Members: "a=0.0.0.0:1"}, `--members: entry 1 (a): "0.0.0.0:1": 0.0.0.0 means every interface`},
		{"duplicate address", InitOptions{Dir: tmp, Members: "a=10.0.0.1:1,b=10.0.0.1:01"}, "--members: entry 2 (b): address 10.0.0.1:1 is already a's"},
		{"too many", InitOptions{Dir: tmp, Members: strings.Repeat("a=h:1,", 65)}, "--members: 66 members; at most 64"},
		{"witness unknown", InitOptions{Dir: tmp, Members: ok, Witnesses: []string{"c"}}, `--witness: "c" is not among the members (a, b)`},
		{"all witnesses", InitOptions{Dir: tmp, Members: ok, Witnesses: []string{"a", "b"}}, "--witness: every member would be a witness"},
		{"profile", InitOptions{Dir: tmp, Members: ok, Profile: "slow"}, `--profile: "slow" is not a timing profile; expected default or fast`},
		{"http port clash", InitOptions{Dir: tmp, Members: "a=127.0.0.1:7000,b=127.0.0.1:3002"}, "--members: b's address 127.0.0.1:3002 is the port clustd init gives its local HTTP listener"},
		{"dir is a file", InitOptions{Dir: file, Members: ok}, "not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Init(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if entries, err := os.ReadDir(tmp); err != nil || len(entries) != 1 {
		t.Errorf("failed Inits wrote files: %v %v", entries, err)
	}
}
