package main

import (
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/journal"
)

func TestStatusShowsRoles(t *testing.T) {
	e := newAdminEnv(t)
	e.d.mu.Lock()
	e.d.status = api.Status{Node: "a", Role: "master", Master: "a", Term: 3, LeaseMS: 800,
		Roles: []api.RoleStatus{{Name: "web", Role: "master", Term: 3, Master: "a", LeaseMS: 800}, {Name: "db", Role: "follower", Term: 7, Master: "b"}}}
	e.d.mu.Unlock()
	out, code, msg := runApp(t, "status", "--addr", e.addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{"roles:        2 (the lines above are of the first, web)", "ROLE", "web   master", "db    follower   7     b"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// One role reads as before roles existed.
	e.d.mu.Lock()
	e.d.status.Roles = e.d.status.Roles[:1]
	e.d.mu.Unlock()
	out, _, _ = runApp(t, "status", "--addr", e.addr)
	if strings.Contains(out, "ROLE") || strings.Contains(out, "roles:") {
		t.Errorf("one role shows a table of roles:\n%s", out)
	}
}

func TestTransferRoleFlag(t *testing.T) {
	_, code, msg := runApp(t, "transfer", "--addr", "127.0.0.1:1", "--token", "x", "--role", "a.b")
	if code != 2 || !strings.Contains(msg, `--role "a.b" is not a role name`) {
		t.Errorf("exit %d: %s", code, msg)
	}
}

func TestCheckShowsRoles(t *testing.T) {
	e := newCheckEnv(t)
	path := e.file("roles.yml", "id: a\ndata_dir: a.data\nsecret_file: secret\nmembers:\n  - {id: a, address: 127.0.0.1:7001}\n  - {id: b, address: 127.0.0.1:7002}\n"+
		"  - {id: w, address: 127.0.0.1:7003, witness: true}\nroles:\n  - {name: web, priorities: {a: 10, w: 99}}\n  - {name: db}\n", 0o600)
	out, code, msg := runApp(t, "check", "--config", path)
	if code != 0 || msg != "" {
		t.Fatalf("exit %d (%q):\n%s", code, msg, out)
	}
	if want := "2: web (prefers a), db (no preferred member)"; !strings.Contains(out, want) {
		t.Errorf("clustd check does not say %q:\n%s", want, out)
	}
}

func TestEventNamesItsRole(t *testing.T) {
	ev := journal.Event{Kind: journal.KindRole, Node: "a", Term: 4, Role: "master", Master: "a", RoleName: "web", Detail: "won"}
	if got, want := describeEvent(ev, time.UTC), "role web: master in term 4, master a: won"; got != want {
		t.Errorf("describeEvent = %q, want %q", got, want)
	}
	ev.RoleName = ""
	if got, want := describeEvent(ev, time.UTC), "master in term 4, master a: won"; got != want {
		t.Errorf("without a role name: %q, want %q", got, want)
	}
}
