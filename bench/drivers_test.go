package bench

import (
	"context"
	"testing"

	"github.com/clustd/clustd/driverclient"
)

func newTestRecorder() *Recorder {
	return &Recorder{changed: make(chan struct{}), cancel: func() {}}
}

func TestRecorderWaitFor(t *testing.T) {
	r := newTestRecorder()
	r.record("n1", driverclient.State{IsMaster: true, Term: 1})
	from := r.Len()

	type found struct {
		t  Trigger
		ok bool
	}
	got := make(chan found)
	go func() {
		tr, ok := r.WaitFor(context.Background(), from, func(t Trigger) bool { return t.IsMaster && t.Node != "n1" })
		got <- found{tr, ok}
	}()
	// Whether the waiter is already waiting or not, it must find the
	// promote recorded after its starting point, and skip the others.
	r.record("n1", driverclient.State{IsMaster: false, Term: 1, Local: true})
	r.record("n2", driverclient.State{IsMaster: true, Term: 2})
	f := <-got
	if !f.ok || f.t.Node != "n2" || f.t.Term != 2 || !f.t.IsMaster {
		t.Fatalf("WaitFor = %+v, %v; want n2's promote in term 2", f.t, f.ok)
	}
	if f.t.Returned < f.t.Called {
		t.Errorf("returned %v before called %v", f.t.Returned, f.t.Called)
	}

	// Calls recorded before from are not considered.
	if _, ok := r.WaitFor(cancelled(), from+2, func(t Trigger) bool { return t.Node == "n2" }); ok {
		t.Error("WaitFor found a call before its starting point")
	}
	if last, ok := r.Last("n1"); !ok || last.IsMaster || !last.Local {
		t.Errorf("Last(n1) = %+v, %v; want the local demote", last, ok)
	}
	if _, ok := r.Last("n9"); ok {
		t.Error("Last found a call of a node that had none")
	}
	if s := r.Since(1); len(s) != 2 || s[0].Node != "n1" || s[1].Node != "n2" {
		t.Errorf("Since(1) = %+v", s)
	}
	if s := r.Since(10); len(s) != 0 {
		t.Errorf("Since past the end = %+v", s)
	}
}

func TestRecorderWaitForGivesUp(t *testing.T) {
	r := newTestRecorder()
	if _, ok := r.WaitFor(cancelled(), 0, func(Trigger) bool { return true }); ok {
		t.Error("WaitFor on an empty log with a cancelled context succeeded")
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
