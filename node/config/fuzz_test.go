package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(lines(base...))
	f.Add(with(12,
		"listen: 0.0.0.0:7946",
		"advertise: '[fd00::1]:7946'",
		"timing: {profile: fast, heartbeat: 20ms, election_timeout_min: 200ms, election_timeout_max: 400ms, rank_step: 5ms, max_clock_drift: 0.01}",
		"preempt: {enabled: true, hold_down: 5s}",
		"http: {listen: 127.0.0.1:3005, allow_non_loopback: false}",
		"demote_timeout: 3s",
		"log_level: warn",
		"log_format: json",
		"drivers_secret_file: secret",
	))
	f.Add(lines("id: a", "data_dir: d", "secret: "+testSecret, "members: [{id: a, address: 'h:1', priority: 7}]"))
	f.Add(lines("id: &x a", "data_dir: d", "secret_file: secret", "members:", "  - {id: *x, address: 'h:1'}", "  - &m {id: b, address: 'h:2'}", "  - *m"))
	f.Add("a: &a\n  b: *a\n")
	f.Add("members: &m [*m]\n")
	f.Add("<<: {id: a}\n")
	f.Add("id: null\n---\nid: b\n")
	f.Add(with(12, "roles:", "  - name: web", "    priorities: {a: 100, b: 5}", "    preempt: true", "    hold_down: 2s", "    stop_budget: 0", "  - {name: db, priorities: {w: 1}}"))
	for _, tc := range errorCases {
		f.Add(tc.src)
	}
	_, path := testDir(f)
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Parse(path, []byte(src))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Timing.Validate(); err != nil {
			t.Fatalf("accepted invalid timing %+v: %v", c.Timing, err)
		}
		if !slices.ContainsFunc(c.Members, func(m Member) bool { return m.ID == c.ID }) {
			t.Fatalf("id %q is not among members %+v", c.ID, c.Members)
		}
		if len(c.Secret) < MinSecretLen || len(c.DriversSecret) < MinSecretLen {
			t.Fatalf("accepted a short secret")
		}
		if c.Self().ID != c.ID {
			t.Fatalf("Self() = %+v", c.Self())
		}
		seen := map[string]bool{}
		for _, r := range c.RoleList() {
			if !ValidRoleName(r.Name) || seen[r.Name] {
				t.Fatalf("accepted role name %q (roles %+v)", r.Name, c.RoleList())
			}
			seen[r.Name] = true
			if err := c.RoleTiming(r).Validate(); err != nil {
				t.Fatalf("role %s: accepted invalid timing: %v", r.Name, err)
			}
			for id := range r.Priorities {
				if !slices.ContainsFunc(c.Members, func(m Member) bool { return m.ID == id }) {
					t.Fatalf("role %s gives a priority to %q, not a member", r.Name, id)
				}
			}
		}
		c.MembersHash()
	})
}
