package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/api"
)

// leaseMargin is how late after its lease deadline a driver may start its
// local demote. The library arms a timer for the deadline itself, so the
// margin only covers timer and scheduling latency on a loaded machine.
const leaseMargin = 50 * time.Millisecond

// checkLeaseDemote finds the local demote that tc made after the lease
// ran out, and checks it against the deadline the library says it
// enforced (from its own log) and against an independent bound: no lease
// granted before the daemon froze or died at frozeAt can end later than
// frozeAt plus the lease duration. It returns how late the demote was.
func checkLeaseDemote(t *testing.T, c *testCluster, tc *testClient, frozeAt time.Duration, lease time.Duration, what string) time.Duration {
	t.Helper()
	var demote call
	c.waitFor(10*time.Second, what+": the driver's local demote", func() bool {
		var ok bool
		demote, ok = tc.rec.first(func(k call) bool { return k.st.Local && !k.st.IsMaster && k.at > frozeAt })
		return ok
	})
	recs := tc.logs.find("lease ran out")
	if len(recs) != 1 {
		t.Fatalf("%s: the driver logged %d lease expiries, want 1:\n%s", what, len(recs), tc.logs)
	}
	dv := recs[0].attrs["deadline"]
	if dv.Kind() != slog.KindDuration {
		t.Fatalf("%s: the lease expiry record's deadline is %v, not a duration", what, dv)
	}
	deadline := dv.Duration()
	late := demote.at - deadline
	t.Logf("%s: lease deadline %v after the freeze, demote Trigger %v after the deadline (margin %v; the lease is %v)",
		what, deadline-frozeAt, late, leaseMargin, lease)
	switch {
	case late < 0:
		t.Errorf("%s: the driver demoted %v before its lease deadline, with no word from the daemon", what, -late)
	case late > leaseMargin:
		t.Errorf("%s: the driver demoted %v after its lease deadline; want within %v", what, late, leaseMargin)
	}
	if bound := frozeAt + lease + leaseMargin; demote.at > bound {
		t.Errorf("%s: the driver demoted %v after the daemon froze; no lease granted before that lasts beyond %v (plus the %v margin)",
			what, demote.at-frozeAt, lease, leaseMargin)
	}
	return late
}

// checkNoStalePromote asserts that the library never ran a promote whose
// lease had already ended when Trigger was called.
func checkNoStalePromote(t *testing.T, tc *testClient) {
	t.Helper()
	for _, k := range tc.rec.snapshot() {
		if k.st.IsMaster && k.at >= k.st.LeaseDeadline {
			t.Errorf("driver %s: Trigger promoted %v after the lease deadline it was given: %v", tc.ID(), k.at-k.st.LeaseDeadline, k)
		}
	}
}

