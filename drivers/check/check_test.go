package check

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

// reports records what a Driver reports.
type reports struct {
	mu  sync.Mutex
	got []bool
	why []string
}

func (r *reports) set(ok bool, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ok)
	r.why = append(r.why, why)
}

func (r *reports) last() (bool, string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return false, "", 0
	}
	return r.got[len(r.got)-1], r.why[len(r.why)-1], len(r.got)
}

func newTest(t *testing.T, fall, rise int, window time.Duration, now *time.Time) (*Driver, *reports) {
	t.Helper()
	r := &reports{}
	d, err := New(Options{
		Name: "web", Probe: func(context.Context) error { return nil },
		Fall: fall, Rise: rise, FlapWindow: window,
		SetHealth: r.set,
		Logger:    quiet,
		Now:       func() time.Time { return *now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, r
}

var quiet = slog.New(slog.DiscardHandler)

var errDown = errors.New("connection refused")

func TestFallAndRise(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 3, 2, 0, &now)
	if _, _, n := r.last(); n != 0 {
		t.Fatalf("reported %d times before any probe", n)
	}
	// The daemon counts a driver healthy until it says otherwise: a
	// first success need not be reported.
	d.Record(nil)
	if ok, _, n := r.last(); n != 0 && !ok {
		t.Fatal("unhealthy after a first success")
	}
	d.Record(errDown)
	d.Record(errDown)
	if ok, _, n := r.last(); n != 0 && !ok {
		t.Fatal("unhealthy after 2 failures with fall 3")
	}
	d.Record(errDown)
	ok, why, _ := r.last()
	if ok || !strings.Contains(why, "connection refused") || !strings.Contains(why, "web") {
		t.Fatalf("after 3 failures: ok=%v %q, want unhealthy naming the check and the error", ok, why)
	}
	d.Record(nil)
	if ok, _, _ := r.last(); ok {
		t.Fatal("healthy after 1 success with rise 2")
	}
	d.Record(errDown) // resets the successes
	d.Record(nil)
	if ok, _, _ := r.last(); ok {
		t.Fatal("healthy after a success that followed a failure, rise 2")
	}
	d.Record(nil)
	if ok, _, _ := r.last(); !ok {
		t.Fatal("still unhealthy after 2 successes in a row, rise 2")
	}
}

func TestFirstFailureCountsAtOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 3, 2, 0, &now)
	d.Record(errDown)
	if ok, _, n := r.last(); ok || n != 1 {
		t.Fatalf("after a first failure: ok=%v, %d reports; want unhealthy at once", ok, n)
	}
}

func TestFlapDamping(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 1, 1, 10*time.Minute, &now)
	d.Trigger(context.Background(), masterState(true))
	d.Record(nil)
	d.Record(errDown) // first loss of the master role
	d.Trigger(context.Background(), masterState(false))
	now = now.Add(time.Minute)
	d.Record(nil)
	if ok, _, _ := r.last(); !ok {
		t.Fatal("damped after a single loss")
	}
	d.Trigger(context.Background(), masterState(true))
	now = now.Add(time.Minute)
	d.Record(errDown) // second loss, 1 minute later
	d.Trigger(context.Background(), masterState(false))
	now = now.Add(time.Minute)
	d.Record(nil)
	ok, why, _ := r.last()
	if ok || !strings.Contains(why, "flapping") {
		t.Fatalf("after two losses within the window and a success: ok=%v %q, want damped", ok, why)
	}
	now = now.Add(9*time.Minute - time.Second)
	d.Record(nil)
	if ok, _, _ := r.last(); ok {
		t.Fatal("damping ended before the window passed since the second loss")
	}
	now = now.Add(2 * time.Second)
	d.Record(nil)
	if ok, _, _ := r.last(); !ok {
		t.Fatal("still damped once the window passed")
	}
}

