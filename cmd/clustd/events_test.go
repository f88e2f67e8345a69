package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/journal"
)

var update = flag.Bool("update", false, "rewrite the golden files of clustd events")

// eventsEnv serves a journal holding a short history through the real
// handler.
func eventsEnv(t *testing.T) (addr string, j *journal.Journal) {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	at := func(sec int, ms int) time.Time { return time.Date(2026, 3, 14, 9, 26, sec, ms*1e6, time.UTC) }
	tp := func(t time.Time) *time.Time { return &t }
	for _, ev := range []journal.Event{
		{Time: at(0, 0), Kind: journal.KindStart, Node: "b", Detail: "clustd started"},
		{Time: at(0, 120), Kind: journal.KindRole, Node: "b", Term: 3, Role: "follower", Master: "a", Detail: "heartbeat from master"},
		{Time: at(1, 5), Kind: journal.KindDriverConnected, Node: "b", Driver: "exec-1a2b3c4d", Detail: "driver exec connected (required)"},
		{Time: at(5, 300), Kind: journal.KindMemberLost, Node: "b", Peer: "a"},
		{Time: at(5, 410), Kind: journal.KindElection, Node: "b", Term: 4, Role: "candidate", Detail: "campaigning: pre-vote won: campaigning"},
		{Time: at(5, 450), Kind: journal.KindRole, Node: "b", Term: 4, Role: "master", Master: "b", Detail: "became master: majority acknowledged"},
		{Time: at(5, 450), Kind: journal.KindFailover, Node: "b", Term: 4, Failover: &driverproto.Failover{
			From: "a", To: "b", PrevTerm: 3, Cause: driverproto.CauseMasterLost, NoMasterMS: 158,
			LastContact: tp(at(5, 202)), LeaseExpired: tp(at(5, 292)), Elected: at(5, 450), Promoted: tp(at(5, 463)),
		}},
		{Time: at(9, 0), Kind: journal.KindDriverHealth, Node: "b", Driver: "exec-1a2b3c4d", OK: journal.Bool(false), Detail: "exited with status 1"},
		{Time: at(9, 700), Kind: journal.KindRole, Node: "b", Term: 4, Role: "follower", Detail: "unhealthy"},
		{Time: at(10, 100), Kind: journal.KindFailover, Node: "c", Term: 5, Failover: &driverproto.Failover{
			From: "b", To: "c", PrevTerm: 4, Cause: driverproto.CauseCheckFailed, NoMasterMS: 1350,
			LastContact: tp(at(10, 90)), LeaseExpired: tp(at(8, 750)), Elected: at(10, 100), Rev: 1,
		}},
		{Time: at(12, 0), Kind: journal.KindMemberBack, Node: "b", Peer: "a"},
		{Time: at(13, 0), Kind: journal.KindMaintenance, Node: "b", OK: journal.Bool(true), Detail: "maintenance on: this node will not be master"},
		{Time: at(14, 0), Kind: journal.KindStop, Node: "b"},
	} {
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.NewHandler(api.HandlerOptions{Daemon: &adminDaemon{status: testStatus()}, Journal: j}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), j
}

func eventsGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if the change is meant):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestEventsTimelineGolden(t *testing.T) {
	timelineZone = time.UTC
	defer func() { timelineZone = time.Local }()
	addr, _ := eventsEnv(t)
	out, code, msg := runApp(t, "events", "--addr", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	eventsGolden(t, "events.golden", out)
	out, code, msg = runApp(t, "events", "--addr", addr, "--failovers")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	eventsGolden(t, "events-failovers.golden", out)
}

func TestEventsJSON(t *testing.T) {
	addr, _ := eventsEnv(t)
	out, code, msg := runApp(t, "events", "--addr", addr, "--json", "--since", "6")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 7 || lines[0]["seq"] != float64(7) {
		t.Fatalf("--since 6 printed %d lines from %v", len(lines), lines[0]["seq"])
	}
	fo := lines[0]
	for k, want := range map[string]any{"kind": "failover", "term": float64(4), "from": "a", "to": "b", "cause": "master_lost", "no_master_ms": float64(158)} {
		if fo[k] != want {
			t.Errorf("failover line: %s = %v, want %v (line %v)", k, fo[k], want, fo)
		}
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--limit", "0"}} {
		if _, code, msg := runApp(t, append([]string{"events", "--addr", addr}, bad...)...); code != 2 || msg == "" {
			t.Errorf("%v: exit %d, %q", bad, code, msg)
		}
	}
}

// --follow prints what is there, then what happens.
func TestEventsFollow(t *testing.T) {
	addr, j := eventsEnv(t)
	c := &api.Client{Addr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan journal.Event, 100)
	go c.Follow(ctx, "", 0, true, func(ev journal.Event) error { got <- ev; return nil }, nil)
	next := func() journal.Event {
		select {
		case ev := <-got:
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return journal.Event{}
	}
	if a, b := next(), next(); a.Term != 4 || b.Term != 5 {
		t.Fatalf("past failovers: %d, %d", a.Term, b.Term)
	}
	j.Record(journal.Event{Kind: journal.KindRole, Node: "b", Role: "follower"})
	j.Record(journal.Event{Kind: journal.KindFailover, Node: "a", Term: 6, Failover: &driverproto.Failover{From: "c", To: "a", Cause: driverproto.CausePaused}})
	if ev := next(); !ev.IsFailover() || ev.Term != 6 || ev.Cause != driverproto.CausePaused {
		t.Fatalf("live failover: %+v", ev)
	}
}

func TestTokenCommand(t *testing.T) {
	e := newAdminEnv(t)
	out, code, msg := runApp(t, "token", "--secret-file", e.secretFile)
	if code != 0 || strings.TrimSpace(out) != e.token {
		t.Fatalf("token: exit %d %q, printed %q, want %q", code, msg, out, e.token)
	}
	out, code, _ = runApp(t, "token", "--config", e.config)
	if code != 0 || strings.TrimSpace(out) != e.token {
		t.Fatalf("token --config printed %q", out)
	}
	if _, code, msg := runApp(t, "token"); code != 2 || !strings.Contains(msg, "--config") {
		t.Fatalf("token without flags: exit %d %q", code, msg)
	}
}
