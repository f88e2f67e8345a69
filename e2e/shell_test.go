package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// shQuote quotes s for /bin/sh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readEnvFile reads lines NAME=VALUE.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

// transferTo asks master m to hand over to node to, retrying while the
// master does not yet count the target as reachable and eligible, as right
// after that node was master itself.
func (c *testCluster) transferTo(m, to int) {
	c.t.Helper()
	var err error
	c.waitFor(10*time.Second, fmt.Sprintf("%s to accept a transfer to %s", c.ids[m], c.ids[to]), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = c.admin(m).Transfer(ctx, c.ids[to])
		var re *api.ResponseError
		if err != nil && !errors.As(err, &re) {
			c.t.Fatalf("transfer from %s to %s: %v", c.ids[m], c.ids[to], err)
		}
		return err == nil
	})
}

// TestShellDriverEnvironment runs `clustd driver shell` on each of three
// nodes with scripts that save their CLUSTD_* environment, and checks what
// the scripts were told: at start-up on-master on the master and on-standby
// on the followers; after a transfer, on-standby on the old master (never
// told it is master) and on-master on the new one, with the new term; and
// nothing at all on the node the transfer did not concern.
func TestShellDriverEnvironment(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	envDir := filepath.Join(c.dir, "env")
	if err := os.Mkdir(envDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Written under a temporary name and renamed, so that a file that
	// exists is complete.
	script := func(kind string) string {
		f := shQuote(envDir) + "/$CLUSTD_NODE." + kind + ".$CLUSTD_TERM"
		return "env | grep '^CLUSTD_' | sort > " + f + ".tmp && mv " + f + ".tmp " + f
	}
	drivers := make([]*driverProc, len(c.ids))
	for i := range c.ids {
		drivers[i] = c.startDriverProc(i, "shell", "--on-master", script("master"), "--on-standby", script("standby"))
	}
	envOf := func(i int, kind string, term uint64) string {
		return filepath.Join(envDir, fmt.Sprintf("%s.%s.%d", c.ids[i], kind, term))
	}
	waitFile := func(path string) {
		t.Helper()
		c.waitFor(10*time.Second, filepath.Base(path)+" to be written", func() bool {
			_, err := os.Stat(path)
			return err == nil
		})
	}
	// check compares a saved environment with what it should say; a
	// master of "!" means anything but this node.
	check := func(path, role, nodeID, master string, term uint64) {
		t.Helper()
		env := readEnvFile(t, path)
		t.Logf("%s: %v", filepath.Base(path), env)
		want := map[string]string{"CLUSTD_ROLE": role, "CLUSTD_NODE": nodeID, "CLUSTD_TERM": strconv.FormatUint(term, 10)}
		if master != "!" {
			want["CLUSTD_MASTER"] = master
		} else if env["CLUSTD_MASTER"] == nodeID {
			t.Errorf("%s: CLUSTD_MASTER=%s, this very node, in a script run because it is no longer master", filepath.Base(path), nodeID)
		}
		for k, v := range want {
			if got, ok := env[k]; !ok || got != v {
				t.Errorf("%s: %s=%q; want %q", filepath.Base(path), k, got, v)
			}
		}
		if env["CLUSTD_REASON"] == "" {
			t.Errorf("%s: CLUSTD_REASON is empty", filepath.Base(path))
		}
	}

	waitFile(envOf(m, "master", st.Term))
	check(envOf(m, "master", st.Term), "master", c.ids[m], c.ids[m], st.Term)
	for _, i := range c.others(m) {
		waitFile(envOf(i, "standby", st.Term))
		check(envOf(i, "standby", st.Term), "follower", c.ids[i], c.ids[m], st.Term)
	}

	x, y := c.others(m)[0], c.others(m)[1]
	c.transferTo(m, x)
	_, st2, _ := c.waitMaster(10*time.Second, x)
	waitFile(envOf(x, "master", st2.Term))
	check(envOf(x, "master", st2.Term), "master", c.ids[x], c.ids[x], st2.Term)
	var standby []string
	c.waitFor(10*time.Second, "the old master's on-standby", func() bool {
		standby, _ = filepath.Glob(filepath.Join(envDir, c.ids[m]+".standby.*[0-9]"))
		return len(standby) > 0
	})
	if len(standby) != 1 {
		t.Errorf("on-standby ran %d times on the old master: %v", len(standby), standby)
	}
	term, _ := strconv.ParseUint(filepath.Ext(standby[0])[1:], 10, 64)
	check(standby[0], "follower", c.ids[m], "!", term)
	if term < st.Term || term > st2.Term {
		t.Errorf("the old master's on-standby ran with term %d; want from %d to %d", term, st.Term, st2.Term)
	}

	// The third node saw a new master elsewhere: its driver acts on that
	// state but runs no script.
	c.waitFor(10*time.Second, "the driver of "+c.ids[y]+" to act on the new master", func() bool {
		return strings.Contains(drivers[y].logText(), fmt.Sprintf("term=%d master=%s", st2.Term, c.ids[x]))
	})
	if runs, _ := filepath.Glob(filepath.Join(envDir, c.ids[y]+".*[0-9]")); len(runs) != 1 {
		t.Errorf("scripts ran %d times on %s, which was a follower throughout; want only the start-up on-standby: %v", len(runs), c.ids[y], runs)
	}
}

// shellRun is one script run as the scripts of TestShellDriverBurstInOrder
// record it: a start line and an end line.
type shellRun struct {
	role       string
	term       uint64
	start, end time.Time
}

// parseShellRuns parses a node's file of lines "start|end ROLE TERM
// UNIXTIME" into script runs, and lists every way the file shows two
// scripts at once or a script never finishing: each start must be followed
// by the end of the same script before anything else.
func parseShellRuns(text string) (runs []shellRun, problems []string) {
	open := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		var term uint64
		var secs float64
		var err1, err2 error
		if len(f) == 4 {
			term, err1 = strconv.ParseUint(f[2], 10, 64)
			secs, err2 = strconv.ParseFloat(f[3], 64)
		}
		if len(f) != 4 || err1 != nil || err2 != nil || (f[0] != "start" && f[0] != "end") {
			problems = append(problems, fmt.Sprintf("malformed line %q", line))
			continue
		}
		at := time.Unix(0, int64(secs*1e9))
		if f[0] == "start" {
			if open {
				last := runs[len(runs)-1]
				problems = append(problems, fmt.Sprintf("on-%s (term %d) started while on-%s (term %d) was still running: two scripts at once",
					f[1], term, last.role, last.term))
			}
			runs = append(runs, shellRun{role: f[1], term: term, start: at})
			open = true
			continue
		}
		if !open || runs[len(runs)-1].role != f[1] || runs[len(runs)-1].term != term {
			problems = append(problems, fmt.Sprintf("%q does not end the script that was running", strings.TrimSpace(line)))
			continue
		}
		runs[len(runs)-1].end = at
		open = false
	}
	if open {
		problems = append(problems, "the last script never ended")
	}
	return runs, problems
}

