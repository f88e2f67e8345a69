package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// waitStatus polls daemon i until ok holds, failing after a generous bound.
func (tc *inProcessCluster) waitStatus(i int, what string, ok func(s api.Status) bool) api.Status {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := tc.daemons[i].Status()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("n%d: %s: not within 15s; status %+v", i+1, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMaintenanceEndsByItself(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx := context.Background()
	m := tc.waitMaster(-1)
	file := filepath.Join(tc.cfgs[m].DataDir, maintenanceName)
	before := time.Now()
	if err := tc.daemons[m].SetMaintenanceFor(ctx, true, 2*time.Second, "kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("maintenance not persisted: %v", err)
	}
	s := tc.daemons[m].Status()
	until, err := time.Parse(time.RFC3339, s.MaintenanceUntil)
	if !s.Maintenance || s.MaintenanceReason != "kernel upgrade" || err != nil || until.Before(before.Add(time.Second)) || until.After(time.Now().Add(3*time.Second)) {
		t.Fatalf("status %+v (until %v, %v)", s, until, err)
	}
	if got := tc.waitMaster(m); got == m {
		t.Fatal("the master stayed master in maintenance")
	}
	s = tc.waitStatus(m, "maintenance ends by itself", func(s api.Status) bool { return !s.Maintenance })
	if s.MaintenanceReason != "" || s.MaintenanceUntil != "" || !s.Eligible {
		t.Errorf("after the window: %+v", s)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the file outlived the window: %v", err)
	}
}

func TestMaintenanceSurvivesRestart(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx := context.Background()
	m := tc.waitMaster(-1)
	f := (m + 1) % 3
	if err := tc.daemons[f].SetMaintenanceFor(ctx, true, time.Hour, "disk swap"); err != nil {
		t.Fatal(err)
	}
	until := tc.daemons[f].Status().MaintenanceUntil
	tc.stop(f)
	tc.start(f)
	s := tc.daemons[f].Status()
	if !s.Maintenance || s.Eligible || s.MaintenanceReason != "disk swap" || s.MaintenanceUntil != until {
		t.Fatalf("after a restart: %+v, want maintenance until %s", s, until)
	}
	// Off ends it early, file and all.
	if err := tc.daemons[f].SetMaintenance(ctx, false); err != nil {
		t.Fatal(err)
	}
	tc.stop(f)
	tc.start(f)
	if s := tc.daemons[f].Status(); s.Maintenance {
		t.Fatalf("maintenance back after off and a restart: %+v", s)
	}

	// A window that ended while the daemon was down is over.
	tc.stop(f)
	file := filepath.Join(tc.cfgs[f].DataDir, maintenanceName)
	past := maintenanceFile{Version: 1, Reason: "old", Since: time.Now().Add(-2 * time.Hour), Until: time.Now().Add(-time.Hour)}
	if err := writeMaintenance(file, past); err != nil {
		t.Fatal(err)
	}
	tc.start(f)
	if s := tc.daemons[f].Status(); s.Maintenance {
		t.Fatalf("expired window applied: %+v", s)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("expired window's file kept: %v", err)
	}

	// A file clustd did not write stops the start, naming it.
	tc.stop(f)
	os.WriteFile(file, []byte("on\n"), 0o600)
	_, err := New(tc.cfgs[f], slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("corrupt maintenance file: %v", err)
	}
	os.Remove(file)
	tc.start(f)
}
