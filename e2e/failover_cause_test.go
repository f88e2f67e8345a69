package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/journal"
)

// A master stopped with SIGSTOP past its lease is first recorded as lost;
// once it runs again it tells the new master it was paused, and the record
// is revised on every node.
func TestFailoverCausePaused(t *testing.T) {
	c := newCluster(t, 3, "fast")
	c.startAll()
	m, _, _ := c.waitMaster(30 * time.Second)
	c.signal(m, syscall.SIGSTOP)
	n, st, _ := c.waitMaster(30*time.Second, c.others(m)...)
	record := func(i int) (journal.Event, bool) {
		evs, err := c.admin(i).Events(context.Background(), "", 100, true)
		if err != nil {
			return journal.Event{}, false
		}
		var out journal.Event
		found := false
		for _, ev := range evs.Events {
			if ev.Term == st.Term && (!found || ev.Rev >= out.Rev) {
				out, found = ev, true
			}
		}
		return out, found
	}
	c.waitFor(30*time.Second, "the new master's record", func() bool { _, ok := record(n); return ok })
	if ev, _ := record(n); ev.Cause != driverproto.CauseMasterLost || ev.From != c.ids[m] {
		t.Fatalf("while %s is stopped the record says %+v", c.ids[m], ev.Failover)
	}
	c.signal(m, syscall.SIGCONT)
	for _, i := range []int{n, m} {
		c.waitFor(30*time.Second, "the record revised to paused on "+c.ids[i], func() bool {
			ev, ok := record(i)
			return ok && ev.Cause == driverproto.CausePaused && ev.Rev > 0
		})
	}
	ev, _ := record(n)
	if ev.NoMasterMS < 0 || ev.LeaseExpired == nil || ev.Elected.Before(*ev.LeaseExpired) {
		t.Fatalf("revised record: %+v", ev.Failover)
	}
}
