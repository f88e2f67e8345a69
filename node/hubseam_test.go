package node

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/metrics"
)

// fakeHubDaemon is a daemon as a hub sees it, without a Daemon: it
// records what the hub tells it and reports the reachability a test sets.
type fakeHubDaemon struct {
	done, unconfirmed chan *roleElection

	mu        sync.Mutex
	reach     []memberReach
	events    []string // kind + " " + detail
	healthRun int
	hubs      map[string]*hub
}

func (f *fakeHubDaemon) demoteDone(r *roleElection)        { f.done <- r }
func (f *fakeHubDaemon) demoteUnconfirmed(r *roleElection) { f.unconfirmed <- r }

func (f *fakeHubDaemon) updateHealth() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthRun++
}

func (f *fakeHubDaemon) reachability(time.Duration) []memberReach {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]memberReach(nil), f.reach...)
}

func (f *fakeHubDaemon) setReach(r ...memberReach) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reach = r
}

func (f *fakeHubDaemon) hubOf(name string) *hub { return f.hubs[name] }
func (f *fakeHubDaemon) roleNames() []string    { return []string{"default"} }

func (f *fakeHubDaemon) event(kind, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, kind+" "+detail)
}

func (f *fakeHubDaemon) eventList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

// fakeJournal records the member changes a hub journals.
type fakeJournal struct {
	mu      sync.Mutex
	members []string
}

func (j *fakeJournal) driverConnected(*driverConn)            {}
func (j *fakeJournal) driverGone(*driverConn, string)         {}
func (j *fakeJournal) driverHealth(*driverConn, bool, string) {}
func (j *fakeJournal) promoteAcked(*hub, *driverConn, uint64) {}

func (j *fakeJournal) memberList() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.members...)
}

func (j *fakeJournal) member(id string, back bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if back {
		j.members = append(j.members, "back "+id)
	} else {
		j.members = append(j.members, "lost "+id)
	}
}

// newFakeHub builds a hub on fakes only: no Daemon, no listener, no peers.
func newFakeHub(t *testing.T) (*hub, *fakeHubDaemon, *fakeJournal) {
	t.Helper()
	tm, err := election.ProfileTiming(election.ProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeHubDaemon{done: make(chan *roleElection, 4), unconfirmed: make(chan *roleElection, 4), hubs: map[string]*hub{}}
	fj := &fakeJournal{}
	role := &roleElection{name: "default"}
	h := newHub(hubConfig{node: "a", path: "clustd.yaml", demoteTimeout: 5 * time.Second, timing: tm, secret: []byte("drivers secret")}, role, hubDeps{
		daemon:  fd,
		metrics: metrics.NewRoles(metrics.NewRegistry(), "a", []string{"default"}),
		journal: fj,
		failLog: &burstLog{quiet: time.Minute},
		drivers: newDriverRegistry(),
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	fd.hubs[""], fd.hubs["default"] = h, h
	return h, fd, fj
}

// fakeDriver registers a driver with no connection behind it: what the
// hub queues for it stays in its send queue.
func fakeDriver(t *testing.T, h *hub, id string) *driverConn {
	t.Helper()
	c := &driverConn{id: id, name: id, send: make(chan driverproto.Message, driverQueue), closed: make(chan struct{}),
		healthy: true, demoteTimeout: h.cfg.demoteTimeout}
	if !h.register(c) {
		t.Fatalf("driver %s refused", id)
	}
	return c
}

// masterThenFollower publishes a master state the drivers act on, then
// an unplanned demote, and returns the demote's sequence number.
func masterThenFollower(h *hub) uint64 {
	now := Monotonic()
	h.publish(election.State{Role: election.Master, Term: 3, Master: "a", Act: true, At: now, LeaseUntil: now + time.Second, Reason: election.ReasonActing}, nil)
	h.publish(election.State{Role: election.Follower, Term: 4, Master: "", At: now, Reason: election.ReasonHigherTerm}, nil)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.demoteSeq
}

func (h *hub) isWaiting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

func ackOK(h *hub, c *driverConn, seq uint64) {
	ok := true
	h.ack(c, driverproto.Message{Type: driverproto.TypeAck, Seq: seq, OK: &ok})
}

func TestHubDemoteConfirmedByAllDrivers(t *testing.T) {
	h, fd, _ := newFakeHub(t)
	c1, c2 := fakeDriver(t, h, "d1"), fakeDriver(t, h, "d2")
	seq := masterThenFollower(h)
	if seq == 0 {
		t.Fatal("the demote was not sent")
	}
	ackOK(h, c1, seq)
	if !h.isWaiting() {
		t.Fatal("hub stopped waiting before every driver confirmed the demote")
	}
	ackOK(h, c2, seq)
	select {
	case r := <-fd.done:
		if r != h.role {
			t.Fatalf("demote done for role %q, want %q", r.name, h.role.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demote not reported done after every driver confirmed it")
	}
	// A repeated acknowledgement confirms nothing new.
	ackOK(h, c2, seq)
	if h.isWaiting() {
		t.Fatal("hub still waits for a confirmed demote")
	}
	if len(fd.done) != 0 || len(fd.unconfirmed) != 0 {
		t.Fatalf("demote reported again: %d done, %d unconfirmed", len(fd.done), len(fd.unconfirmed))
	}
}

func TestHubDemoteUnconfirmedWhenDriverGoes(t *testing.T) {
	h, fd, _ := newFakeHub(t)
	c1, c2 := fakeDriver(t, h, "d1"), fakeDriver(t, h, "d2")
	seq := masterThenFollower(h)
	ackOK(h, c1, seq)
	// d2 goes away still holding the lease it was given: nothing says it
	// stopped before that lease runs out.
	h.drop(c2, "test")
	select {
	case r := <-fd.unconfirmed:
		if r != h.role {
			t.Fatalf("demote unconfirmed for role %q, want %q", r.name, h.role.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demote not reported unconfirmed after a driver holding the lease went away")
	}
	if len(fd.done) != 0 {
		t.Fatal("demote reported done although a driver went away holding the lease")
	}
	if n := h.drivers.count(); n != 1 {
		t.Fatalf("%d drivers registered after one went, want 1", n)
	}
}

func TestHubMemberLostOnce(t *testing.T) {
	h, fd, fj := newFakeHub(t)
	now := Monotonic()
	fd.setReach(memberReach{"b", true}, memberReach{"c", true})
	h.checkMembers(now)
	fd.setReach(memberReach{"b", false}, memberReach{"c", true})
	h.checkMembers(now)
	h.checkMembers(now)
	var lost []string
	for _, ev := range fd.eventList() {
		if strings.HasPrefix(ev, driverproto.EventMemberLost+" ") {
			lost = append(lost, ev)
		}
	}
	if len(lost) != 1 || lost[0] != driverproto.EventMemberLost+" b" {
		t.Fatalf("member_lost events %q, want one for b (all: %q)", lost, fd.eventList())
	}
	if got := fj.memberList(); len(got) != 1 || got[0] != "lost b" {
		t.Fatalf("journal has %q, want only b lost", got)
	}
	fd.setReach(memberReach{"b", true}, memberReach{"c", true})
	h.checkMembers(now)
	if got := fj.memberList(); len(got) != 2 || got[1] != "back b" {
		t.Fatalf("journal has %q, want b back after it was lost", got)
	}
}
