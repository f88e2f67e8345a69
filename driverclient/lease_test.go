package driverclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// leaseGate is a gate that watches its lease, and notes the lease it had
// been told when each Trigger began.
type leaseGate struct {
	*gate
	mu     sync.Mutex
	leases []Lease
	// atTrigger receives, for each Trigger call, the last lease told
	// before it.
	atTrigger chan Lease
}

func newLeaseGate() *leaseGate {
	return &leaseGate{gate: newGate(), atTrigger: make(chan Lease, 64)}
}

func (g *leaseGate) LeaseChanged(l Lease) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leases = append(g.leases, l)
}

func (g *leaseGate) Trigger(ctx context.Context, st State) error {
	g.atTrigger <- g.last()
	return g.gate.Trigger(ctx, st)
}

func (g *leaseGate) last() Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.leases) == 0 {
		return Lease{Term: 1 << 63} // never told: no lease looks like this
	}
	return g.leases[len(g.leases)-1]
}

func (g *leaseGate) told() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.leases)
}

// startLeaseGate runs a client whose driver is a leaseGate; the gate's
// calls are released when the test ends.
func startLeaseGate(t *testing.T) (*harness, *leaseGate) {
	t.Helper()
	g := newLeaseGate()
	h := start(t, newFakeDaemon(t), g, nil)
	t.Cleanup(func() { close(g.closing) })
	return h, g
}

// The lease is told before the promote's Trigger (a command it starts finds
// it), moved by renewals without a Trigger, told only when it changes,
// loses its Deadline before the demote's Trigger, and is zero once Run has
// returned.
func TestLeaseWatcherFollowsTheLease(t *testing.T) {
	h, g := startLeaseGate(t)
	dc := h.conn()

	st := masterState(3, 101*time.Second)
	st.StopDeadlineNS = int64(101500 * time.Millisecond)
	dc.state(1, st)
	if got, want := recv(t, g.atTrigger, "the promote"), (Lease{Term: 3, Deadline: 101 * time.Second, StopDeadline: 101500 * time.Millisecond}); got != want {
		t.Fatalf("lease when the promote began: %+v, want %+v", got, want)
	}
	g.next(t).finish(nil)
	dc.ackOK(1)

	st = masterState(3, 102*time.Second)
	st.StopDeadlineNS = int64(102500 * time.Millisecond)
	dc.state(2, st)
	h.dealtWith(2)
	if got, want := g.last(), (Lease{Term: 3, Deadline: 102 * time.Second, StopDeadline: 102500 * time.Millisecond}); got != want {
		t.Fatalf("lease after the renewal: %+v, want %+v", got, want)
	}
	n := g.told()
	st.Members[1].Reachable = false // a renewal that moves no deadline
	dc.state(3, st)
	h.dealtWith(3)
	if g.told() != n {
		t.Errorf("a renewal that changed no deadline was told again: %+v", g.leases[n:])
	}

	demote := followerState(4, "n2")
	demote.StopDeadlineNS = int64(102500 * time.Millisecond)
	dc.state(4, demote)
	if got, want := recv(t, g.atTrigger, "the demote"), (Lease{Term: 4, StopDeadline: 102500 * time.Millisecond}); got != want {
		t.Fatalf("lease when the demote began: %+v, want %+v (no Deadline: nothing may start as master)", got, want)
	}
	g.next(t).finish(nil)
	dc.ackOK(4)

	h.stop()
	if got := g.last(); got != (Lease{}) {
		t.Errorf("lease after Run returned: %+v, want the zero Lease", got)
	}
}

// A demote that arrives while the promote's Trigger still runs takes the
// lease away at once, not when the promote returns.
func TestLeaseGoesAtTheDemoteNotAfterThePromote(t *testing.T) {
	h, g := startLeaseGate(t)
	dc := h.conn()
	dc.state(1, masterState(3, 200*time.Second))
	recv(t, g.atTrigger, "the promote")
	promote := g.next(t)
	dc.state(2, followerState(4, "n2"))
	h.dealtWith(2)
	if got := g.last(); got.Deadline != 0 || got.Term != 4 {
		t.Errorf("lease with a demote waiting behind the promote: %+v, want term 4 and no Deadline", got)
	}
	recv(t, promote.ctx.Done(), "the promote to be cancelled")
	promote.finish(promote.ctx.Err())
	recv(t, g.atTrigger, "the demote")
	g.next(t).finish(nil)
}

// A lease that runs out unrenewed is taken away before the demote's
// Trigger, with the stop deadline the master state carried.
func TestLeaseRunsOut(t *testing.T) {
	h, g := startLeaseGate(t)
	dc := h.conn()
	st := masterState(5, 101*time.Second)
	st.StopDeadlineNS = int64(101300 * time.Millisecond)
	dc.state(1, st)
	recv(t, g.atTrigger, "the promote")
	g.next(t).finish(nil)
	dc.ackOK(1)

	h.clock.Advance(time.Second)
	if got, want := recv(t, g.atTrigger, "the demote"), (Lease{Term: 5, StopDeadline: 101300 * time.Millisecond}); got != want {
		t.Fatalf("lease when the lease-lost demote began: %+v, want %+v", got, want)
	}
	g.next(t).finish(nil)
}

