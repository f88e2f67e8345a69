package shelldriver

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDemoteDeadlineKillsOnStandby(t *testing.T) {
	// on-standby would take 2s, well within its 5s timeout, but the demote
	// must be over 300ms from now: it is killed before, with its child.
	e := newDriver(t, `true`, `sleep 100 & echo $! > child; echo $$ > pid; sleep 2; echo done > standby`, func(o *Options) { o.Timeout = 5 * time.Second })
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	err := e.d.Trigger(ctx, followerAt(2))
	returned := time.Now()
	if err == nil || !strings.Contains(err.Error(), "on-standby killed after") || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Trigger = %v, want on-standby killed at the demote's deadline", err)
	}
	if got := e.lines("standby"); len(got) != 0 {
		t.Fatal("on-standby ran to its end past the demote's deadline")
	}
	for _, f := range []string{"pid", "child"} {
		pid, _ := strconv.Atoi(strings.Join(e.lines(f), ""))
		if pid == 0 || alive(pid) {
			t.Errorf("%s %d survived the deadline", f, pid)
		}
	}
	// The kill comes before the deadline; on a slow machine the demote may
	// still end after it, and then it must say so at error level.
	if returned.After(deadline) {
		found := false
		for _, r := range e.logs.records() {
			if r["level"] == "ERROR" && strings.Contains(r["msg"].(string), "overran its deadline") {
				found = true
			}
		}
		if !found {
			t.Errorf("demote ended %v past its deadline and nothing was logged at error level", returned.Sub(deadline))
		}
	}
	if r := e.health.get(); len(r) == 0 || !strings.HasPrefix(r[len(r)-1], "false on-standby killed") {
		t.Errorf("health reports %q", r)
	}
	// It is a failed on-standby: the next state that is not master runs it
	// again, and with time enough it completes.
	if err := e.d.Trigger(context.Background(), followerAt(3)); err != nil {
		t.Fatal(err)
	}
	if got := e.lines("standby"); len(got) != 1 {
		t.Error("on-standby was not run again")
	}
}

func TestFarDemoteDeadlineLetsOnStandbyFinish(t *testing.T) {
	e := newDriver(t, `true`, `sleep 0.2; echo done > standby`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.d.Trigger(ctx, followerAt(2)); err != nil {
		t.Fatal(err)
	}
	if got := e.lines("standby"); len(got) != 1 {
		t.Error("on-standby was cut short")
	}
}

func TestPastDeadlineKillsOnStandbyAtOnce(t *testing.T) {
	e := newDriver(t, `true`, `echo $$ > pid; sleep 100`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	err := e.d.Trigger(ctx, followerAt(2))
	if err == nil || !strings.Contains(err.Error(), "on-standby killed") {
		t.Fatalf("Trigger = %v, want on-standby killed", err)
	}
	overran := false
	for _, r := range e.logs.records() {
		overran = overran || r["level"] == "ERROR" && strings.Contains(r["msg"].(string), "overran its deadline")
	}
	if !overran {
		t.Error("the overrun was not logged at error level")
	}
	if pid, _ := strconv.Atoi(strings.Join(e.lines("pid"), "")); pid != 0 && alive(pid) {
		t.Errorf("on-standby %d survived", pid)
	}
}

func TestDemoteCutShortKillsOnStandby(t *testing.T) {
	// driverclient ends a demote's context early when it must be over at
	// once (the stop deadline passed with no word from the daemon).
	e := newDriver(t, `true`, `echo $$ > pid; sleep 100`, nil)
	if err := e.d.Trigger(context.Background(), masterAt(1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() { done <- e.d.Trigger(ctx, followerAt(2)) }()
	waitFor(t, "on-standby to start", func() bool { return len(e.lines("pid")) == 1 })
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("Trigger = %v, want on-standby cut short", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("on-standby ran on for 10s after its demote was cut short")
	}
	if pid, _ := strconv.Atoi(strings.Join(e.lines("pid"), "")); alive(pid) {
		t.Errorf("on-standby %d survived", pid)
	}
}

func TestShellDemoteTimeout(t *testing.T) {
	e := newDriver(t, `true`, `true`, func(o *Options) { o.Timeout = 5 * time.Second })
	if got := e.d.DemoteTimeout(); got != 5*time.Second {
		t.Errorf("DemoteTimeout() = %v, want the 5s timeout", got)
	}
}
