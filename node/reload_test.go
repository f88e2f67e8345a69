package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/config"
)

// editConfig rewrites node i's file with edit and loads it.
func (tc *inProcessCluster) editConfig(i int, edit func(string) string) *config.Config {
	tc.t.Helper()
	path := tc.cfgs[i].Path
	b, err := os.ReadFile(path)
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
		tc.t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		tc.t.Fatal(err)
	}
	return cfg
}

func TestReload(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx := context.Background()
	m := tc.waitMaster(-1)
	term := tc.daemons[m].Status().Term
	other := (m + 1) % 3
	otherID := tc.cfgs[other].ID

	// Refused: timing and a member's address, each named; nothing changes.
	cfg := tc.editConfig(m, func(s string) string {
		s = strings.Replace(s, "profile: fast\n", "profile: fast\n  heartbeat: 20ms\n", 1)
		return strings.Replace(s, "address: 127.0.0.1:", "address: 127.0.0.2:", 1)
	})
	_, err := tc.daemons[m].Reload(ctx, cfg)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "timing (") || !strings.Contains(err.Error(), "address of member n1") {
		t.Fatalf("reload of new timing and address: %v", err)
	}

	// Applied on every node: preemption on, and a follower's priority
	// raised. The role moves to it once, with no election in between.
	raise := func(s string) string {
		s = strings.Replace(s, "profile: fast\n  heartbeat: 20ms\n", "profile: fast\n", 1)
		s = strings.Replace(s, "address: 127.0.0.2:", "address: 127.0.0.1:", 1)
		s = strings.Replace(s, "  - id: "+otherID+"\n", "  - id: "+otherID+"\n    priority: 50\n", 1)
		return s + "preempt:\n  enabled: true\n  hold_down: 100ms\nlog_level: debug\n"
	}
	for i := range tc.daemons {
		changed, err := tc.daemons[i].Reload(ctx, tc.editConfig(i, raise))
		if err != nil {
			t.Fatalf("n%d: %v", i+1, err)
		}
		want := []string{"priority of member " + otherID + " 0 → 50", "preempt.enabled false → true", "preempt.hold_down 30s → 100ms", "log_level info → debug"}
		if fmt.Sprint(changed) != fmt.Sprint(want) {
			t.Errorf("n%d changed %q, want %q", i+1, changed, want)
		}
	}
	if got := tc.waitMaster(m); got != other {
		t.Fatalf("master n%d after raising n%d's priority", got+1, other+1)
	}
	if s := tc.daemons[other].Status(); s.Term != term+1 {
		t.Errorf("term %d after the hand-over, want %d: one hand-over, no election fight", s.Term, term+1)
	}
	for _, ms := range tc.daemons[m].Status().Members {
		if ms.ID == otherID && ms.Priority != 50 {
			t.Errorf("status shows %s at priority %d", otherID, ms.Priority)
		}
	}

	// A node restarted on the new file talks to the reloaded ones: they
	// hash the same configuration.
	third := 3 - m - other
	tc.stop(third)
	tc.cfgs[third] = tc.editConfig(third, func(s string) string { return s })
	tc.start(third)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := tc.daemons[third].Status()
		if s.Master == otherID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted n%d never followed %s: %+v", third+1, otherID, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
