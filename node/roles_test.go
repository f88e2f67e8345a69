package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/journal"
	"github.com/clustd/clustd/node/store"
)

const threeRoles = `roles:
  - name: a
    priorities: {n1: 100}
    preempt: true
    hold_down: 200ms
  - name: b
    priorities: {n2: 100}
    preempt: true
    hold_down: 200ms
  - name: c
`

// roleHolder waits until the running daemons agree on role's master and
// returns its index.
func (tc *inProcessCluster) roleHolder(role string, ok func(int) bool) int {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		master, agree := -1, true
		for i, d := range tc.daemons {
			if tc.cancels[i] == nil {
				continue
			}
			rs := roleOf(d.Status(), role)
			if rs.Role == "master" {
				if master >= 0 {
					tc.t.Fatalf("role %s: two nodes report master: n%d and n%d", role, master+1, i+1)
				}
				master = i
			}
			if master >= 0 && rs.Master != tc.cfgs[master].ID {
				agree = false
			}
			last += fmt.Sprintf("n%d %+v; ", i+1, rs)
		}
		if master >= 0 && agree && ok(master) {
			return master
		}
		last = ""
		time.Sleep(20 * time.Millisecond)
	}
	tc.t.Fatalf("role %s: no master agreed on within 15s", role)
	return -1
}

func roleOf(s api.Status, name string) api.RoleStatus {
	for _, r := range s.Roles {
		if r.Name == name {
			return r
		}
	}
	return api.RoleStatus{}
}

func anyNode(int) bool { return true }

// TestRolesPlacedByPriority: each role goes to the node it prefers, and a
// stopped node's roles move while the others' stay.
func TestRolesPlacedByPriority(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	if got := tc.roleHolder("a", func(i int) bool { return i == 0 }); got != 0 {
		t.Fatalf("a on n%d", got+1)
	}
	if got := tc.roleHolder("b", func(i int) bool { return i == 1 }); got != 1 {
		t.Fatalf("b on n%d", got+1)
	}
	tc.roleHolder("c", anyNode)
	s := tc.daemons[0].Status()
	if len(s.Roles) != 3 || s.Roles[0].Name != "a" || s.Roles[0].Role != s.Role || s.Roles[0].Term != s.Term || s.Roles[0].Master != s.Master {
		t.Fatalf("status roles %+v do not lead with the top-level role %s/%d/%s", s.Roles, s.Role, s.Term, s.Master)
	}
	if s.Roles[0].LeaseMS <= 0 {
		t.Errorf("n1 holds a with lease_ms %d", s.Roles[0].LeaseMS)
	}

	// The fast profile's 90 ms lease can run out on a loaded machine, so
	// b may see a new term; with preemption it is back on n2 at once.
	// e2e's TestActiveActive checks on the default timing that b's
	// drivers never move.
	tc.stop(0) // hands a over
	if got := tc.roleHolder("a", func(i int) bool { return i != 0 }); got == 0 {
		t.Fatal("a stayed on the stopped node")
	}
	tc.roleHolder("b", func(i int) bool { return i == 1 })
	tc.start(0)
	tc.roleHolder("a", func(i int) bool { return i == 0 })
	tc.roleHolder("b", func(i int) bool { return i == 1 })
}