// TestDriverClientFollowsDaemonThroughRestart runs a test driver on each of
// three nodes. Only the master's driver is promoted; when the master is
// killed with SIGKILL its driver demotes itself as the lease runs out, before
// the new master's driver is promoted; when the killed node comes back its
// driver reconnects by itself and is told the new state.
func TestDriverClientFollowsDaemonThroughRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startAll()
	c.waitMaster(10 * time.Second)
	lease := c.config(0).Timing.LeaseDuration()

	tcs := make([]*testClient, len(c.ids))
	for i := range c.ids {
		tcs[i] = c.startClient(i, "follow", newRecorder(), nil)
	}
	// actsOn reports whether driver i's latest Trigger was a state from its
	// daemon naming master mi in term (0: any term).
	actsOn := func(i, mi int, term uint64) bool {
		k, ok := tcs[i].rec.last()
		return ok && !k.st.Local && k.st.Node == c.ids[i] && k.st.Master == c.ids[mi] &&
			k.st.IsMaster == (i == mi) && (term == 0 || k.st.Term == term)
	}
	var (
		m  int
		st api.Status
	)
	c.waitFor(10*time.Second, "every driver to act on its node's state", func() bool {
		var ok bool
		if m, st, ok = c.master(); !ok {
			return false
		}
		for i := range c.ids {
			if !actsOn(i, m, st.Term) {
				return false
			}
		}
		return true
	})
	promote, _ := tcs[m].rec.first(func(k call) bool { return k.st.IsMaster })
	t.Logf("master %s in term %d: its driver promoted with %v of lease left", c.ids[m], st.Term, promote.st.LeaseDeadline-promote.at)

	// Kill the master's daemon: its driver is on its own and must stop at
	// the end of the lease it was given.
	killedAt := mono()
	c.kill(m)
	checkLeaseDemote(t, c, tcs[m], killedAt, lease, "kill -9 of the daemon")

	m2, st2, d := c.waitMaster(10*time.Second, c.others(m)...)
	t.Logf("master %s in term %d, %v after the kill", c.ids[m2], st2.Term, d)
	c.waitFor(10*time.Second, "the new master's driver to be promoted and the other to follow it", func() bool {
		for _, i := range c.others(m) {
			if !actsOn(i, m2, st2.Term) {
				return false
			}
		}
		return true
	})
	// The drivers, not only the daemons, must never overlap as master.
	demote, _ := tcs[m].rec.first(func(k call) bool { return k.st.Local })
	promote2, _ := tcs[m2].rec.first(func(k call) bool { return k.st.IsMaster && k.st.Term == st2.Term })
	t.Logf("driver of %s demoted %v before the driver of %s was promoted", c.ids[m], promote2.at-demote.at, c.ids[m2])
	if promote2.at <= demote.at {
		t.Errorf("the driver of %s was promoted in term %d %v before the driver of %s demoted: two drivers acted as master at once",
			c.ids[m2], st2.Term, demote.at-promote2.at, c.ids[m])
	}

	// Bring the killed node back: its driver reconnects on its own and
	// acts on what the restarted daemon tells it.
	restartedAt := time.Now()
	c.start(m)
	d = c.waitFor(15*time.Second, fmt.Sprintf("the driver of restarted %s to follow %s", c.ids[m], c.ids[m2]), func() bool {
		return actsOn(m, m2, 0)
	})
	k, _ := tcs[m].rec.last()
	t.Logf("the driver of %s reconnected and acted on %v, %v after the restart", c.ids[m], k, d)
	if k.st.Term < st2.Term {
		t.Errorf("the restarted daemon told its driver term %d, before the new master's term %d", k.st.Term, st2.Term)
	}
	if n := len(tcs[m].logs.find("connected to the daemon")); n < 2 {
		t.Errorf("the driver of %s logged %d connections; want one before the kill and one after the restart", c.ids[m], n)
	}
	c.waitFor(10*time.Second, "the restarted daemon to count its driver", func() bool { return c.driversConnected(m) == 1 })
	t.Logf("restart to reconnection: %v", time.Since(restartedAt).Round(time.Millisecond))

	for i := range c.ids {
		checkNoStalePromote(t, tcs[i])
		if i == m || i == m2 {
			continue
		}
		if k, ok := tcs[i].rec.first(func(k call) bool { return k.st.IsMaster }); ok {
			t.Errorf("the driver of %s, never master, was promoted: %v", c.ids[i], k)
		}
	}
}

