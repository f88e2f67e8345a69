package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clustd/clustd/node/api"
)

// activeActiveRoles are two roles, each preferring its own node, with
// preemption: the keepalived pair of addresses, each master on one machine.
const activeActiveRoles = `
roles:
  - name: ra
    priorities: {a: 100}
    preempt: true
    hold_down: 3s
  - name: rb
    priorities: {b: 100}
    preempt: true
    hold_down: 3s
`

const activeActiveHoldDown = 3 * time.Second

// roleStatus returns role name as node i's status has it.
func roleStatus(s api.Status, name string) (api.RoleStatus, bool) {
	for _, r := range s.Roles {
		if r.Name == name {
			return r, true
		}
	}
	return api.RoleStatus{}, false
}

// waitRoleMaster waits until every running node agrees that node want is
// role's master, and returns the term.
func (c *testCluster) waitRoleMaster(timeout time.Duration, role string, want int) uint64 {
	c.t.Helper()
	var term uint64
	var last []string
	_, ok := poll(timeout, func() bool {
		last = last[:0]
		agree := true
		for i := range c.ids {
			if !c.running(i) {
				continue
			}
			s, err := c.status(i)
			if err != nil {
				agree = false
				last = append(last, fmt.Sprintf("%s: %v", c.ids[i], err))
				continue
			}
			r, _ := roleStatus(s, role)
			last = append(last, fmt.Sprintf("%s: %+v", c.ids[i], r))
			if r.Master != c.ids[want] || (i == want) != (r.Role == "master") {
				agree = false
			}
			if i == want {
				term = r.Term
			}
		}
		return agree
	})
	if !ok {
		c.t.Fatalf("role %s: the nodes did not agree on %s as its master within %v: %v", role, c.ids[want], timeout, last)
	}
	return term
}

// roleMasterAmong waits for a master of role among nodes that every
// running node agrees on.
func (c *testCluster) roleMasterAmong(timeout time.Duration, role string, nodes ...int) int {
	c.t.Helper()
	m := -1
	_, ok := poll(timeout, func() bool {
		for _, i := range nodes {
			s, err := c.status(i)
			if r, _ := roleStatus(s, role); err == nil && r.Role == "master" {
				m = i
				return true
			}
		}
		return false
	})
	if !ok {
		c.t.Fatalf("role %s: no master among %v within %v", role, nodes, timeout)
	}
	c.waitRoleMaster(timeout, role, m)
	return m
}