func TestLossesOutsideTheWindowDoNotDamp(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 1, 1, 10*time.Minute, &now)
	for range 2 {
		d.Trigger(context.Background(), masterState(true))
		d.Record(nil)
		d.Record(errDown)
		d.Trigger(context.Background(), masterState(false))
		now = now.Add(11 * time.Minute)
	}
	d.Record(nil)
	if ok, why, _ := r.last(); !ok {
		t.Fatalf("damped after two losses 11 minutes apart: %q", why)
	}
}

func TestFollowerFailuresDoNotDamp(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 1, 1, 10*time.Minute, &now)
	for range 3 {
		d.Record(nil)
		d.Record(errDown)
	}
	d.Record(nil)
	if ok, why, _ := r.last(); !ok {
		t.Fatalf("a follower's failures damped it: %q", why)
	}
}

func TestRunTimesOutAProbe(t *testing.T) {
	r := &reports{}
	d, err := New(Options{
		Probe:    func(ctx context.Context) error { <-ctx.Done(); return nil },
		Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Fall: 1, Rise: 1,
		SetHealth: r.set,
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, why, n := r.last(); n > 0 {
			if ok || !strings.Contains(why, "timed out") {
				t.Fatalf("a probe that outlives its timeout: ok=%v %q", ok, why)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no report within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestProbes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status := http.StatusOK
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := HTTP(srv.URL, 200)(ctx); err != nil {
		t.Errorf("HTTP on a server answering 200: %v", err)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if err := HTTP(srv.URL, 200)(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("HTTP on a server answering 503: %v, want an error naming 503", err)
	}
	if err := TCP(srv.Listener.Addr().String())(ctx); err != nil {
		t.Errorf("TCP to a listener: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if err := TCP(closed)(ctx); err == nil {
		t.Error("TCP to a closed port passed")
	}
	if err := Exec("true")(ctx); err != nil {
		t.Errorf("Exec true: %v", err)
	}
	if err := Exec("echo sick >&2; exit 3")(ctx); err == nil || !strings.Contains(err.Error(), "sick") {
		t.Errorf("Exec of a failing command: %v, want an error with its output", err)
	}
	short, c2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer c2()
	if err := Exec("sleep 30")(short); err == nil {
		t.Error("Exec past its timeout passed")
	}
	if err := Link("lo")(ctx); err != nil {
		t.Errorf("Link lo: %v", err)
	}
	if err := Link("clustd-no-such-if")(ctx); err == nil {
		t.Error("Link on a missing interface passed")
	}
	pctx, c3 := context.WithTimeout(ctx, 2*time.Second)
	defer c3()
	switch err := Ping("127.0.0.1")(pctx); {
	case err != nil && strings.Contains(err.Error(), "no ICMP socket"):
		t.Logf("SKIPPED the ping probe: neither a datagram nor a raw ICMP socket is allowed here: %v", err)
	case err != nil:
		t.Errorf("Ping 127.0.0.1: %v", err)
	}
}

func TestMaintenanceOffEndsDamping(t *testing.T) {
	now := time.Unix(1000, 0)
	d, r := newTest(t, 1, 1, 10*time.Minute, &now)
	for range 2 {
		d.Trigger(context.Background(), masterState(true))
		d.Record(nil)
		d.Record(errDown)
		d.Trigger(context.Background(), masterState(false))
		now = now.Add(time.Minute)
	}
	d.Record(nil)
	if ok, why, _ := r.last(); ok || !strings.Contains(why, "flapping") {
		t.Fatalf("after two losses: ok=%v %q, want damped", ok, why)
	}
	d.Event(driverproto.Event{Kind: driverproto.EventMaintenance, Detail: "on"})
	if ok, _, _ := r.last(); ok {
		t.Fatal("maintenance on ended the damping")
	}
	d.Event(driverproto.Event{Kind: driverproto.EventMaintenance, Detail: "off"})
	if ok, why, _ := r.last(); !ok {
		t.Fatalf("maintenance off did not end the damping: %q", why)
	}
}
