// Command chaos-recorder is the driver the chaos suite runs beside every
// clustd daemon. It acts out the master role by writing down, on
// CLOCK_BOOTTIME (the clock of clustd's leases), every edge of it: promote
// start and done, demote start and done, with the term; every other state
// it is given; and the daemon's "became candidate" events. The suite merges the files of all nodes and
// checks that no two drivers were ever master at once.
//
//	chaos-recorder --node a --addr 127.0.0.1:3001 --secret-file secret --out a/history.jsonl
//
// With "probe" as its first argument it is instead the command that
// `clustd driver exec` runs while its node is master: it writes when it
// starts, every few milliseconds while it runs and drains, and when it
// stops, so that the suite can check that the command ran on one node at a
// time.
//
// Both behave as a service that must never act beside another master,
// even when its whole machine was frozen and thawed: before each record
// (their acts) they check their lease, the recorder as driverclient tells
// it, the probe in the file `clustd driver exec` keeps (CLUSTD_LEASE_FILE),
// and write only while it holds, stamped with the time of the check; else
// they write that they held back (chaos.EvHeld, chaos.EvExecHeld). A write
// that returns after the deadline its check found is followed by
// chaos.EvLate, so that the suite sees how late it may have landed.
//
//	clustd driver exec --config a.yml -- chaos-recorder probe --node a --out exec.jsonl
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/clustd/clustd/chaos"
	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probe(os.Args[2:]))
	}
	os.Exit(record(os.Args[1:]))
}

// recorder is the driver. Trigger and the event callback run on different
// goroutines, and both write.
type recorder struct {
	node        string
	promoteWork time.Duration
	demoteWork  time.Duration
	// late is how late its timers fire: a demote begins that much after
	// it was asked for.
	late time.Duration

	mu   sync.Mutex
	out  *os.File
	term uint64 // the term it is master in, when master
	// master is true from the start of a promote to the end of a demote.
	master bool
	// lease is the lease driverclient told; leaseMu guards it, since it is
	// told from the goroutine that enforces it.
	leaseMu sync.Mutex
	lease   driverclient.Lease
	// guard checks the lease before each act; used with mu held.
	guard *guard
	// ticking is closed to stop the acts while master; nil when none run.
	ticking chan struct{}
}

// LeaseChanged implements driverclient.LeaseWatcher.
func (r *recorder) LeaseChanged(l driverclient.Lease) {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	r.lease = l
}

func (r *recorder) currentLease() (driverclient.Lease, error) {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	return r.lease, nil
}

// write writes a record that is not an act.
func (r *recorder) write(rec chaos.Record) {
	rec.Node = r.node
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guard.write(rec)
}

// act writes rec, an act as master of term (or, finishing, as a master
// that is stopping), if the lease allows it now. It reports whether it
// did. Called with mu held.
func (r *recorder) act(rec chaos.Record, term uint64, finishing bool) bool {
	rec.Node = r.node
	return r.guard.act(rec, term, finishing)
}

// tick acts every ActEvery while master, until stop is closed.
func (r *recorder) tick(term uint64, stop chan struct{}) {
	t := time.NewTicker(chaos.ActEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if r.master && r.term == term {
			r.act(chaos.Record{Event: chaos.EvActing, Term: term}, term, false)
		}
		r.mu.Unlock()
	}
}

// Trigger records the edges. Each timestamp is read at the edge itself:
// the start of a promote before anything else is done, the end of a
// demote after everything else is done, so the recorded interval holds
// every instant the driver may have acted as master.
//
// The edges of a tenure are acts, checked against the lease like every
// other (see guard): a promote whose lease has already gone acts not at
// all, and a demote that begins after the stop deadline records that it
// held back; its demote done still closes the tenure.
func (r *recorder) Trigger(ctx context.Context, s driverclient.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case s.IsMaster:
		if r.master && r.ticking != nil {
			close(r.ticking)
			r.ticking = nil
		}
		if !r.act(chaos.Record{Event: chaos.EvPromoteStart, Term: s.Term, Role: s.Role, Master: s.Master, Reason: s.Reason}, s.Term, false) {
			r.master = false
			return errors.New("not acting: the lease was gone before the promote could start")
		}
		r.mu.Unlock()
		work(ctx, r.promoteWork)
		r.mu.Lock()
		r.master, r.term = true, s.Term
		r.act(chaos.Record{Event: chaos.EvPromoteDone, Term: s.Term}, s.Term, false)
		r.ticking = make(chan struct{})
		go r.tick(s.Term, r.ticking)
	case r.master:
		term := r.term
		if r.ticking != nil {
			close(r.ticking)
			r.ticking = nil
		}
		r.mu.Unlock()
		// A late timer: the lease-lost demote of a driver on a busy
		// machine begins after the deadline. A demote is never cut short:
		// the daemon waits for it.
		work(context.Background(), r.late)
		r.mu.Lock()
		r.act(chaos.Record{Event: chaos.EvDemoteStart, Term: term, Role: s.Role, Master: s.Master, Local: s.Local, Reason: s.Reason}, term, true)
		r.mu.Unlock()
		work(context.Background(), r.demoteWork)
		r.mu.Lock()
		r.master = false
		r.guard.write(chaos.Record{Node: r.node, Event: chaos.EvDemoteDone, Term: term, MonoNS: int64(chaos.Now())})
	default:
		r.guard.write(chaos.Record{Node: r.node, Event: chaos.EvState, Term: s.Term, MonoNS: int64(chaos.Now()), Role: s.Role, Master: s.Master, Local: s.Local, Reason: s.Reason})
	}
	return nil
}