// TestRolesTransfer moves one role and leaves the others where they are.
func TestRolesTransfer(t *testing.T) {
	tc := newTestClusterYAML(t, 3, strings.ReplaceAll(threeRoles, "preempt: true", "preempt: false"))
	c := tc.roleHolder("c", anyNode)
	to := (c + 1) % 3
	a := tc.roleHolder("a", anyNode)
	aTerm := roleOf(tc.daemons[a].Status(), "a").Term
	ctx := context.Background()
	// The target counts as reachable once the master has heard its
	// answers to a heartbeat round: retry until then.
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := tc.daemons[c].TransferRole(ctx, "c", tc.cfgs[to].ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.roleHolder("c", func(i int) bool { return i == to })
	if rs := roleOf(tc.daemons[a].Status(), "a"); rs.Role != "master" || rs.Term != aTerm {
		t.Errorf("a moved with c: %+v", rs)
	}
	// The journal names the role of a transfer and of role changes.
	var transfer, changes bool
	deadline := time.Now().Add(10 * time.Second)
	for !(transfer && changes) && time.Now().Before(deadline) {
		evs, err := tc.daemons[c].Journal().Read(journal.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			transfer = transfer || (ev.Kind == journal.KindTransfer && ev.RoleName == "c" && strings.Contains(ev.Detail, "role c"))
			changes = changes || (ev.Kind == journal.KindRole && ev.RoleName == "c" && ev.Master == tc.cfgs[to].ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !transfer || !changes {
		t.Errorf("the journal of n%d lacks role c's transfer (%v) or its new master (%v)", c+1, transfer, changes)
	}
	if err := tc.daemons[0].TransferRole(ctx, "nope", ""); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "a, b, c") {
		t.Errorf("transfer of an unknown role: %v", err)
	}
}

// TestRolesMaintenance: maintenance takes every role off the node.
func TestRolesMaintenance(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	tc.roleHolder("a", func(i int) bool { return i == 0 })
	if err := tc.daemons[0].SetMaintenanceFor(context.Background(), true, time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a", "b", "c"} {
		tc.roleHolder(r, func(i int) bool { return i != 0 })
	}
}

// TestRoleStateFiles: every role keeps its own term and vote; a damaged
// one stops the start-up, naming the file, and nothing touches the other
// roles' files.
func TestRoleStateFiles(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	for _, r := range []string{"a", "b", "c"} {
		tc.roleHolder(r, anyNode)
	}
	tc.stop(2)
	dir := tc.cfgs[2].DataDir
	files := map[string][]byte{}
	for _, r := range []string{"a", "b", "c"} {
		path := filepath.Join(dir, "roles", r, "state")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("role %s: %v", r, err)
		}
		files[r] = b
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("a cluster whose roles are a, b and c wrote DATA_DIR/state, the file of the role master")
	}
	bad := filepath.Join(dir, "roles", "b", "state")
	if err := os.WriteFile(bad, bytes.Replace(files["b"], []byte("term"), []byte("turm"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(tc.cfgs[2], tc.daemons[2].log)
	var ce *store.CorruptError
	if !errors.As(err, &ce) || ce.Path != bad || !strings.Contains(err.Error(), "role b") || !strings.Contains(err.Error(), bad) {
		t.Fatalf("start with role b's state damaged: %v", err)
	}
	for _, r := range []string{"a", "c"} {
		b, err := os.ReadFile(filepath.Join(dir, "roles", r, "state"))
		if err != nil || !bytes.Equal(b, files[r]) {
			t.Errorf("role %s's state changed by a start that failed on b's: %q, %v", r, b, err)
		}
	}
	// Without b's file the node starts afresh for b alone (a new node's
	// state), and keeps a's and c's terms.
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	d, err := New(tc.cfgs[2], tc.daemons[2].log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, r := range d.roles {
			r.store.Close()
		}
		d.peerLn.Close()
		d.httpLn.Close()
		d.rec.close()
	}()
	if d.role("b").core.Term() != 0 || d.role("a").core.Term() == 0 || d.role("c").core.Term() == 0 {
		t.Errorf("terms after losing b's file: a %d, b %d, c %d", d.role("a").core.Term(), d.role("b").core.Term(), d.role("c").core.Term())
	}
}

// TestRolesOneFramePerPeer: with every role master on one node, each
// heartbeat round is one frame per peer whatever the number of roles.
func TestRolesOneFramePerPeer(t *testing.T) {
	const n = 20
	var b strings.Builder
	b.WriteString("roles:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    priorities: {n1: 100}\n    preempt: true\n    hold_down: 100ms\n", i)
	}
	tc := newTestClusterYAML(t, 3, b.String())
	for i := range n {
		tc.roleHolder(fmt.Sprintf("r%d", i), func(i int) bool { return i == 0 })
	}
	count := func() float64 {
		mfs, err := tc.daemons[0].reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "clustd_peer_messages_sent_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "peer" && l.GetValue() == "n2" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		t.Fatal("no clustd_peer_messages_sent_total{peer=n2}")
		return 0
	}
	before := count()
	start := time.Now()
	time.Sleep(time.Second)
	frames := count() - before
	// A round can only come late on a busy machine, never early: the wall
	// clock's count of rounds bounds the heartbeat frames from above.
	rounds := float64(time.Since(start)) / float64(tc.cfgs[0].Timing.Heartbeat)
	// One heartbeat frame per round, plus the odd ping or hold-down
	// hand-over: n frames per round means the roles went out one by one.
	if frames > 2*rounds+5 {
		t.Errorf("%v frames to n2 in %.0f heartbeat rounds of %d roles", frames, rounds, n)
	}
}

// TestOneRoleReadsAsBefore: without roles: the one role is "master", kept
// in DATA_DIR/state, and status, driver states and metrics read as before
// with the role added.
func TestOneRoleReadsAsBefore(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	s := tc.daemons[m].Status()
	want := api.RoleStatus{Name: "master", Role: s.Role, Term: s.Term, Master: s.Master}
	if len(s.Roles) != 1 || s.Roles[0].Name != want.Name || s.Roles[0].Role != want.Role || s.Roles[0].Term != want.Term || s.Roles[0].Master != want.Master || s.Roles[0].LeaseMS <= 0 {
		t.Errorf("roles %+v, want one like %+v", s.Roles, want)
	}
	dir := tc.cfgs[m].DataDir
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("the master role's state is not in DATA_DIR/state: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "roles")); err == nil {
		t.Error("DATA_DIR/roles exists in a cluster without roles:")
	}
	h := tc.daemons[m].hub
	var last *driverproto.State
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		h.mu.Lock()
		last = h.last
		h.mu.Unlock()
		if last != nil && last.IsMaster { // once the stop budget has passed
			break
		}
	}
	if last == nil || last.RoleName != "master" || !last.IsMaster {
		t.Errorf("driver state %+v, want role_name master", last)
	}
	mfs, err := tc.daemons[m].reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "clustd_is_master" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				found = found || (l.GetName() == "role" && l.GetValue() == "master" && mm.GetGauge().GetValue() == 1)
			}
		}
	}
	if !found {
		t.Error(`no clustd_is_master{role="master"} 1 on the master`)
	}
}