// TestShellRunsCheck makes sure that the check of the scripts' files can
// fail: it must flag interleaved and unfinished scripts, and accept strict
// alternation.
func TestShellRunsCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       int
	}{
		{"in turn", "start standby 1 1.0\nend standby 1 1.5\nstart master 2 2.0\nend master 2 2.2\n", 0},
		{"two at once", "start standby 1 1.0\nstart master 2 1.2\nend standby 1 1.5\nend master 2 1.7\n", 2},
		{"never ended", "start master 2 2.0\n", 1},
		{"end of another", "start master 2 2.0\nend master 3 2.2\n", 2},
		{"garbage", "start master two 2.0\n", 1},
	} {
		if _, problems := parseShellRuns(tc.text); len(problems) != tc.want {
			t.Errorf("%s: %d problems, want %d: %q", tc.name, len(problems), tc.want, problems)
		}
	}
}

// TestShellDriverBurstInOrder makes a burst of transfers back and forth,
// each asked for as soon as the new master's on-master is done, while the
// on-standby scripts take 1.5 s: promotes and other changes pile up behind
// a running script. On every node the scripts must still run one at a
// time, master and standby in turn, in the order of the terms, and every
// term in which a node was master must have run its on-master to the end.
func TestShellDriverBurstInOrder(t *testing.T) {
	t.Parallel()
	const transfers = 6
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	seqDir := filepath.Join(c.dir, "seq")
	if err := os.Mkdir(seqDir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := func(role string, sleep time.Duration) string {
		f := shQuote(seqDir) + "/$CLUSTD_NODE"
		return fmt.Sprintf(`echo "start %[1]s $CLUSTD_TERM $(date +%%s.%%N)" >> %[2]s; sleep %[3]v; echo "end %[1]s $CLUSTD_TERM $(date +%%s.%%N)" >> %[2]s`,
			role, f, sleep.Seconds())
	}
	for i := range c.ids {
		c.startDriverProc(i, "shell", "--on-master", script("master", 200*time.Millisecond),
			"--on-standby", script("standby", 1500*time.Millisecond))
	}
	seqOf := func(i int) string { return filepath.Join(seqDir, c.ids[i]) }
	// ended waits for the line that ends node i's script role of term.
	ended := func(i int, role string, term uint64) {
		t.Helper()
		want := fmt.Sprintf("end %s %d ", role, term)
		c.waitFor(15*time.Second, fmt.Sprintf("%s to finish its on-%s of term %d", c.ids[i], role, term), func() bool {
			b, _ := os.ReadFile(seqOf(i))
			return strings.Contains(string(b), want)
		})
	}

	type tenure struct {
		node int
		term uint64
		seen time.Time // when the test first saw the node as master
	}
	tenures := []tenure{{m, st.Term, time.Now()}}
	ended(m, "master", st.Term)
	// Back and forth between two nodes, whose promotes then find their own
	// on-standby still running, and a last hop to the third.
	x, y := m, c.others(m)[0]
	began := time.Now()
	for k := range transfers {
		to := y
		if k == transfers-1 {
			to = c.others(x, y)[0]
		}
		c.transferTo(m, to)
		_, st2, _ := c.waitMaster(10*time.Second, to)
		tenures = append(tenures, tenure{to, st2.Term, time.Now()})
		ended(to, "master", st2.Term)
		m, x, y = to, to, x
	}
	t.Logf("%d transfers in %v", transfers, time.Since(began).Round(time.Millisecond))
	// Let the last on-standby finish.
	for i := range c.ids {
		c.waitFor(15*time.Second, "the scripts of "+c.ids[i]+" to be done", func() bool {
			b, _ := os.ReadFile(seqOf(i))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			return strings.HasPrefix(lines[len(lines)-1], "end ")
		})
	}

	runs := make([][]shellRun, len(c.ids))
	for i := range c.ids {
		b, err := os.ReadFile(seqOf(i))
		if err != nil {
			t.Fatal(err)
		}
		var problems []string
		runs[i], problems = parseShellRuns(string(b))
		for _, p := range problems {
			t.Errorf("%s: %s", c.ids[i], p)
		}
		var desc []string
		var lastMaster uint64
		for k, r := range runs[i] {
			desc = append(desc, fmt.Sprintf("%s %d", r.role, r.term))
			if r.role == "master" {
				if lastMaster > 0 && r.term <= lastMaster {
					t.Errorf("%s: on-master ran for term %d after it ran for term %d", c.ids[i], r.term, lastMaster)
				}
				lastMaster = r.term
			}
			if k == 0 {
				continue
			}
			p := runs[i][k-1]
			if r.role == p.role {
				t.Errorf("%s: on-%s of term %d followed on-%s of term %d; master and standby must take turns", c.ids[i], r.role, r.term, p.role, p.term)
			}
			if r.term < p.term {
				t.Errorf("%s: on-%s of term %d ran after on-%s of term %d: out of order", c.ids[i], r.role, r.term, p.role, p.term)
			}
		}
		t.Logf("%s ran: %s", c.ids[i], strings.Join(desc, ", "))
	}
	queued := 0
	for _, tn := range tenures {
		var found *shellRun
		for k, r := range runs[tn.node] {
			if r.role == "master" && r.term == tn.term {
				found = &runs[tn.node][k]
				if k > 0 && runs[tn.node][k-1].end.After(tn.seen) {
					queued++
				}
			}
		}
		if found == nil {
			t.Errorf("%s was master in term %d but its on-master never ran for it", c.ids[tn.node], tn.term)
		}
	}
	t.Logf("%d of %d promotes arrived while the node's on-standby was still running and waited for it", queued, len(tenures))

	// Across nodes the daemon hands over once the lease runs out, whether
	// or not the old master's on-standby has finished; say how often the
	// new master's on-master started while it still ran.
	var cross []string
	for k := 1; k < len(tenures); k++ {
		prev, next := tenures[k-1], tenures[k]
		for _, s := range runs[prev.node] {
			if s.role != "standby" || s.term < prev.term {
				continue
			}
			for _, r := range runs[next.node] {
				if r.role == "master" && r.term == next.term && r.start.Before(s.end) {
					cross = append(cross, fmt.Sprintf("on-master of %s (term %d) started %v before on-standby of %s (term %d) ended",
						c.ids[next.node], next.term, s.end.Sub(r.start).Round(time.Millisecond), c.ids[prev.node], s.term))
				}
			}
			break
		}
	}
	t.Logf("%d of %d hand-overs ran the new master's on-master while the old master's on-standby still ran:\n%s",
		len(cross), len(tenures)-1, strings.Join(cross, "\n"))
}

// TestShellSlowStandbyHoldsTransfer: a planned hand-over waits for what the
// old master's driver declared. Each node's `clustd driver shell` has an
// --on-standby that takes 2 s (declared --timeout 5s); after a transfer the
// new master's --on-master must start only once the old master's
// --on-standby has finished.
func TestShellSlowStandbyHoldsTransfer(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, _, _ := c.waitMaster(10 * time.Second)

	logPath := filepath.Join(c.dir, "scripts.log")
	// Each line: node, what, CLOCK_REALTIME in ns (one machine, one clock).
	stamp := func(what string) string {
		return `echo "$CLUSTD_NODE ` + what + ` $CLUSTD_TERM $(date +%s%N)" >> ` + shQuote(logPath)
	}
	for i := range c.ids {
		c.startDriverProc(i, "shell", "--timeout", "5s",
			"--on-master", stamp("master"),
			"--on-standby", stamp("standby-start")+"; sleep 2; "+stamp("standby-end"))
	}
	type line struct {
		node, what string
		term       uint64
		at         int64
	}
	read := func() []line {
		b, _ := os.ReadFile(logPath)
		var out []line
		for l := range strings.Lines(string(b)) {
			f := strings.Fields(l)
			if len(f) != 4 {
				continue
			}
			term, _ := strconv.ParseUint(f[2], 10, 64)
			at, _ := strconv.ParseInt(f[3], 10, 64)
			out = append(out, line{f[0], f[1], term, at})
		}
		return out
	}
	find := func(node, what string, after int64) (line, bool) {
		for _, l := range read() {
			if l.node == node && l.what == what && l.at > after {
				return l, true
			}
		}
		return line{}, false
	}
	c.waitFor(15*time.Second, "on-master on "+c.ids[m], func() bool { _, ok := find(c.ids[m], "master", 0); return ok })

	x := c.others(m)[0]
	asked := time.Now().UnixNano()
	c.transferTo(m, x)
	var promoted, end line
	c.waitFor(20*time.Second, "on-master on "+c.ids[x]+" after the transfer", func() bool {
		var ok bool
		promoted, ok = find(c.ids[x], "master", asked)
		return ok
	})
	end, ok := find(c.ids[m], "standby-end", asked)
	if !ok {
		t.Fatalf("%s's on-master ran (term %d) before %s's on-standby finished: %v", c.ids[x], promoted.term, c.ids[m], read())
	}
	if promoted.at < end.at {
		t.Fatalf("%s's on-master started %v before %s's on-standby ended", c.ids[x], time.Duration(end.at-promoted.at), c.ids[m])
	}
	start, _ := find(c.ids[m], "standby-start", asked)
	t.Logf("on-standby on %s ran %v; on-master on %s started %v after it ended",
		c.ids[m], time.Duration(end.at-start.at), c.ids[x], time.Duration(promoted.at-end.at))
}