// event records the daemon's election events: when the node became
// candidate, by the daemon's own reading of the shared clock.
func (r *recorder) event(ev driverproto.Event) {
	if ev.Kind == driverproto.EventElection {
		r.write(chaos.Record{Event: chaos.EvCandidate, Term: ev.Term, MonoNS: ev.AtNS, Reason: ev.Detail})
	}
}

// work stands for what a real driver does on a promote or a demote.
func work(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func record(args []string) int {
	fs := flag.NewFlagSet("chaos-recorder", flag.ContinueOnError)
	node := fs.String("node", "", "this node's id, written on every record")
	addr := fs.String("addr", driverclient.DefaultAddr, "the daemon's local listener")
	secretFile := fs.String("secret-file", "", "the cluster's (or drivers') secret file")
	out := fs.String("out", "", "the history file to append to")
	promoteWork := fs.Duration("promote-work", 0, "how long a promote takes")
	demoteWork := fs.Duration("demote-work", 0, "how long a demote takes")
	role := fs.String("role", "", "the role to record (roles: in the configuration); empty is the first")
	late := fs.Duration("late", 0, "how late its timers fire: a demote begins that much after it is asked for")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *node == "" || *out == "" || *secretFile == "" {
		fmt.Fprintln(os.Stderr, "chaos-recorder: --node, --secret-file and --out are required")
		return 2
	}
	secret, err := driverclient.ReadSecretFile(*secretFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-recorder:", err)
		return 1
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-recorder:", err)
		return 1
	}
	defer f.Close()
	r := &recorder{node: *node, out: f, promoteWork: *promoteWork, demoteWork: *demoteWork, late: *late}
	r.guard = &guard{out: f, lease: r.currentLease, fatal: fatalf("chaos-recorder")}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", *node)
	err = driverclient.Run(ctx, driverclient.Options{
		Addr:    *addr,
		Secret:  secret,
		Name:    "recorder",
		Role:    *role,
		OnEvent: r.event,
		Logger:  log,
		// Back quickly after a daemon restart: the history is only as
		// useful as it is complete.
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond,
	}, r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-recorder:", err)
		return 1
	}
	return 0
}

// probe is the command run under `clustd driver exec`. It writes its start
// once it can be told to stop, a sign of life every ExecAliveEvery while
// it runs and, after its stop signal, while it drains, and its stop as the
// last thing it does: each an act, checked against its lease first.
func probe(args []string) int {
	fs := flag.NewFlagSet("chaos-recorder probe", flag.ContinueOnError)
	node := fs.String("node", "", "this node's id")
	out := fs.String("out", "", "the shared file of every node's probe")
	drain := fs.Duration("drain", 0, "how long to go on after the stop signal, like a service finishing its requests")
	late := fs.Duration("late", 0, "how late its timers fire: the drain ends that much later")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *node == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "chaos-recorder probe: --node and --out are required")
		return 2
	}
	leaseFile := os.Getenv("CLUSTD_LEASE_FILE")
	if leaseFile == "" {
		fmt.Fprintln(os.Stderr, "chaos-recorder probe: no CLUSTD_LEASE_FILE: run it under a clustd driver exec that keeps its lease")
		return 2
	}
	// Listening first: a stop that comes right after the start still finds
	// the start written before the stop.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-recorder probe:", err)
		return 1
	}
	defer f.Close()
	term, err := strconv.ParseUint(os.Getenv("CLUSTD_TERM"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-recorder probe: CLUSTD_TERM:", err)
		return 2
	}
	g := &guard{out: f, lease: func() (driverclient.Lease, error) { return driverclient.ReadLeaseFile(leaseFile) }, fatal: fatalf("chaos-recorder probe")}
	runProbe(g, chaos.Record{Node: *node, Term: term, PID: os.Getpid()}, *drain+*late, sig)
	return 0
}