// TestRolesReloadRefused: a reload changes nothing about roles; it names
// what it refused.
func TestRolesReloadRefused(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	tc.roleHolder("a", func(i int) bool { return i == 0 })
	ctx := context.Background()
	for _, tcase := range []struct {
		edit func(string) string
		want string
	}{
		{func(s string) string { return strings.Replace(s, "  - name: c\n", "", 1) }, "roles (a, b, c → a, b)"},
		{func(s string) string { return strings.Replace(s, "{n1: 100}", "{n1: 50}", 1) }, "roles (a, b, c → a, b, c)"},
		{func(s string) string { return strings.Replace(s, "  - id: n2\n", "  - id: n2\n    priority: 7\n", 1) }, "priority of member n2 (0 → 7)"},
	} {
		orig, err := os.ReadFile(tc.cfgs[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		cfg := tc.editConfig(0, tcase.edit)
		_, err = tc.daemons[0].Reload(ctx, cfg)
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tcase.want) {
			t.Errorf("reload: %v; want it refused naming %q", err, tcase.want)
		}
		if err := os.WriteFile(tc.cfgs[0].Path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if rs := roleOf(tc.daemons[0].Status(), "a"); rs.Role != "master" {
		t.Errorf("n1 lost a to a refused reload: %+v", rs)
	}
}

// TestNextDeadlineCoalesces: masters' deadlines within the window are
// served together, never past a lease's end, and never past a follower's
// deadline.
func TestNextDeadlineCoalesces(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	for _, r := range []string{"a", "b", "c"} {
		tc.roleHolder(r, anyNode)
	}
	d := tc.daemons[0]
	d.mu.Lock()
	defer d.mu.Unlock()
	dl := d.nextDeadline()
	first := time.Duration(1 << 62)
	for _, r := range d.roles {
		first = min(first, r.core.NextDeadline())
	}
	if dl < first || dl > first+d.coalesceWindow() {
		t.Errorf("next deadline %v, the earliest %v, the window %v", dl, first, d.coalesceWindow())
	}
	for _, r := range d.roles {
		if r.state.Role != election.Master && r.core.NextDeadline() >= first && dl > r.core.NextDeadline() {
			t.Errorf("role %s (a %s) is due at %v, before the timer at %v", r.name, roleName(r.state.Role), r.core.NextDeadline(), dl)
		}
		if r.state.Role == election.Master && r.state.LeaseUntil > 0 && dl > max(r.state.LeaseUntil, first) {
			t.Errorf("role %s's lease ends at %v, before the timer at %v", r.name, r.state.LeaseUntil, dl)
		}
	}
}

// dialRoleDriver is dialDriver choosing a role.
func dialRoleDriver(t *testing.T, d *Daemon, secret []byte, id, role string) (*driver, error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+d.HTTPAddr().String()+driverproto.Path, nil)
	if err != nil {
		return nil, err
	}
	dr := &driver{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	ch := dr.read()
	nonce := strings.Repeat("ab", driverproto.NonceLen)
	ws.WriteJSON(driverproto.Message{Type: driverproto.TypeHello, Version: driverproto.Version, ID: id, Name: "test", Nonce: nonce, RoleName: role,
		MAC: driverproto.HelloMACRole(secret, ch.Nonce, nonce, id, false, false, 0, role)})
	if w := dr.read(); w.Type == driverproto.TypeError {
		return nil, fmt.Errorf("%s", w.Error)
	}
	return dr, nil
}

// TestRolesDrivers: a driver is told the states of the role it chose, the
// first role when it chose none, and a role the cluster lacks is refused.
func TestRolesDrivers(t *testing.T) {
	tc := newTestClusterYAML(t, 3, threeRoles)
	tc.roleHolder("a", func(i int) bool { return i == 0 })
	tc.roleHolder("b", func(i int) bool { return i == 1 })
	d, secret := tc.daemons[1], tc.cfgs[1].DriversSecret
	for _, tcase := range []struct {
		role, want string
		master     bool
	}{{"b", "b", true}, {"", "a", false}, {"a", "a", false}} {
		dr, err := dialRoleDriver(t, d, secret, "drv-"+tcase.want+tcase.role, tcase.role)
		if err != nil {
			t.Fatalf("role %q: %v", tcase.role, err)
		}
		// The first state may come before the stop budget has passed.
		for deadline := time.Now().Add(10 * time.Second); ; {
			m := dr.read()
			if m.Type != driverproto.TypeState {
				continue
			}
			if m.State.RoleName != tcase.want {
				t.Fatalf("driver of role %q got a state of %q", tcase.role, m.State.RoleName)
			}
			if m.State.IsMaster == tcase.master {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("driver of role %q: is_master %v, want %v", tcase.role, m.State.IsMaster, tcase.master)
			}
		}
	}
	if _, err := dialRoleDriver(t, d, secret, "drv-x", "zz"); err == nil || !strings.Contains(err.Error(), `"zz", which this cluster does not have; its roles are a, b, c`) {
		t.Errorf("a driver of an unknown role: %v", err)
	}
	if _, err := dialRoleDriver(t, d, secret, "drv-bb", "c"); err == nil || !strings.Contains(err.Error(), "already connected") {
		t.Errorf("a second driver id on another role: %v", err)
	}
}
