package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/store"
)

// gatedStore wraps a daemon's store: a save that grants a vote to another
// node blocks until the test opens the gate, or fails.
type gatedStore struct {
	stateStore
	self string
	fail error // when set, a vote for another node fails with it
	gate chan struct{}

	mu sync.Mutex
	// blocked is closed when the first vote save starts waiting.
	blocked     chan struct{}
	blockedOnce sync.Once
	// durable is when each vote for another node reached the disk.
	durable map[string]time.Time
}

func newGatedStore(inner stateStore, self string) *gatedStore {
	return &gatedStore{stateStore: inner, self: self, gate: make(chan struct{}), blocked: make(chan struct{}), durable: map[string]time.Time{}}
}

func (g *gatedStore) Save(hs store.HardState) error {
	if hs.Vote == "" || hs.Vote == g.self {
		return g.stateStore.Save(hs)
	}
	if g.fail != nil {
		return g.fail
	}
	g.blockedOnce.Do(func() { close(g.blocked) })
	<-g.gate
	err := g.stateStore.Save(hs)
	g.mu.Lock()
	if _, ok := g.durable[hs.Vote]; !ok {
		g.durable[hs.Vote] = time.Now()
	}
	g.mu.Unlock()
	return err
}

// durableAt is when this node's vote for id became durable.
func (g *gatedStore) durableAt(id string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	at, ok := g.durable[id]
	return at, ok
}

// gatedCluster is a 3-node cluster of which only the first two run, each on
// a gated store: neither can win without the other's vote.
type gatedCluster struct {
	t       *testing.T
	tc      *inProcessCluster
	stores  []*gatedStore
	daemons []*Daemon
	done    []chan error
	cancel  []context.CancelFunc
	mu      sync.Mutex
	// won is when each node first won a vote: it has the votes of a
	// majority in hand, the voter's grant among them.
	won map[int]time.Time
}

func newGatedCluster(t *testing.T, fail error) *gatedCluster {
	tc := newTestCluster(t, 3)
	// newTestCluster starts all three: stop them and start two again on
	// gated stores. A fresh data dir per node keeps their terms at zero.
	for i := range 3 {
		tc.stop(i)
	}
	gc := &gatedCluster{t: t, tc: tc, won: map[int]time.Time{}}
	for i := range 2 {
		cfg := *tc.cfgs[i]
		cfg.DataDir = t.TempDir()
		d, err := New(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		g := newGatedStore(d.store, cfg.ID)
		g.fail = fail
		d.store = g
		ctx, cancel := context.WithCancel(context.Background())
		go gc.watchWins(ctx, i, d)
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		gc.stores = append(gc.stores, g)
		gc.daemons = append(gc.daemons, d)
		gc.done = append(gc.done, done)
		gc.cancel = append(gc.cancel, cancel)
	}
	t.Cleanup(func() {
		for i, g := range gc.stores {
			select {
			case <-g.gate:
			default:
				close(g.gate)
			}
			gc.cancel[i]()
			select {
			case <-gc.done[i]:
			case <-time.After(10 * time.Second):
				t.Errorf("n%d did not stop", i+1)
			}
		}
	})
	return gc
}

// watchWins records when daemon i's core is first seen to have won a vote:
// it reports the win, or is master already. While the voter is held a win
// lasts the whole election timeout (no majority can acknowledge the
// winner's first round), and a poll every millisecond sees it; once the
// voter is free the winner may be master within a round trip.
func (gc *gatedCluster) watchWins(ctx context.Context, i int, d *Daemon) {
	for ctx.Err() == nil {
		d.mu.Lock()
		st := d.core.State()
		d.mu.Unlock()
		if st.Reason == election.ReasonWon || st.Role == election.Master {
			gc.mu.Lock()
			if _, ok := gc.won[i]; !ok {
				gc.won[i] = time.Now()
			}
			gc.mu.Unlock()
		}
		time.Sleep(time.Millisecond)
	}
}

func (gc *gatedCluster) winners() map[int]time.Time {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := map[int]time.Time{}
	for k, v := range gc.won {
		out[k] = v
	}
	return out
}

// waitBlocked waits until one node's vote save is held at the gate and
// returns that node.
func (gc *gatedCluster) waitBlocked() int {
	gc.t.Helper()
	select {
	case <-gc.stores[0].blocked:
		return 0
	case <-gc.stores[1].blocked:
		return 1
	case <-time.After(30 * time.Second):
		gc.t.Fatal("no vote was saved within 30 s: no campaign reached the other node")
	}
	return -1
}

// TestVoteLeavesOnlyOnceDurable holds a voter's save of its vote: the
// candidate, which needs that vote, must not win while it is held, and
// wins after it is released, no earlier than the save returned. Sending the
// grant before saving it fails here.
func TestVoteLeavesOnlyOnceDurable(t *testing.T) {
	gc := newGatedCluster(t, nil)
	voter := gc.waitBlocked()
	candidate := 1 - voter
	// The candidate would win within a round trip of the grant; hold the
	// save for many election timeouts (fast profile: 100 ms).
	held := time.Second
	time.Sleep(held) // an observation window, not synchronisation: nothing may happen in it
	if m := gc.winners(); len(m) > 0 {
		t.Fatalf("a candidate won (%v) while n%d's vote was not yet durable", m, voter+1)
	}
	close(gc.stores[voter].gate)
	deadline := time.Now().Add(30 * time.Second)
	for len(gc.winners()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m := gc.winners()
	if len(m) == 0 {
		t.Fatal("no candidate won within 30 s of the vote being saved")
	}
	won, ok := m[candidate]
	if !ok {
		t.Fatalf("n%d won, not the candidate n%d", voter+1, candidate+1)
	}
	durable, ok := gc.stores[voter].durableAt(gc.daemons[candidate].cfg.ID)
	if !ok {
		t.Fatalf("n%d won without n%d's vote for it on disk", candidate+1, voter+1)
	}
	if won.Before(durable) {
		t.Fatalf("n%d won at %v, before n%d's vote was durable at %v", candidate+1, won, voter+1, durable)
	}
	t.Logf("n%d's vote durable after %v held; n%d won %v later", voter+1, held, candidate+1, won.Sub(durable))
}

// TestFailedSaveStopsDaemon makes saving a vote fail: the daemon must stop
// with the error rather than carry on, and the vote must never have reached
// the candidate.
func TestFailedSaveStopsDaemon(t *testing.T) {
	disk := errors.New("disk on fire")
	gc := newGatedCluster(t, disk)
	var voter int
	var err error
	select {
	case err = <-gc.done[0]:
		voter = 0
	case err = <-gc.done[1]:
		voter = 1
	case <-time.After(30 * time.Second):
		t.Fatal("neither daemon stopped within 30 s of a failing save")
	}
	gc.done[voter] <- err // for the cleanup
	if !errors.Is(err, disk) || !strings.Contains(err.Error(), "persisting term and vote") {
		t.Fatalf("n%d stopped with %v, want the save's error", voter+1, err)
	}
	if m := gc.winners(); len(m) > 0 {
		t.Fatalf("a candidate won (%v): the vote that failed to persist was sent", m)
	}
	t.Logf("n%d stopped: %v", voter+1, err)
}
