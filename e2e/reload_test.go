package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadWithoutFailover sends SIGHUP to the master of a running cluster:
// a file that changes the timing is refused with the field named, and one
// that changes a priority and the log level is applied; the master and its
// term stay as they were throughout.
func TestReloadWithoutFailover(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	m, st, _ := c.waitMaster(10 * time.Second)

	mark := c.logSize(m)
	c.editConfig(m, `profile: "default"`, `profile: "fast"`)
	c.signal(m, syscall.SIGHUP)
	c.waitFor(10*time.Second, "the refused reload to be logged", func() bool {
		return len(c.logLines(m, mark, "reload refused")) > 0
	})
	if l := c.logLines(m, mark, "reload refused")[0]; !strings.Contains(l, "timing (") {
		t.Errorf("the refusal does not name the timing:\n%s", l)
	}

	mark = c.logSize(m)
	c.editConfig(m, `profile: "fast"`, `profile: "default"`)
	c.editConfig(m, "\nid: \""+c.ids[m]+"\"\n", "\nid: \""+c.ids[m]+"\"\nlog_level: debug\n")
	c.signal(m, syscall.SIGHUP)
	c.waitFor(10*time.Second, "the reload to be applied", func() bool {
		return len(c.logLines(m, mark, "configuration reloaded")) > 0
	})
	if l := c.logLines(m, mark, "configuration reloaded")[0]; !strings.Contains(l, "log_level info → debug") {
		t.Errorf("the reload does not list what changed:\n%s", l)
	}
	m2, st2, _ := c.waitMaster(10 * time.Second)
	if m2 != m || st2.Term != st.Term {
		t.Errorf("master %s in term %d after the reloads, want %s still in term %d", c.ids[m2], st2.Term, c.ids[m], st.Term)
	}
	if !c.running(m) {
		t.Error("the master exited on SIGHUP")
	}
}