// A lease file is replaced whole, readable by its owner only, and reads
// back as written; a reader racing the writer never sees half a file.
func TestLeaseFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	f := &LeaseFile{Path: path, OnError: func(err error) { t.Error(err) }}
	want := Lease{Term: 9, Deadline: 81234567890, StopDeadline: 81284567890}
	f.LeaseChanged(want)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if got, err := ReadLeaseFile(path); err != nil || got != want {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
	if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left behind: %v", err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := uint64(1); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			// Every field moves together, so a torn read would show.
			f.LeaseChanged(Lease{Term: i, Deadline: time.Duration(i) * 1000, StopDeadline: time.Duration(i) * 2000})
		}
	})
	for range 2000 {
		l, err := ReadLeaseFile(path)
		if err != nil {
			t.Fatalf("read while it was being replaced: %v", err)
		}
		if l.Term > 9 && (l.Deadline != time.Duration(l.Term)*1000 || l.StopDeadline != time.Duration(l.Term)*2000) {
			t.Fatalf("torn lease %+v", l)
		}
	}
	close(done)
	wg.Wait()
}

// A lease that cannot be written removes the file: a reader then finds no
// lease rather than an old one.
func TestLeaseFileWriteFailureRemovesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	var errs []error
	f := &LeaseFile{Path: path, OnError: func(err error) { errs = append(errs, err) }}
	f.LeaseChanged(Lease{Term: 2, Deadline: 5 * time.Second})
	// A directory where the temporary file goes makes the write fail.
	if err := os.Mkdir(path+".new", 0o700); err != nil {
		t.Fatal(err)
	}
	f.LeaseChanged(Lease{Term: 2, Deadline: 6 * time.Second})
	if len(errs) != 1 {
		t.Fatalf("errors reported: %v, want one", errs)
	}
	if _, err := ReadLeaseFile(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a failed write the file reads %v, want it gone", err)
	}
}

func TestLeaseMayActAndFinish(t *testing.T) {
	l := Lease{Term: 1, Deadline: 10, StopDeadline: 20}
	for _, c := range []struct {
		now         time.Duration
		act, finish bool
	}{{9, true, true}, {10, false, true}, {19, false, true}, {20, false, false}} {
		if l.MayAct(c.now) != c.act || l.MayFinish(c.now) != c.finish {
			t.Errorf("at %d: MayAct %v MayFinish %v, want %v %v", c.now, l.MayAct(c.now), l.MayFinish(c.now), c.act, c.finish)
		}
	}
	if (Lease{}).MayAct(0) || (Lease{}).MayFinish(0) {
		t.Error("the zero Lease allows acting")
	}
	if !(Lease{Deadline: 10}).MayFinish(5) {
		t.Error("no stop deadline: work may still finish before the lease deadline")
	}
}

func TestParseLeaseRefuses(t *testing.T) {
	for _, s := range []string{
		"",
		"term=1\nlease_deadline_ns=2\n",
		"term=1\nlease_deadline_ns=2\nstop_deadline_ns=3\nterm=1\n",
		"term=1\nlease_deadline_ns=-2\nstop_deadline_ns=3\n",
		"term=x\nlease_deadline_ns=2\nstop_deadline_ns=3\n",
		"term=1\nlease_deadline_ns=2\nstop_deadline_ns=3\nextra=4\n",
		"term=1\nlease_deadline_ns 2\nstop_deadline_ns=3\n",
	} {
		if l, err := ParseLease([]byte(s)); err == nil {
			t.Errorf("%q parsed as %+v", s, l)
		}
	}
}

func FuzzParseLease(f *testing.F) {
	f.Add(MarshalLease(Lease{Term: 3, Deadline: 4, StopDeadline: 5}))
	f.Add([]byte("term=1\nlease_deadline_ns=2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLease(b)
		if err != nil {
			return
		}
		again, err := ParseLease(MarshalLease(l))
		if err != nil || again != l {
			t.Fatalf("%+v did not survive a round trip: %+v, %v", l, again, err)
		}
	})
}

// BenchmarkLeaseFileWrite is the cost of one renewal to a driver that keeps
// a lease file: a few of these per lease.
func BenchmarkLeaseFileWrite(b *testing.B) {
	f := &LeaseFile{Path: filepath.Join(b.TempDir(), "lease")}
	for i := range b.N {
		if err := f.Write(Lease{Term: 1, Deadline: time.Duration(i), StopDeadline: time.Duration(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadLeaseFile is the cost of one check by a service.
func BenchmarkReadLeaseFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lease")
	if err := WriteLeaseFile(path, Lease{Term: 1, Deadline: 2, StopDeadline: 3}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if _, err := ReadLeaseFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