// TestDriverClientDemotesWhenDaemonPaused freezes a master's daemon with
// SIGSTOP. Its driver hears nothing more, and must demote itself no later
// than the lease deadline it was last given plus leaseMargin. Once the
// daemon resumes, the states it queued before the freeze carry deadlines in
// the past: the driver must act only on a fresh lease.
func TestDriverClientDemotesWhenDaemonPaused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	_, st, _ := c.waitMaster(10 * time.Second)
	lease := c.config(0).Timing.LeaseDuration()
	tc := c.startClient(0, "pause", newRecorder(), nil)
	c.waitFor(10*time.Second, "the driver to be promoted", func() bool {
		k, ok := tc.rec.last()
		return ok && k.st.IsMaster && k.st.Term == st.Term
	})
	// Let a few renewals through, so that the deadline enforced is a
	// renewed one rather than the promote's.
	promote, _ := tc.rec.last()
	c.waitFor(10*time.Second, "a renewal past the promote's deadline", func() bool { return mono() > promote.st.LeaseDeadline })

	frozeAt := mono()
	c.signal(0, syscall.SIGSTOP)
	late := checkLeaseDemote(t, c, tc, frozeAt, lease, "SIGSTOP of the daemon")
	demote, _ := tc.rec.last()

	c.signal(0, syscall.SIGCONT)
	c.waitFor(10*time.Second, "the driver to be promoted again after SIGCONT", func() bool {
		k, ok := tc.rec.last()
		return ok && k.st.IsMaster && !k.st.Local && k.at > demote.at
	})
	again, _ := tc.rec.last()
	t.Logf("after SIGCONT: promoted again in term %d (was %d); %d stale master state(s) ignored; demote was %v late",
		again.st.Term, st.Term, len(tc.logs.find("ignoring a master state")), late)
	checkNoStalePromote(t, tc)
}

// TestDriverWrongSecretIsRefused runs a driver whose secret is not the
// daemon's. It must never be welcomed, so never told it is master; the
// daemon must count every refusal and log the first of the burst (a
// driver retrying in a loop must not flood the log), the driver must log the
// daemon's reason, and a driver with the right secret must still be served.
func TestDriverWrongSecretIsRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	c.waitMaster(10 * time.Second)
	authBefore := c.mustMetric(0, "clustd_auth_failures_total")

	wrong := newRecorder()
	tc := c.startClient(0, "wrong", wrong, func(o *driverclient.Options) {
		o.Secret = bytes.Repeat([]byte("not the secret "), 4)
	})
	c.waitFor(10*time.Second, "the daemon to refuse the driver twice", func() bool {
		auth, err := c.metric(0, "clustd_auth_failures_total")
		return err == nil && auth >= authBefore+2
	})
	refusals := c.logLines(0, 0, `msg="driver refused"`, tc.ID(), "wrong secret")
	if len(refusals) != 1 {
		t.Fatalf("the daemon logged %d refusals of one retrying driver; want the first of the burst only:\n%s", len(refusals), strings.Join(refusals, "\n"))
	}
	t.Logf("the daemon refused %s at least twice, logged once as:\n%s", tc.ID(), refusals[0])
	var heard []logRecord
	for _, r := range tc.logs.find("could not connect") {
		if strings.Contains(r.attrs["error"].String(), "wrong secret") {
			heard = append(heard, r)
		}
	}
	if len(heard) == 0 {
		t.Errorf("the driver never logged the daemon's reason for refusing it:\n%s", tc.logs)
	} else {
		t.Logf("the driver logged: %v", heard[0])
	}

	right := c.startClient(0, "right", newRecorder(), nil)
	c.waitFor(10*time.Second, "a driver with the right secret to be promoted", func() bool {
		k, ok := right.rec.last()
		return ok && k.st.IsMaster
	})
	if calls := wrong.snapshot(); len(calls) > 0 {
		t.Errorf("the driver with the wrong secret got %d Trigger calls, first %v", len(calls), calls[0])
	}
	if n := c.driversConnected(0); n != 1 {
		t.Errorf("clustd_drivers_connected is %d with one welcomed driver", n)
	}
}

