package config

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestRolesDefault(t *testing.T) {
	_, path := testDir(t)
	c, err := Parse(path, []byte(with(12, "preempt: {enabled: true, hold_down: 5s}", "timing: {stop_budget: 100ms}")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Roles != nil {
		t.Errorf("Roles = %+v without roles:", c.Roles)
	}
	rs := c.RoleList()
	if len(rs) != 1 || rs[0].Name != DefaultRole || !rs[0].Preempt || rs[0].PreemptHoldDown != 5*time.Second || rs[0].StopBudget != 100*time.Millisecond {
		t.Errorf("RoleList() = %+v", rs)
	}
	// The hash of a file without roles: is what it was before roles
	// existed: clusters keep agreeing across a rolling upgrade.
	c, err = Parse(path, []byte(lines(base...)))
	if err != nil {
		t.Fatal(err)
	}
	h := c.MembersHash()
	if got, want := hex.EncodeToString(h[:]), "84a7c5df7a387cd595569941023f6e3e584bf990a0ec09283c85b39858f041c0"; got != want {
		t.Errorf("hash of the base configuration = %s, want %s", got, want)
	}
}

func TestRolesParse(t *testing.T) {
	_, path := testDir(t)
	src := with(12, "preempt: {enabled: false, hold_down: 7s}", "roles:",
		"  - name: a", "    priorities: {a: 100, b: 10}", "    preempt: true", "    hold_down: 2s",
		"  - name: b", "    priorities: {b: 100}", "    stop_budget: 0")
	c, err := Parse(path, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.RoleList()
	if len(rs) != 2 || rs[0].Name != "a" || rs[1].Name != "b" {
		t.Fatalf("roles = %+v", rs)
	}
	if a := rs[0]; a.Priority("a") != 100 || a.Priority("b") != 10 || a.Priority("w") != 0 || !a.Preempt || a.PreemptHoldDown != 2*time.Second || a.StopBudget != c.Timing.StopBudget {
		t.Errorf("role a = %+v", a)
	}
	if b := rs[1]; b.Priority("a") != 0 || b.Priority("b") != 100 || b.Preempt || b.PreemptHoldDown != 7*time.Second || b.StopBudget != 0 {
		t.Errorf("role b = %+v", b)
	}
	if c.RoleTiming(rs[1]).StopBudget != 0 || c.RoleTiming(rs[0]).ElectionMin != c.Timing.ElectionMin {
		t.Error("RoleTiming does not carry the role's stop budget")
	}

	base := func(extra ...string) [32]byte {
		t.Helper()
		c, err := Parse(path, []byte(with(12, extra...)))
		if err != nil {
			t.Fatal(err)
		}
		return c.MembersHash()
	}
	none := base()
	one := base("roles: [{name: a}]")
	if one == none {
		t.Error("roles: [a] has the hash of no roles")
	}
	for i, extra := range []string{
		"roles: [{name: b}]",
		"roles: [{name: a}, {name: b}]",
		"roles: [{name: a, priorities: {a: 1}}]",
		"roles: [{name: a, stop_budget: 1s}]",
	} {
		if base(extra) == one {
			t.Errorf("case %d: %s has the same hash as roles: [{name: a}]", i, extra)
		}
	}
	if base("roles: [{name: a, preempt: true, hold_down: 1s}]") != one {
		t.Error("preemption changes the hash; a reload may change it on one node at a time")
	}
}

func TestRolesErrors(t *testing.T) {
	_, path := testDir(t)
	for _, tc := range []struct {
		src  []string
		want string
	}{
		{[]string{"roles: []"}, "clustd.yml:12: roles: the list is empty"},
		{[]string{"roles: {a: 1}"}, "clustd.yml:12: roles: must be a list"},
		{[]string{"roles:", "  - priorities: {a: 1}"}, "clustd.yml:13: roles[0].name: required"},
		{[]string{"roles:", "  - name: \"\""}, `clustd.yml:13: roles[0].name: "" is not a role name`},
		{[]string{"roles:", "  - name: ../x"}, `clustd.yml:13: roles[0].name: "../x" is not a role name`},
		{[]string{"roles:", "  - name: a.b"}, `"a.b" is not a role name`},
		{[]string{"roles:", "  - name: a", "  - name: a"}, `clustd.yml:14: roles[1].name: "a" is already the name of roles[0]`},
		{[]string{"roles:", "  - name: a", "    priorities:", "      zz: 3"}, `clustd.yml:15: roles[0].priorities.zz: "zz" is not among the members (a, b, w)`},
		{[]string{"roles:", "  - name: a", "    priorities: {a: 2000}"}, `roles[0].priorities.a: 2000 is outside 0..1000`},
		{[]string{"roles:", "  - name: a", "    priorities: {a: 1, a: 2}"}, `roles[0].priorities.a: repeated`},
		{[]string{"roles:", "  - name: a", "    color: red"}, `clustd.yml:14: roles[0].color: unknown field; expected one of name, priorities, preempt, hold_down, stop_budget`},
		{[]string{"roles:", "  - name: a", "    stop_budget: 9h"}, `roles[0].stop_budget`},
	} {
		_, err := Parse(path, []byte(with(12, tc.src...)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}