// TestActiveActive runs two roles on three nodes: ra prefers a, rb prefers
// b, both with preemption. Each role has `clustd driver exec --role`
// beside every node, and a /proc poller per role checks that its command
// never runs twice at once. At rest a holds ra and b holds rb; a kill -9
// of a moves ra to b or c within the failover bound while rb's command
// never stops; a restarted a takes ra back once the hold-down has passed.
func TestActiveActive(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	for i := range c.ids {
		f, err := os.OpenFile(c.cfgPath[i], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(activeActiveRoles)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	c.startAll()

	suffix := make([]byte, 6)
	rand.Read(suffix)
	roles := []string{"ra", "rb"}
	markers := map[string]string{}
	pollers := map[string]*copyPoller{}
	t.Cleanup(func() {
		for _, p := range pollers {
			p.close()
			p.killLeftovers(t)
		}
	})
	const script = `echo "$$ $CLUSTD_NODE $CLUSTD_ROLE $CLUSTD_TERM $CLUSTD_ROLE_NAME" >> "$0"; sleep 100000`
	for _, role := range roles {
		markers[role] = filepath.Join(c.dir, "starts-"+role+"-"+hex.EncodeToString(suffix))
		var drivers []*driverProc
		for i := range c.ids {
			logPath := filepath.Join(c.dir, fmt.Sprintf("%s.driver-exec-%s.log", c.ids[i], role))
			dp := &driverProc{proc: c.spawn(logPath, "driver", "exec", "--config", c.cfgPath[i], "--role", role, "--name", "exec-"+role,
				"--", "/bin/sh", "-c", script, markers[role]), node: i, logPath: logPath}
			t.Cleanup(func() {
				dp.terminate(15 * time.Second)
				if t.Failed() {
					b, _ := os.ReadFile(logPath)
					t.Logf("----- log of the %s exec driver of node %s -----\n%s", role, c.ids[i], b)
				}
			})
			drivers = append(drivers, dp)
		}
		pollers[role] = startCopyPoller(t, markers[role], drivers)
	}
	pa, pb := pollers["ra"], pollers["rb"]

	// At rest.
	termB := c.waitRoleMaster(30*time.Second, "rb", 1)
	c.waitRoleMaster(30*time.Second, "ra", 0)
	first := pa.waitOne(c, 0, 0, 15*time.Second)
	bCopy := pb.waitOne(c, 1, 0, 15*time.Second)
	s, err := c.status(0)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := roleStatus(s, "ra"); s.Role != r.Role || s.Term != r.Term || s.Master != r.Master || len(s.Roles) != 2 {
		t.Errorf("a's top-level status (%s, term %d, master %s) is not its first role's %+v", s.Role, s.Term, s.Master, s.Roles)
	}
	checkRoleStart(t, c, markers["ra"], first, 0, "ra")
	checkRoleStart(t, c, markers["rb"], bCopy, 1, "rb")
	t.Logf("at rest: ra on a (pid %d), rb on b (pid %d, term %d)", first.pid, bCopy.pid, termB)

	// kill -9 of a: ra fails over, rb stays.
	killed := mono()
	c.kill(0)
	m := c.roleMasterAmong(10*time.Second, "ra", 1, 2)
	moved := pa.waitOne(c, m, killed, 10*time.Second)
	if d := moved.first - killed; d > failoverBound+time.Duration(s.StopBudgetMS)*time.Millisecond {
		t.Errorf("ra's command started on %s %v after the kill; the bound is %v plus the stop budget", c.ids[m], d, failoverBound)
	} else {
		t.Logf("ra moved to %s: its command first seen %v after the kill", c.ids[m], d)
	}
	checkRoleStart(t, c, markers["ra"], moved, m, "ra")

	// a comes back; after the hold-down ra returns to it.
	c.start(0)
	c.waitRoleMaster(activeActiveHoldDown+30*time.Second, "ra", 0)
	back := pa.waitOne(c, 0, moved.first, 15*time.Second)
	checkRoleStart(t, c, markers["ra"], back, 0, "ra")
	// ra's master on m held it for the hold-down before handing back:
	// its command ran from about when m became master (the stop budget
	// later) until the hand-back began.
	if held := back.first - moved.first; held < activeActiveHoldDown-time.Second {
		t.Errorf("ra came back to a %v after it moved to %s; the hold-down is %v", held, c.ids[m], activeActiveHoldDown)
	} else {
		t.Logf("ra back on a %v after it moved to %s (hold-down %v)", held, c.ids[m], activeActiveHoldDown)
	}
	if got := c.waitRoleMaster(10*time.Second, "rb", 1); got != termB {
		t.Errorf("rb's term went from %d to %d: it moved", termB, got)
	}

	for _, role := range roles {
		p := pollers[role]
		p.close()
		r := p.report(c)
		t.Logf("role %s: /proc scanned %d times, at most %v apart; %d copies in all", role, r.scans, r.maxSpacing, len(p.copies))
		for _, o := range r.overlaps {
			t.Errorf("role %s: two copies of its command ran at once: %s", role, o)
		}
	}
	if n := len(pa.copies); n != 3 {
		t.Errorf("ra's command ran %d times; want 3: on a, on %s after the kill, on a again", n, c.ids[m])
	}
	if n := len(pb.copies); n != 1 {
		t.Errorf("rb's command ran %d times; want 1: it never moved from b", n)
	}

	// clustd transfer --role moves rb alone; clustd status shows both.
	termA := c.waitRoleMaster(10*time.Second, "ra", 0)
	out, err := exec.Command(clustdBin, "transfer", "--config", c.cfgPath[1], "--role", "rb", "--to", "c").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "transfer of role rb to c accepted") {
		t.Fatalf("clustd transfer --role rb --to c: %v\n%s", err, out)
	}
	c.waitRoleMaster(10*time.Second, "rb", 2)
	if got := c.waitRoleMaster(10*time.Second, "ra", 0); got != termA {
		t.Errorf("ra's term went from %d to %d when rb was transferred", termA, got)
	}
	out, err = exec.Command(clustdBin, "status", "--config", c.cfgPath[2]).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^ra +follower +\d+ +a `).Match(out) || !regexp.MustCompile(`(?m)^rb +master +\d+ +c `).Match(out) {
		t.Errorf("clustd status on c does not show ra followed and rb held: %v\n%s", err, out)
	}
}

// checkRoleStart checks what a copy of role's command wrote as it
// started: its node, master, and the role's name.
func checkRoleStart(t *testing.T, c *testCluster, marker string, cp *cmdCopy, node int, role string) {
	t.Helper()
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 1 && f[0] == strconv.Itoa(cp.pid) {
			if len(f) != 5 || f[1] != c.ids[node] || f[2] != "master" || f[4] != role {
				t.Errorf("copy pid %d wrote %q as it started; want NODE %s, ROLE master and ROLE_NAME %s", cp.pid, line, c.ids[node], role)
			}
			return
		}
	}
	t.Errorf("copy pid %d of role %s on %s wrote no start line: %q", cp.pid, role, c.ids[node], b)
}

// TestStatusPageRolesInBrowser: the status page of a node with two roles
// lists both, and follows a failover of one of them without a reload.
func TestStatusPageRolesInBrowser(t *testing.T) {
	b := newBrowser(t)
	c := newCluster(t, 3, "fast")
	for i := range c.ids {
		c.editConfig(i, "http:", strings.ReplaceAll(strings.TrimPrefix(activeActiveRoles, "\n"), "3s", "1s")+"http:")
	}
	c.startAll()
	c.waitRoleMaster(30*time.Second, "ra", 0)
	c.waitRoleMaster(30*time.Second, "rb", 1)
	url := "http://" + c.httpAddr[2] + "/"
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	row := func(role, master string) string {
		return `[...document.querySelectorAll("#roles tr")].some(tr => tr.cells[0].textContent === ` + jsString(role) +
			` && tr.cells[1].textContent === "follower" && tr.cells[3].textContent === ` + jsString(master) + `)`
	}
	waitPage(t, b.ctx, 20*time.Second, "ra held by a and rb by b", row("ra", "a")+" && "+row("rb", "b")+
		` && document.getElementById("live").textContent === "live"`)
	eval[bool](t, b.ctx, `window.clustdNoReload = true`)
	c.kill(1)
	moved := `[...document.querySelectorAll("#roles tr")].some(tr => tr.cells[0].textContent === "rb"` +
		` && ["a", "c"].includes(tr.cells[3].textContent) && tr.cells[1].textContent === (tr.cells[3].textContent === "c" ? "master" : "follower"))`
	waitPage(t, b.ctx, 30*time.Second, "rb moved to a or c", moved+" && "+row("ra", "a"))
	if !eval[bool](t, b.ctx, `window.clustdNoReload === true`) {
		t.Fatal("the page reloaded")
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors: %q", errs)
	}
}