// runProbe is the probe's life: rec names it, drain is how long it goes on
// after the first value on sig.
func runProbe(g *guard, rec chaos.Record, drain time.Duration, sig <-chan os.Signal) {
	act := func(event string, finishing bool) {
		r := rec
		r.Event = event
		g.act(r, rec.Term, finishing)
	}
	act(chaos.EvExecStart, false)
	tick := time.NewTicker(chaos.ExecAliveEvery)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-sig:
			running = false
		case <-tick.C:
			act(chaos.EvExecAlive, false)
		}
	}
	// Still at work: a kill at the stop deadline leaves a record of when
	// it came.
	for end := time.Now().Add(drain); time.Now().Before(end); <-tick.C {
		act(chaos.EvExecAlive, true)
	}
	act(chaos.EvExecStop, true)
}

// guard writes the records of a driver or a service, and checks its lease
// before each act.
type guard struct {
	out *os.File
	// lease reads the lease now; an error counts as no lease.
	lease func() (driverclient.Lease, error)
	// fatal ends the process: a history with a hole in it would prove
	// nothing, better to let the suite see the process die.
	fatal func(error)
	// now reads CLOCK_BOOTTIME; tests replace it.
	now func() time.Duration
	// held says the last check failed, and was recorded.
	held bool
}

// act writes rec, stamped with the time of the check, if the lease lets
// the process act now as master of term (finishing: finish work in hand,
// whatever the lease's term), and reports whether it did. Otherwise it
// records, once until a check passes again, that it held back.
func (g *guard) act(rec chaos.Record, term uint64, finishing bool) bool {
	l, err := g.lease()
	now := g.clock()
	var ok bool
	var until time.Duration
	switch {
	case err != nil:
	case finishing:
		ok, until = l.MayFinish(now), max(l.Deadline, l.StopDeadline)
	default:
		ok, until = l.MayAct(now) && l.Term == term, l.Deadline
	}
	if !ok {
		if !g.held {
			g.held = true
			held := chaos.Record{Node: rec.Node, Event: chaos.EvHeld, Term: rec.Term, MonoNS: int64(now), PID: rec.PID, UntilNS: int64(until), Reason: heldReason(l, err, term, finishing)}
			if rec.PID != 0 {
				held.Event = chaos.EvExecHeld
			}
			g.write(held)
		}
		return false
	}
	g.held = false
	rec.MonoNS, rec.UntilNS = int64(now), int64(until)
	b, err := json.Marshal(rec)
	if err != nil {
		g.fatal(err)
	}
	b = append(b, '\n')
	wrote := g.clock()
	if _, err := g.out.Write(b); err != nil {
		g.fatal(err)
	}
	if landed := g.clock(); landed >= until {
		g.write(chaos.Record{Node: rec.Node, Event: chaos.EvLate, Term: rec.Term, MonoNS: int64(now), PID: rec.PID, UntilNS: int64(until), WriteNS: int64(wrote), LandedNS: int64(landed), Reason: rec.Event})
	}
	return true
}

func (g *guard) clock() time.Duration {
	if g.now != nil {
		return g.now()
	}
	return chaos.Now()
}

// write writes a record that is not an act.
func (g *guard) write(rec chaos.Record) {
	if err := chaos.AppendRecord(g.out, rec); err != nil {
		g.fatal(err)
	}
}

func heldReason(l driverclient.Lease, err error, term uint64, finishing bool) string {
	switch {
	case err != nil:
		return "no lease: " + err.Error()
	case finishing:
		return "the stop deadline had passed"
	case l.Deadline == 0:
		return fmt.Sprintf("not master (lease of term %d has no deadline)", l.Term)
	case l.Term != term:
		return fmt.Sprintf("the lease is of term %d, not %d", l.Term, term)
	}
	return "the lease deadline had passed"
}

func fatalf(prog string) func(error) {
	return func(err error) {
		fmt.Fprintln(os.Stderr, prog+": writing the history:", err)
		os.Exit(1)
	}
}
