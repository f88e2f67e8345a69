package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSimRolesFlag(t *testing.T) {
	for _, bad := range []string{"0", "-1", "17"} {
		_, code, msg := runApp(t, "sim", "--roles", bad, "--seed", "1", "--duration", "1s")
		if code != 2 || !strings.Contains(msg, "--roles "+bad+": must be between 1 and 16") {
			t.Errorf("--roles %s: exit %d, %q; want exit 2 naming the flag and its range", bad, code, msg)
		}
	}

	out, code, msg := runApp(t, "sim", "--roles", "3", "--seed", "7", "--duration", "20s", "--faults", "--profile", "fast", "--json")
	if code != 0 {
		t.Fatalf("sim --roles 3: exit %d: %s\n%s", code, msg, out)
	}
	var res struct {
		Violations []string `json:"violations"`
		Command    string   `json:"command"`
		Roles      []struct {
			Name         string `json:"name"`
			Preferred    string `json:"preferred"`
			Elections    int    `json:"elections"`
			Linearizable string `json:"linearizable"`
		} `json:"roles"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("sim --json: %v\n%s", err, out)
	}
	if len(res.Roles) != 3 {
		t.Fatalf("sim --roles 3 reports %d roles:\n%s", len(res.Roles), out)
	}
	for r, rr := range res.Roles {
		wantName, wantPref := "r"+string(rune('0'+r)), "n"+string(rune('1'+r))
		if rr.Name != wantName || rr.Preferred != wantPref || rr.Elections == 0 || rr.Linearizable != "Ok" {
			t.Errorf("role %d: %+v; want %s preferring %s, with elections, its history linearizable", r, rr, wantName, wantPref)
		}
	}
	if !strings.Contains(res.Command, "--roles 3") {
		t.Errorf("command %q does not repeat --roles 3", res.Command)
	}

	// One role is the default and reads as it always did: no roles key.
	out, code, msg = runApp(t, "sim", "--seed", "7", "--duration", "5s", "--json")
	if code != 0 {
		t.Fatalf("sim: exit %d: %s", code, msg)
	}
	if strings.Contains(out, `"roles"`) || strings.Contains(out, "--roles") {
		t.Errorf("a single-role run mentions roles:\n%s", out)
	}
}
