package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/chaos"
	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/internal/boottime"
)

// fakeLease is a lease and a clock the test sets.
type fakeLease struct {
	mu    sync.Mutex
	l     driverclient.Lease
	err   error
	times []time.Duration // the clock's next readings, the last repeated
}

func (f *fakeLease) get() (driverclient.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.l, f.err
}

func (f *fakeLease) now() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.times[0]
	if len(f.times) > 1 {
		f.times = f.times[1:]
	}
	return t
}

func (f *fakeLease) at(ts ...time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = ts
}

func newGuard(t *testing.T, f *fakeLease) (*guard, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.jsonl")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return &guard{out: out, lease: f.get, now: f.now, fatal: func(err error) { t.Fatal(err) }}, path
}

func records(t *testing.T, path string) []chaos.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []chaos.Record
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break // a write still under way
		}
		var r chaos.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func events(recs []chaos.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event)
	}
	return out
}

// Acts are written only while the lease holds, stamped with the time of
// the check; a failed check is recorded once, until one passes again.
func TestGuardHoldsBackOnceTheLeasePassed(t *testing.T) {
	f := &fakeLease{l: driverclient.Lease{Term: 4, Deadline: 100, StopDeadline: 150}}
	g, path := newGuard(t, f)
	act := func(at time.Duration, finishing bool) bool {
		f.at(at, at, at+1)
		return g.act(chaos.Record{Node: "a", Event: chaos.EvActing, Term: 4}, 4, finishing)
	}
	if !act(50, false) {
		t.Fatal("no act with the lease ahead")
	}
	if act(100, false) || act(120, false) {
		t.Fatal("acted as master at or after the lease deadline")
	}
	if !act(120, true) {
		t.Fatal("could not finish work before the stop deadline")
	}
	if act(150, true) {
		t.Fatal("finished work at the stop deadline")
	}
	f.l.Deadline = 300 // renewed
	if !act(160, false) {
		t.Fatal("no act after a renewal")
	}
	f.l.Term = 5
	if act(170, false) {
		t.Fatal("acted under the lease of another term")
	}
	recs := records(t, path)
	want := []string{chaos.EvActing, chaos.EvHeld, chaos.EvActing, chaos.EvHeld, chaos.EvActing, chaos.EvHeld}
	if got := events(recs); !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if recs[0].MonoNS != 50 || recs[0].UntilNS != 100 {
		t.Errorf("first act %+v: want it stamped at its check (50) with the deadline it found (100)", recs[0])
	}
	if recs[1].MonoNS != 100 || recs[1].UntilNS != 100 {
		t.Errorf("held %+v: want the time of the check and the deadline passed", recs[1])
	}
	if recs[2].MonoNS != 120 || recs[2].UntilNS != 150 {
		t.Errorf("finishing act %+v: want it checked against the stop deadline", recs[2])
	}
}

// An act whose write returns after the deadline its check found is
// followed by EvLate, which says how late it may have landed.
func TestGuardOwnsUpToALateWrite(t *testing.T) {
	f := &fakeLease{l: driverclient.Lease{Term: 4, Deadline: 100}}
	g, path := newGuard(t, f)
	f.at(99, 99, 400) // checked at 99, written at once, returned at 400
	if !g.act(chaos.Record{Node: "a", Event: chaos.EvActing, Term: 4}, 4, false) {
		t.Fatal("no act")
	}
	recs := records(t, path)
	if got := events(recs); !slices.Equal(got, []string{chaos.EvActing, chaos.EvLate}) {
		t.Fatalf("records %v", got)
	}
	if l := recs[1]; l.MonoNS != 99 || l.WriteNS != 99 || l.LandedNS != 400 || l.UntilNS != 100 {
		t.Errorf("late record %+v", l)
	}
	f.err = errors.New("no such file")
	f.at(50)
	if g.act(chaos.Record{Node: "a", Event: chaos.EvActing, Term: 4}, 4, false) {
		t.Fatal("acted with no lease to read")
	}
}

