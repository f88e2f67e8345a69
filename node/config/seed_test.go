package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSeedDriverFields(t *testing.T) {
	_, path := testDir(t)
	for _, tc := range []struct {
		name  string
		src   string
		on    bool
		grace time.Duration
	}{
		{"off by default", with(12), false, DefaultSeedDriverGrace},
		{"on", with(12, "http:", "  seed_drivers: true"), true, DefaultSeedDriverGrace},
		{"grace", with(12, "http:", "  seed_drivers: true", "seed_driver_grace: 500ms"), true, 500 * time.Millisecond},
		{"grace while off", with(12, "seed_driver_grace: 9s"), false, 9 * time.Second},
		{"null", with(12, "http:", "  seed_drivers:"), false, DefaultSeedDriverGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(path, []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if c.SeedDrivers != tc.on || c.SeedGrace() != tc.grace {
				t.Errorf("SeedDrivers %v, SeedGrace() %v; want %v, %v", c.SeedDrivers, c.SeedGrace(), tc.on, tc.grace)
			}
		})
	}
}

func TestSeedDriverErrors(t *testing.T) {
	_, path := testDir(t)
	for _, tc := range []struct {
		name, src  string
		line       int
		field, msg string
	}{
		{"not bool", with(12, "http:", "  seed_drivers: yes please"), 13, "http.seed_drivers", "is not true or false"},
		{"misspelt", with(12, "http:", "  seed_driver: true"), 13, "http.seed_driver", "unknown field; expected one of listen, allow_non_loopback, seed_drivers"},
		{"at the top", with(12, "seed_drivers: true"), 12, "seed_drivers", "unknown field"},
		{"grace not a duration", with(12, "seed_driver_grace: 2"), 12, "seed_driver_grace", "is not a duration"},
		{"grace negative", with(12, "seed_driver_grace: -1s"), 12, "seed_driver_grace", "must be positive"},
		{"grace repeated", with(12, "seed_driver_grace: 1s", "seed_driver_grace: 1s"), 13, "seed_driver_grace", "repeated"},
		{"grace too long", with(12, "http:", "  seed_drivers: true", "seed_driver_grace: "+DefaultDemoteTimeout.String()), 14, "seed_driver_grace", "must be shorter than demote_timeout (" + DefaultDemoteTimeout.String() + ")"},
		{"timeout too short", with(12, "http:", "  seed_drivers: true", "demote_timeout: 2s"), 14, "demote_timeout", "seed_driver_grace (2s) must be shorter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(path, []byte(tc.src))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T); want *Error", err, err)
			}
			if ce.Line != tc.line || ce.Field != tc.field {
				t.Errorf("line %d field %q; want %d %q: %v", ce.Line, ce.Field, tc.line, tc.field, err)
			}
			prefix := fmt.Sprintf("%s:%d: %s: ", path, tc.line, tc.field)
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.msg) {
				t.Errorf("error\n  %s\nwant prefix %q and %q", msg, prefix, tc.msg)
			}
		})
	}
}