// TestDriverDuplicateIDIsRefused connects a second driver under the id of a
// connected one. driverclient draws a random id suffix, so the duplicate is
// written by hand. The daemon must refuse it with an error naming the
// problem and close the connection, leave the first driver alone, and
// accept the id again once its owner has gone.
func TestDriverDuplicateIDIsRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	c.waitMaster(10 * time.Second)
	secret := c.config(0).DriversSecret
	tc := c.startClient(0, "dup", newRecorder(), nil)
	c.waitFor(10*time.Second, "the first driver to be promoted", func() bool {
		k, ok := tc.rec.last()
		return ok && k.st.IsMaster
	})

	raw := dialRaw(t, c.httpAddr[0], 0)
	ans := raw.hello(secret, tc.ID(), "dup")
	if ans.Type != driverproto.TypeError {
		t.Fatalf("the daemon answered a duplicate id with a %q message; want an error", ans.Type)
	}
	t.Logf("the daemon refused the duplicate id: %q", ans.Error)
	if !strings.Contains(ans.Error, tc.ID()) || !strings.Contains(ans.Error, "already connected") {
		t.Errorf("the refusal %q does not say that %s is already connected", ans.Error, tc.ID())
	}
	_, err := raw.read(5 * time.Second)
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Errorf("after the refusal the connection ended with %v; want a close frame with code %d", err, websocket.ClosePolicyViolation)
	}
	if l := c.logLines(0, 0, `msg="driver refused"`, "already connected"); len(l) != 1 {
		t.Errorf("the daemon logged %d refusals of the duplicate; want 1", len(l))
	}

	// The first driver kept its connection and its role.
	if n := c.driversConnected(0); n != 1 {
		t.Errorf("clustd_drivers_connected is %d after the refusal; want 1", n)
	}
	if r := tc.logs.find("disconnected"); len(r) > 0 {
		t.Errorf("the first driver lost its connection: %v", r[0])
	}
	// It may have connected while the stop budget of a new master ran,
	// and seen that candidate state first: what counts is one promote,
	// and nothing after it.
	calls := tc.rec.snapshot()
	promotes := 0
	for _, k := range calls {
		if k.st.IsMaster {
			promotes++
		}
	}
	if promotes != 1 || len(calls) == 0 || !calls[len(calls)-1].st.IsMaster {
		t.Errorf("the first driver got %d Trigger calls, want its one promote last: %v", len(calls), calls)
	}

	// Once the first driver is gone, its id is free again.
	tc.stop()
	c.waitFor(10*time.Second, "the daemon to let the first driver go", func() bool { return c.driversConnected(0) == 0 })
	raw2 := dialRaw(t, c.httpAddr[0], 0)
	if ans := raw2.hello(secret, tc.ID(), "dup"); ans.Type != driverproto.TypeWelcome {
		t.Fatalf("the daemon refused id %s after its owner left: %q %s", tc.ID(), ans.Type, ans.Error)
	}
	m, err := raw2.read(5 * time.Second)
	if err != nil || m.Type != driverproto.TypeState || !m.State.IsMaster {
		t.Errorf("after the welcome the daemon sent %+v, %v; want its master state", m, err)
	}
}

