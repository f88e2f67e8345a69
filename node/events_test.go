package node

import (
	"context"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/journal"
)

// failovers reads daemon i's failover records, latest revision per term.
func (tc *inProcessCluster) failovers(i int) map[uint64]journal.Event {
	tc.t.Helper()
	j := tc.daemons[i].Journal()
	if j == nil {
		tc.t.Fatalf("n%d has no journal", i+1)
	}
	evs, err := j.Read(journal.Query{Failovers: true})
	if err != nil {
		tc.t.Fatal(err)
	}
	out := map[uint64]journal.Event{}
	for _, ev := range evs {
		if old, ok := out[ev.Term]; !ok || ev.Rev >= old.Rev {
			out[ev.Term] = ev
		}
	}
	return out
}

// waitFailover waits until daemon i holds a failover record of the given
// term, and returns it.
func (tc *inProcessCluster) waitFailover(i int, term uint64) journal.Event {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ev, ok := tc.failovers(i)[term]; ok {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.t.Fatalf("n%d has no failover record of term %d; it has %v", i+1, term, tc.failovers(i))
	return journal.Event{}
}

// failoverCount is the failover histogram's count for cause.
func failoverCount(t *testing.T, d *Daemon, cause string) uint64 {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "clustd_failover_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == cause {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatal("no clustd_failover_duration_seconds histogram")
	return 0
}

// A graceful stop of the master is a transfer: the new master records it,
// and every member gets the record.
func TestFailoverRecordShared(t *testing.T) {
	tc := newTestCluster(t, 3)
	a := tc.waitMaster(-1)
	tc.stop(a)
	b := tc.waitMaster(a)
	term := tc.daemons[b].Status().Term
	ev := tc.waitFailover(b, term)
	if ev.From != tc.cfgs[a].ID || ev.To != tc.cfgs[b].ID || ev.Cause != driverproto.CauseTransfer || ev.Node != ev.To {
		t.Fatalf("record %+v: want %s -> %s, transfer", ev, tc.cfgs[a].ID, tc.cfgs[b].ID)
	}
	if ev.NoMasterMS < 0 || ev.NoMasterMS > 10000 || ev.LeaseExpired == nil || ev.Elected.Before(*ev.LeaseExpired) {
		t.Fatalf("record times: %+v", ev.Failover)
	}
	if n := failoverCount(t, tc.daemons[b], driverproto.CauseTransfer); n != 1 {
		t.Fatalf("the new master's failover histogram counts %d transfers, want 1", n)
	}
	c := 3 - a - b
	got := tc.waitFailover(c, term)
	if got.From != ev.From || got.To != ev.To || got.Cause != ev.Cause || !got.Elected.Equal(ev.Elected) {
		t.Fatalf("n%d got %+v, the master made %+v", c+1, got.Failover, ev.Failover)
	}
}

// A node that was down catches up, when it rejoins, on the failover
// records made meanwhile, even from a member that was not up when they
// were made and so never queued them for it.
func TestFailoverCatchUp(t *testing.T) {
	tc := newTestCluster(t, 3)
	a := tc.waitMaster(-1)
	c := (a + 1) % 3
	b := 3 - a - c
	tc.stop(c)
	// a hands over to b, the only other member up.
	tc.stop(a)
	if m := tc.waitMaster(a); m != b {
		t.Fatalf("n%d is master, want n%d", m+1, b+1)
	}
	t1 := tc.daemons[b].Status().Term
	tc.waitFailover(b, t1)
	// a comes back and learns of it; b then hands back to a.
	tc.start(a)
	tc.waitFailover(a, t1)
	// b takes a while to see a reachable and eligible again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := tc.daemons[b].Transfer(context.Background(), tc.cfgs[a].ID)
		if err == nil {
			break
		}
		// On a starved machine b's lease can lapse and a be elected
		// without the hand-over: the records are what this test is about,
		// not how a came to be master.
		if tc.daemons[a].Status().Master == tc.cfgs[a].ID {
			t.Logf("n%d became master by an election before the hand-over: %v", a+1, err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := tc.waitMaster(b); m != a {
		t.Fatalf("n%d is master, want n%d", m+1, a+1)
	}
	t2 := tc.daemons[a].Status().Term
	tc.waitFailover(a, t2)
	tc.stop(b)
	// c was down for both. Only a is up to tell it, and a made the first
	// record's acquaintance after c went down.
	tc.start(c)
	for _, term := range []uint64{t1, t2} {
		got, want := tc.waitFailover(c, term), tc.failovers(a)[term]
		if got.From != want.From || got.To != want.To || got.Cause != want.Cause || got.NoMasterMS != want.NoMasterMS {
			t.Fatalf("term %d: n%d caught up %+v, n%d has %+v", term, c+1, got.Failover, a+1, want.Failover)
		}
	}
	// Each record is there once.
	evs, _ := tc.daemons[c].Journal().Read(journal.Query{Failovers: true})
	seen := map[uint64]int{}
	for _, ev := range evs {
		seen[ev.Term]++
		if seen[ev.Term] > 1 && ev.Rev == 0 {
			t.Fatalf("term %d recorded twice: %+v", ev.Term, evs)
		}
	}
}

// A master put in maintenance hands over; the record says why.
func TestFailoverCauseMaintenance(t *testing.T) {
	tc := newTestCluster(t, 3)
	a := tc.waitMaster(-1)
	if err := tc.daemons[a].SetMaintenance(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	b := tc.waitMaster(a)
	ev := tc.waitFailover(b, tc.daemons[b].Status().Term)
	if ev.From != tc.cfgs[a].ID || ev.Cause != driverproto.CauseMaintenance {
		t.Fatalf("record %+v, want from %s, cause maintenance", ev.Failover, tc.cfgs[a].ID)
	}
	// The old master's journal has the maintenance and its own step-down.
	evs, _ := tc.daemons[a].Journal().Read(journal.Query{})
	kinds := map[string]bool{}
	for _, e := range evs {
		kinds[e.Kind] = true
	}
	for _, k := range []string{journal.KindStart, journal.KindMaintenance, journal.KindRole, journal.KindFailover} {
		if !kinds[k] {
			t.Errorf("n%d's journal has no %s event: %+v", a+1, k, evs)
		}
	}
}

// A driver that never confirms its demote on a hand-over is journaled as a
// demote overrun once demote_timeout has passed.
func TestDemoteOverrunJournaled(t *testing.T) {
	tc := newTestCluster(t, 3)
	for i := range tc.daemons {
		tc.stop(i)
		tc.cfgs[i].DemoteTimeout = 300 * time.Millisecond
	}
	for i := range tc.daemons {
		tc.start(i)
	}
	m := tc.waitMaster(-1)
	dr, err := dialDriver(t, tc.daemons[m], tc.cfgs[m].DriversSecret, "stuck-1", false)
	if err != nil {
		t.Fatal(err)
	}
	st := dr.waitState(func(s *driverproto.State) bool { return s.IsMaster }, true)
	dr.send(driverproto.Message{Type: driverproto.TypeAck, Seq: st.Seq, OK: driverproto.Bool(true)})
	// A driver that confirms everything at once is not late.
	good, err := dialDriver(t, tc.daemons[m], tc.cfgs[m].DriversSecret, "good-1", false)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			_, b, err := good.ws.ReadMessage()
			if err != nil {
				return
			}
			if msg, err := driverproto.Decode(b); err == nil && msg.Type == driverproto.TypeState {
				good.send(driverproto.Message{Type: driverproto.TypeAck, Seq: msg.Seq, OK: driverproto.Bool(true)})
			}
		}
	}()
	if err := tc.daemons[m].SetMaintenance(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	// The driver reads on (so that it is not cut off) and acks nothing.
	go func() {
		for {
			if _, _, err := dr.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs, _ := tc.daemons[m].Journal().Read(journal.Query{})
		var late []string
		for _, ev := range evs {
			if ev.Kind == journal.KindDemoteOverrun {
				late = append(late, ev.Driver)
			}
		}
		if len(late) > 0 {
			if len(late) != 1 || late[0] != "stuck-1" {
				t.Fatalf("demote overruns of %v, want stuck-1 alone", late)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no demote_overrun in the journal: %+v", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
