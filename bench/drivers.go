package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/internal/boottime"
)

// Trigger is one call of a driver's Trigger, timed with boottime.Now(),
// the clock the daemons run their leases on, which every process on the
// host shares.
type Trigger struct {
	Node     string
	IsMaster bool
	Term     uint64
	// Local marks a state the driver library made itself: the lease ran
	// out with no renewal.
	Local bool
	// Called is when Trigger was entered; Returned is when it returned,
	// which is when the library acknowledges the state to the daemon.
	Called, Returned time.Duration
}

// Recorder runs one driver per daemon inside this process and records
// every Trigger call. Its Trigger does nothing but record, so that what is
// measured is clustd and not a driver's work.
type Recorder struct {
	mu      sync.Mutex
	log     []Trigger
	changed chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartDrivers connects one driver to each of c's daemons. The drivers
// reconnect quickly (10-100 ms backoff) so that a restarted daemon has its
// driver back before the next trial.
func StartDrivers(ctx context.Context, c *Cluster) (*Recorder, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Recorder{changed: make(chan struct{}), cancel: cancel}
	for i, id := range c.IDs {
		cl, err := driverclient.New(driverclient.Options{
			Addr:       c.HTTP[i],
			Secret:     c.DriversSecret,
			Name:       "bench",
			Logger:     slog.New(slog.DiscardHandler),
			MinBackoff: 10 * time.Millisecond,
			MaxBackoff: 100 * time.Millisecond,
		}, driverclient.TriggerFunc(func(_ context.Context, s driverclient.State) error {
			r.record(id, s)
			return nil
		}))
		if err != nil {
			cancel()
			r.wg.Wait()
			return nil, fmt.Errorf("driver for %s: %w", id, err)
		}
		r.wg.Go(func() { cl.Run(ctx) })
	}
	return r, nil
}

func (r *Recorder) record(id string, s driverclient.State) {
	t := Trigger{Node: id, IsMaster: s.IsMaster, Term: s.Term, Local: s.Local, Called: boottime.Now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The return time is taken last: after it there is only the return.
	t.Returned = boottime.Now()
	r.log = append(r.log, t)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Stop stops every driver and waits for them.
func (r *Recorder) Stop() {
	r.cancel()
	r.wg.Wait()
}

// Len is the number of Trigger calls recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

// Since returns the calls recorded from position i on.
func (r *Recorder) Since(i int) []Trigger {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Trigger(nil), r.log[min(i, len(r.log)):]...)
}

// Last returns node id's latest Trigger call, and whether it had one.
func (r *Recorder) Last(id string) (Trigger, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.log) - 1; i >= 0; i-- {
		if r.log[i].Node == id {
			return r.log[i], true
		}
	}
	return Trigger{}, false
}

// WaitFor waits until a call recorded from position from on satisfies ok,
// and returns the first such call; false if ctx ends first.
func (r *Recorder) WaitFor(ctx context.Context, from int, ok func(Trigger) bool) (Trigger, bool) {
	for {
		r.mu.Lock()
		for _, t := range r.log[min(from, len(r.log)):] {
			if ok(t) {
				r.mu.Unlock()
				return t, true
			}
		}
		from = len(r.log)
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Trigger{}, false
		}
	}
}