// TestDriverMalformedInputIsAnswered sends the driver endpoint input that
// is not a valid message, before and after the handshake. Each time the
// daemon must answer with an error message and close that connection (a
// message over the size limit gets only the close frame that says so), and
// nothing else may notice: the daemon keeps its role and answers status, a
// driver connected all along keeps its connection, and a new driver is
// served.
func TestDriverMalformedInputIsAnswered(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	_, st, _ := c.waitMaster(10 * time.Second)
	secret := c.config(0).DriversSecret
	observer := c.startClient(0, "observer", newRecorder(), nil)
	c.waitFor(10*time.Second, "the observing driver to be promoted", func() bool {
		k, ok := observer.rec.last()
		return ok && k.st.IsMaster
	})

	cases := []struct {
		name         string
		afterWelcome bool
		msg          string
	}{
		{"truncated JSON instead of hello", false, `{"type":"hello","version":1,`},
		{"bytes that are not JSON instead of hello", false, "\x00\xff\xfe not json"},
		{"an ack instead of hello", false, `{"type":"ack","seq":1,"ok":true}`},
		{"truncated JSON after the welcome", true, `{"type":"ack","seq":`},
		{"an unknown field after the welcome", true, `{"type":"ack","seq":1,"ok":true,"surprise":1}`},
		{"two JSON values after the welcome", true, `{"type":"health","ok":true}{"type":"health","ok":true}`},
		{"a hello after the welcome", true, `{"type":"hello"}`},
		{"a state sent by a driver", true, `{"type":"state","seq":1,"state":{"node":"x","role":"master","is_master":true,"term":99,"master":"x","lease_ms":0,"lease_deadline_ns":0,"members":null}}`},
	}
	for k, tc := range cases {
		raw := dialRaw(t, c.httpAddr[0], 0)
		if tc.afterWelcome {
			if ans := raw.hello(secret, fmt.Sprintf("malformed-%d", k), "malformed"); ans.Type != driverproto.TypeWelcome {
				t.Fatalf("%s: the handshake failed: %q %s", tc.name, ans.Type, ans.Error)
			}
		}
		raw.send([]byte(tc.msg))
		text, code, err := raw.errorAndClose(5 * time.Second)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		t.Logf("%s: answered %q, closed with code %d", tc.name, text, code)
	}

	// A message over the size limit is not read at all: the websocket
	// layer closes the connection with "message too big".
	big := dialRaw(t, c.httpAddr[0], 0)
	if ans := big.hello(secret, "malformed-big", "malformed"); ans.Type != driverproto.TypeWelcome {
		t.Fatalf("oversized message: the handshake failed: %q %s", ans.Type, ans.Error)
	}
	big.send([]byte(`{"type":"health","ok":true,"reason":"` + strings.Repeat("x", driverproto.MaxMessage) + `"}`))
	for {
		_, err := big.read(5 * time.Second)
		if err == nil {
			continue // states sent before the daemon read the message
		}
		if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Errorf("oversized message: the connection ended with %v; want a close frame with code %d", err, websocket.CloseMessageTooBig)
		} else {
			t.Logf("oversized message: closed with code %d", ce.Code)
		}
		break
	}

	if s, err := c.status(0); err != nil || s.Role != "master" || s.Term != st.Term {
		t.Errorf("after the malformed input the daemon reports %s, %v; want master in term %d", briefStatus(s), err, st.Term)
	}
	before, after := 0, 0
	for _, tc := range cases {
		if tc.afterWelcome {
			after++
		} else {
			before++
		}
	}
	// One source, one burst: the first refused handshake is logged.
	if l := c.logLines(0, 0, `msg="driver refused"`); len(l) != min(before, 1) {
		t.Errorf("the daemon logged %d refused handshakes; want %d (the first of the burst)", len(l), min(before, 1))
	}
	if l := c.logLines(0, 0, "malformed message from driver"); len(l) != after {
		t.Errorf("the daemon logged %d malformed messages from welcomed drivers; want %d", len(l), after)
	}
	fresh := c.startClient(0, "fresh", newRecorder(), nil)
	c.waitFor(10*time.Second, "a new driver to be promoted", func() bool {
		k, ok := fresh.rec.last()
		return ok && k.st.IsMaster && k.st.Term == st.Term
	})
	c.waitFor(10*time.Second, "clustd_drivers_connected to count the observer and the new driver only", func() bool {
		return c.driversConnected(0) == 2
	})
	if r := observer.logs.find("disconnected"); len(r) > 0 {
		t.Errorf("the observing driver lost its connection: %v", r[0])
	}
}

