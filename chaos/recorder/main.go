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
// starts and when it is told to stop, so that the suite can check that the
// command ran on one node at a time.
//
//	clustd driver exec --config a.yml -- chaos-recorder probe --node a --out exec.jsonl
package main

import (
	"context"
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

	mu   sync.Mutex
	out  *os.File
	term uint64 // the term it is master in, when master
	// master is true from the start of a promote to the end of a demote.
	master bool
}

func (r *recorder) write(rec chaos.Record) {
	rec.Node = r.node
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := chaos.AppendRecord(r.out, rec); err != nil {
		// A history with a hole in it would prove nothing: better to stop
		// and let the suite see a driver that died.
		fmt.Fprintln(os.Stderr, "chaos-recorder: writing the history:", err)
		os.Exit(1)
	}
}

// Trigger records the edges. Each timestamp is read at the edge itself:
// the start of a promote before anything else is done, the end of a
// demote after everything else is done, so the recorded interval holds
// every instant the driver may have acted as master.
func (r *recorder) Trigger(ctx context.Context, s driverclient.State) error {
	now := chaos.Now()
	switch {
	case s.IsMaster:
		r.write(chaos.Record{Event: chaos.EvPromoteStart, Term: s.Term, MonoNS: int64(now), Role: s.Role, Master: s.Master, Reason: s.Reason})
		work(ctx, r.promoteWork)
		r.master, r.term = true, s.Term
		r.write(chaos.Record{Event: chaos.EvPromoteDone, Term: s.Term, MonoNS: int64(chaos.Now())})
	case r.master:
		term := r.term
		r.write(chaos.Record{Event: chaos.EvDemoteStart, Term: term, MonoNS: int64(now), Role: s.Role, Master: s.Master, Local: s.Local, Reason: s.Reason})
		// A demote is never cut short: the daemon waits for it.
		work(context.Background(), r.demoteWork)
		r.master = false
		r.write(chaos.Record{Event: chaos.EvDemoteDone, Term: term, MonoNS: int64(chaos.Now())})
	default:
		r.write(chaos.Record{Event: chaos.EvState, Term: s.Term, MonoNS: int64(now), Role: s.Role, Master: s.Master, Local: s.Local, Reason: s.Reason})
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
	r := &recorder{node: *node, out: f, promoteWork: *promoteWork, demoteWork: *demoteWork}
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
// once it can be told to stop, waits to be told, and writes its stop as
// the last thing it does.
func probe(args []string) int {
	fs := flag.NewFlagSet("chaos-recorder probe", flag.ContinueOnError)
	node := fs.String("node", "", "this node's id")
	out := fs.String("out", "", "the shared file of every node's probe")
	drain := fs.Duration("drain", 0, "how long to go on after the stop signal, like a service finishing its requests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *node == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "chaos-recorder probe: --node and --out are required")
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
	term, _ := strconv.ParseUint(os.Getenv("CLUSTD_TERM"), 10, 64)
	pid := os.Getpid()
	write := func(event string) {
		rec := chaos.Record{Node: *node, Event: event, Term: term, MonoNS: int64(chaos.Now()), PID: pid}
		if err := chaos.AppendRecord(f, rec); err != nil {
			fmt.Fprintln(os.Stderr, "chaos-recorder probe:", err)
			os.Exit(1)
		}
	}
	write(chaos.EvExecStart)
	<-sig
	if *drain > 0 {
		// Still at work: a sign of life every ExecAliveEvery, so that a
		// kill at the stop deadline leaves a record of when it came.
		end := time.Now().Add(*drain)
		tick := time.NewTicker(chaos.ExecAliveEvery)
		for time.Now().Before(end) {
			write(chaos.EvExecAlive)
			<-tick.C
		}
		tick.Stop()
	}
	write(chaos.EvExecStop)
	return 0
}
