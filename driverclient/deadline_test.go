package driverclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

// remaining is how far ctx's deadline lies ahead, for comparison with what
// the fake clock says it should be (the context's deadline is on the wall
// clock, taken when the Trigger started).
func remaining(t *testing.T, ctx context.Context) time.Duration {
	t.Helper()
	dl, ok := ctx.Deadline()
	if !ok {
		t.Fatal("the demote's context has no deadline")
	}
	return time.Until(dl)
}

func near(got, want time.Duration) bool {
	return got <= want && got > want-2*time.Second
}

// A demote that begins because the lease ran out must be done by the stop
// deadline the master state carried: its context says so, and the State
// passed to Trigger carries it.
func TestLeaseLostDemoteHasTheStopDeadline(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, nil)
	dc := h.conn()

	st := masterState(3, 101*time.Second)
	st.StopDeadlineNS = int64(104 * time.Second)
	dc.state(1, st)
	promote := g.next(t)
	if promote.st.StopDeadline != 104*time.Second {
		t.Fatalf("promote's StopDeadline %v, want 104s", promote.st.StopDeadline)
	}
	promote.finish(nil)
	dc.ackOK(1)

	h.clock.Advance(time.Second) // 101s: the lease runs out
	demote := g.next(t)
	if demote.st.IsMaster || !demote.st.Local || demote.st.StopDeadline != 104*time.Second {
		t.Fatalf("got %+v, want a local demote with the stop deadline", demote.st)
	}
	if r := remaining(t, demote.ctx); !near(r, 3*time.Second) {
		t.Errorf("the demote's context ends in %v, want the stop deadline 3s away", r)
	}
	demote.finish(nil)
	if strings.Contains(h.logs.String(), "after its deadline") {
		t.Error("a demote that finished in time was reported as late")
	}
}

// A demote the daemon asks for gets the time the driver declared, or the
// stop deadline it carries if that comes first; the hello declares it.
func TestDaemonDemoteGetsTheDeclaredTime(t *testing.T) {
	for _, c := range []struct {
		name string
		stop time.Duration // from now (100s); 0 for none
		want time.Duration
	}{
		{"declared time first", 30 * time.Second, 2 * time.Second},
		{"stop deadline first", 500 * time.Millisecond, 500 * time.Millisecond},
		{"no stop deadline", 0, 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			g := newGate()
			h := start(t, d, g, func(o *Options) { o.DemoteTimeout = 1999500 * time.Microsecond })
			dc := h.conn()
			if dc.hello.DemoteTimeoutMS != 2000 {
				t.Fatalf("hello declares %d ms, want 2000 (rounded up)", dc.hello.DemoteTimeoutMS)
			}
			dc.state(1, masterState(3, 200*time.Second))
			g.next(t).finish(nil)
			dc.ackOK(1)

			st := followerState(4, "n2")
			if c.stop > 0 {
				st.StopDeadlineNS = int64(100*time.Second + c.stop)
			}
			dc.state(2, st)
			demote := g.next(t)
			if r := remaining(t, demote.ctx); !near(r, c.want) {
				t.Errorf("the demote's context ends in %v, want %v", r, c.want)
			}
			demote.finish(nil)
			if m := dc.ack(2); !*m.OK || m.OverrunMS != 0 {
				t.Errorf("ack %+v, want ok and no overrun", m)
			}
		})
	}
}

// A planned hand-over gives the demote the declared time, and keeps
// renewing the stop deadline: while renewals come the demote goes on; once
// they stop and the deadline passes it is cut short, and its
// acknowledgement says how late it finished.
func TestPlannedDemoteFollowsTheRenewedStopDeadline(t *testing.T) {
	d := newFakeDaemon(t)
	g := newGate()
	h := start(t, d, g, func(o *Options) { o.DemoteTimeout = 10 * time.Second })
	dc := h.conn()
	dc.state(1, masterState(3, 200*time.Second))
	g.next(t).finish(nil)
	dc.ackOK(1)

	planned := func(stop time.Duration) driverproto.State {
		st := followerState(3, "")
		st.Planned, st.StopDeadlineNS = true, int64(stop)
		return st
	}
	dc.state(2, planned(101*time.Second))
	demote := g.next(t)
	if !demote.st.Planned {
		t.Fatalf("got %+v, want a planned demote", demote.st)
	}
	if r := remaining(t, demote.ctx); !near(r, 10*time.Second) {
		t.Errorf("the planned demote's context ends in %v, want the declared 10s", r)
	}
	h.clock.Advance(500 * time.Millisecond)
	dc.state(3, planned(102*time.Second)) // renewed
	h.dealtWith(3)
	h.clock.Advance(time.Second) // 101.5s: past the first deadline, not the renewed one
	if err := demote.ctx.Err(); err != nil {
		t.Fatalf("the demote was cut short at 101.5s despite the renewal to 102s: %v", err)
	}
	h.clock.Advance(time.Second) // 102.5s: no renewal since
	select {
	case <-demote.ctx.Done():
	case <-time.After(wait):
		t.Fatal("the demote was not cut short once the stop deadline passed unrenewed")
	}
	demote.finish(nil)
	if m := dc.ack(2); m.OverrunMS < 500 {
		t.Errorf("ack %+v, want an overrun of at least 500 ms", m)
	}
	dc.ack(3)
	if !strings.Contains(h.logs.String(), "cutting the demote short") {
		t.Error("the cut was not logged")
	}
}