// TestHundredDrivers connects 100 drivers to one daemon at once. All must be
// told they are master, the daemon must count them, and a demote must reach
// all of them too.
func TestHundredDrivers(t *testing.T) {
	t.Parallel()
	const n = 100
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	_, st, _ := c.waitMaster(10 * time.Second)

	started := mono()
	tcs := make([]*testClient, n)
	for k := range tcs {
		tcs[k] = c.startClient(0, fmt.Sprintf("many%03d", k), newRecorder(), nil)
	}
	// lastCall returns when the last of the drivers made its first call
	// satisfying f, or false while one has not yet.
	lastCall := func(f func(call) bool) (time.Duration, bool) {
		var latest time.Duration
		for _, tc := range tcs {
			k, ok := tc.rec.first(f)
			if !ok {
				return 0, false
			}
			latest = max(latest, k.at)
		}
		return latest, true
	}
	var all time.Duration
	c.waitFor(30*time.Second, "all 100 drivers to be promoted", func() bool {
		var ok bool
		all, ok = lastCall(func(k call) bool { return k.st.IsMaster && k.st.Term == st.Term })
		return ok
	})
	t.Logf("all %d drivers promoted within %v of the first connecting", n, (all - started).Round(time.Millisecond))
	if all-started > 10*time.Second {
		t.Errorf("promoting %d drivers took %v; want under 10 s", n, all-started)
	}
	c.waitFor(10*time.Second, "clustd_drivers_connected to show 100", func() bool { return c.driversConnected(0) == n })

	// Maintenance demotes the node: every driver must hear it.
	asked := mono()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.admin(0).Maintenance(ctx, true); err != nil {
		t.Fatalf("maintenance on: %v", err)
	}
	c.waitFor(10*time.Second, "all 100 drivers to be demoted", func() bool {
		var ok bool
		all, ok = lastCall(func(k call) bool { return !k.st.IsMaster && !k.st.Local })
		return ok
	})
	t.Logf("all %d drivers demoted within %v of maintenance on", n, (all - asked).Round(time.Millisecond))
	if all-asked > 5*time.Second {
		t.Errorf("demoting %d drivers took %v; want under 5 s", n, all-asked)
	}
	for _, tc := range tcs {
		checkNoStalePromote(t, tc)
	}
}