// The probe, frozen while it ran and thawed after its lease, acts no more:
// it records that it held back, writes no stop, and the suite ends its run
// at its last act, whatever came later.
func TestProbeHoldsBackAfterItsLease(t *testing.T) {
	dir := t.TempDir()
	leasePath := filepath.Join(dir, "lease")
	const term = 6
	if err := driverclient.WriteLeaseFile(leasePath, driverclient.Lease{Term: term, Deadline: boottime.Now() + time.Hour, StopDeadline: boottime.Now() + time.Hour}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "exec.jsonl")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	g := &guard{out: out, lease: func() (driverclient.Lease, error) { return driverclient.ReadLeaseFile(leasePath) }, fatal: func(err error) { t.Error(err) }}
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProbe(g, chaos.Record{Node: "a", Term: term, PID: 42}, 20*time.Millisecond, sig)
	}()
	wait := func(what string, cond func([]chaos.Record) bool) []chaos.Record {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if recs := records(t, path); cond(recs) {
				return recs
			}
		}
		t.Fatalf("timed out waiting for %s: %v", what, events(records(t, path)))
		return nil
	}
	wait("signs of life", func(r []chaos.Record) bool { return len(r) >= 3 })

	// The lease ran out while the probe was frozen: both deadlines passed.
	past := boottime.Now() - time.Millisecond
	if err := driverclient.WriteLeaseFile(leasePath, driverclient.Lease{Term: term, Deadline: past, StopDeadline: past}); err != nil {
		t.Fatal(err)
	}
	wait("the probe to hold back", func(r []chaos.Record) bool { return slices.Contains(events(r), chaos.EvExecHeld) })
	sig <- os.Interrupt
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe did not end after its stop signal")
	}
	recs := records(t, path)
	held := slices.Index(events(recs), chaos.EvExecHeld)
	for _, r := range recs[held+1:] {
		t.Errorf("after holding back the probe still wrote %+v", r)
	}
	if recs[0].Event != chaos.EvExecStart {
		t.Fatalf("first record %+v, want the start", recs[0])
	}
	for _, r := range recs[:held] {
		if r.MonoNS >= r.UntilNS {
			t.Errorf("act %+v checked at or after the deadline it found", r)
		}
	}
	if recs[held].UntilNS != int64(past) {
		t.Errorf("held %+v: want the deadline that had passed, %d", recs[held], past)
	}
	// No stop, no act after holding back: the suite ends the run at its
	// last act (chaos's TestExecHeldBack).
}

// The recorder, as a driver, refuses a promote whose lease is gone, acts
// every ActEvery while master, and after a freeze past its stop deadline
// records no demote start: its tenure ends at its last act.
func TestRecorderHoldsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := &recorder{node: "a", out: out}
	r.guard = &guard{out: out, lease: r.currentLease, fatal: func(err error) { t.Error(err) }}
	ctx := context.Background()

	r.LeaseChanged(driverclient.Lease{Term: 3, Deadline: boottime.Now() - time.Millisecond})
	if err := r.Trigger(ctx, driverclient.State{IsMaster: true, Term: 3}); err == nil {
		t.Fatal("a promote whose lease had gone was acted on")
	}
	if got := events(records(t, path)); !slices.Equal(got, []string{chaos.EvHeld}) {
		t.Fatalf("records %v, want only that it held back", got)
	}

	far := boottime.Now() + time.Hour
	r.LeaseChanged(driverclient.Lease{Term: 4, Deadline: far, StopDeadline: far})
	if err := r.Trigger(ctx, driverclient.State{IsMaster: true, Term: 4}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n := 0
		for _, e := range events(records(t, path)) {
			if e == chaos.EvActing {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("no acts while master")
		}
	}
	// Frozen past the stop deadline; thawed, the library decides to demote.
	past := boottime.Now() - time.Millisecond
	r.LeaseChanged(driverclient.Lease{Term: 4, StopDeadline: past})
	if err := r.Trigger(ctx, driverclient.State{Term: 4}); err != nil {
		t.Fatal(err)
	}
	recs := records(t, path)
	got := events(recs)
	if slices.Contains(got, chaos.EvDemoteStart) {
		t.Errorf("a demote begun after the stop deadline was recorded as an act: %v", got)
	}
	if got[len(got)-1] != chaos.EvDemoteDone || got[len(got)-2] != chaos.EvHeld {
		t.Fatalf("records end %v, want held back then demote done", got[max(0, len(got)-4):])
	}
	// Every act was checked under the deadline it found; the suite ends
	// the tenure at the last (chaos's TestHeldBackTenureEndsAtItsLastAct).
	for _, x := range recs {
		if x.Event == chaos.EvActing && x.MonoNS >= x.UntilNS {
			t.Errorf("act %+v checked at or after its deadline", x)
		}
	}
}