// TestSlowDriverDelaysNoOther runs, beside five well-behaved drivers, one
// whose Trigger blocks for 5 s whatever it is told, and a hand-written one
// that stops reading after the handshake. Role changes must still reach the
// well-behaved drivers at once: their Trigger is measured against the
// daemon's own instant of the change, from its event stream. The driver
// that never reads must in time be disconnected, and the daemon must be
// unaffected.
func TestSlowDriverDelaysNoOther(t *testing.T) {
	t.Parallel()
	const (
		fast      = 5
		slowness  = 5 * time.Second
		promptly  = time.Second
		cutoffMax = 60 * time.Second
	)
	c := newCluster(t, 1, profileDefault)
	c.startAll()
	_, st, _ := c.waitMaster(10 * time.Second)

	var evMu sync.Mutex
	var events []driverproto.Event
	c.startClient(0, "events", newRecorder(), func(o *driverclient.Options) {
		o.OnEvent = func(ev driverproto.Event) {
			evMu.Lock()
			events = append(events, ev)
			evMu.Unlock()
		}
	})
	slow := newRecorder()
	slow.delay = func(driverclient.State) time.Duration { return slowness }
	slowClient := c.startClient(0, "slow", slow, nil)
	fastClients := make([]*testClient, fast)
	for k := range fastClients {
		fastClients[k] = c.startClient(0, fmt.Sprintf("fast%d", k), newRecorder(), nil)
	}
	// A socket receive buffer of 4 KiB fills within seconds of renewals.
	deaf := dialRaw(t, c.httpAddr[0], 4096)
	if ans := deaf.hello(c.config(0).DriversSecret, "deaf-1", "deaf"); ans.Type != driverproto.TypeWelcome {
		t.Fatalf("the handshake of the driver that will not read failed: %q %s", ans.Type, ans.Error)
	}
	deafSince := time.Now()
	c.waitFor(10*time.Second, "every driver to connect and be promoted", func() bool {
		if _, ok := slow.first(func(k call) bool { return k.st.IsMaster }); !ok {
			return false
		}
		for _, tc := range fastClients {
			if k, ok := tc.rec.last(); !ok || !k.st.IsMaster {
				return false
			}
		}
		return c.driversConnected(0) == fast+3
	})

	// roleEvent waits for the daemon's event saying it took role in a term
	// after term, and returns it.
	roleEvent := func(role string, after uint64) driverproto.Event {
		t.Helper()
		var ev driverproto.Event
		c.waitFor(10*time.Second, "the daemon's event for role "+role, func() bool {
			evMu.Lock()
			defer evMu.Unlock()
			for _, e := range events {
				if e.Kind == driverproto.EventRole && strings.HasPrefix(e.Detail, role+",") && e.Term >= after {
					ev = e
					return true
				}
			}
			return false
		})
		return ev
	}
	// checkPrompt waits for each fast driver to act on the change of ev
	// and checks that it did within promptly of the daemon's instant.
	checkPrompt := func(ev driverproto.Event, master bool) {
		t.Helper()
		at := time.Duration(ev.AtNS)
		// The measurement means something only if the slow driver was
		// stuck in a Trigger when the change came.
		if _, busy := slow.first(func(k call) bool { return k.at <= at && (k.end == 0 || k.end > at) }); !busy {
			t.Errorf("the slow driver was not in a Trigger at %q: nothing slowed the daemon down", ev.Detail)
		}
		var worst time.Duration
		for _, tc := range fastClients {
			var k call
			c.waitFor(10*time.Second, fmt.Sprintf("driver %s to act on %q", tc.ID(), ev.Detail), func() bool {
				var ok bool
				k, ok = tc.rec.first(func(k call) bool { return k.at >= at && k.st.IsMaster == master && !k.st.Local })
				return ok
			})
			worst = max(worst, k.at-at)
			if k.at-at > promptly {
				t.Errorf("driver %s acted on %q %v after the daemon's change; want within %v while another driver is slow",
					tc.ID(), ev.Detail, k.at-at, promptly)
			}
		}
		t.Logf("%q: the %d fast drivers acted within %v of the daemon's change", ev.Detail, fast, worst)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.admin(0).Maintenance(ctx, true); err != nil {
		t.Fatalf("maintenance on: %v", err)
	}
	checkPrompt(roleEvent("follower", st.Term), false)
	if err := c.admin(0).Maintenance(ctx, false); err != nil {
		t.Fatalf("maintenance off: %v", err)
	}
	promote := roleEvent("master", st.Term+1)
	checkPrompt(promote, true)
	if k, ok := slow.last(); ok && k.end == 0 {
		t.Logf("meanwhile the slow driver is still in a Trigger it entered %v ago", mono()-k.at)
	}

	// The driver that never reads answers no ping either: it is cut off
	// when its pong is overdue, or sooner if the daemon can no longer
	// write to it, and nobody else is.
	var gone []string
	c.waitFor(cutoffMax, "the daemon to disconnect the driver that does not read", func() bool {
		gone = c.logLines(0, 0, `msg="driver gone"`, "driver=deaf-1")
		return len(gone) > 0
	})
	why := append(c.logLines(0, 0, "deaf-1", "behind"), gone[0])
	t.Logf("the driver that does not read was cut off %v after its handshake:\n%s",
		time.Since(deafSince).Round(time.Millisecond), strings.Join(why, "\n"))
	c.waitFor(10*time.Second, "clustd_drivers_connected to count the others", func() bool {
		return c.driversConnected(0) == fast+2
	})
	if s, err := c.status(0); err != nil || s.Role != "master" || s.Term != promote.Term {
		t.Errorf("after the cut-off the daemon reports %s, %v; want master in term %d", briefStatus(s), err, promote.Term)
	}
	for _, tc := range append(slices.Clone(fastClients), slowClient) {
		if r := tc.logs.find("disconnected"); len(r) > 0 {
			t.Errorf("driver %s lost its connection: %v", tc.ID(), r[0])
		}
	}
}
