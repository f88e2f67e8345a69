package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/localcluster"
	"github.com/clustd/clustd/node/api"
)

const (
	// devMaxNodes bounds --nodes: clustd is meant for clusters of 2 to 9
	// machines, and a laptop runs that many daemons easily.
	devMaxNodes = 9
	// devPollEvery is how often every node's status is read.
	devPollEvery = 100 * time.Millisecond
	// devPollTimeout bounds one status request.
	devPollTimeout = 500 * time.Millisecond
	// devNoAnswer is how many status requests in a row must fail before a
	// running node is shown as not answering, so that one slow answer on
	// a busy machine does not look like an event.
	devNoAnswer = 3
	// devRestartAfter is how long a node killed by --chaos stays down.
	devRestartAfter = 2 * time.Second
	// devStopGrace is how long the daemons get to stop after SIGTERM.
	devStopGrace = 5 * time.Second
	// devLogTail is how many lines of a crashed node's log are shown.
	devLogTail = 10
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a throwaway cluster on this machine and watch it elect a master and fail over",
		Description: "Writes the configuration of an N-node cluster into a new temporary directory (as\n" +
			"clustd init would, on free loopback ports), starts one `clustd run` per node, reads\n" +
			"every node's /v1/status ten times a second and prints a line whenever the picture\n" +
			"changes: who is master, in which term, and what every other node is doing. When a\n" +
			"master appears after the cluster lost one, it says how long the cluster was\n" +
			"without a master.\n\n" +
			"With --chaos it kills the master with SIGKILL every --chaos-interval and restarts it\n" +
			"2 s later: watch the failover, how long it took, and the old master rejoin as a\n" +
			"follower. It only kills when the remaining nodes are a majority that can elect\n" +
			"another master.\n\n" +
			"Each daemon logs to DIR/ID.log; the directory is printed at start, and every node's\n" +
			"status page is at the http:// address printed next to it. Ctrl-C stops the daemons\n" +
			"(SIGTERM, then SIGKILL after 5 s) and removes the directory, unless --keep.\n\n" +
			"Examples:\n" +
			"   clustd dev\n" +
			"   clustd dev --chaos\n" +
			"   clustd dev --nodes 5 --chaos --chaos-interval 3s --profile fast\n" +
			"   clustd dev --keep        # read the daemons' logs afterwards",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 3, Usage: fmt.Sprintf("how many daemons to run (1 to %d)", devMaxNodes)},
			&cli.BoolFlag{Name: "chaos", Usage: "kill the master with SIGKILL every --chaos-interval and restart it 2s later"},
			&cli.DurationFlag{Name: "chaos-interval", Value: 5 * time.Second, Usage: "time between two kills of the master"},
			&cli.StringFlag{Name: "profile", Value: election.ProfileDefault, Usage: "timing profile: default (failover in about 0.5s) or fast (about 0.1s)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the directory with the configuration, state and logs of every node"},
		},
		Action: runDev,
	}
}

func runDev(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	n := c.Int("nodes")
	if n < 1 || n > devMaxNodes {
		return usageError(c, fmt.Sprintf("--nodes %d: must be between 1 and %d", n, devMaxNodes))
	}
	profile := c.String("profile")
	if _, err := election.ProfileTiming(profile); err != nil {
		return usageError(c, "--profile: "+err.Error())
	}
	chaos := c.Bool("chaos")
	interval := c.Duration("chaos-interval")
	if interval <= 0 {
		return usageError(c, fmt.Sprintf("--chaos-interval %v: must be positive", interval))
	}
	if chaos && n < 3 {
		return usageError(c, fmt.Sprintf("--chaos needs at least 3 nodes: without its master, a %d-node cluster has no majority left to elect another", n))
	}
	exe, err := os.Executable()
	if err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("cannot find the clustd executable to start the daemons with: %v", err)}
	}

	dir, err := os.MkdirTemp("", "clustd-dev-")
	if err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("cannot create a temporary directory: %v", err)}
	}
	d := &devSession{
		out:      c.App.Writer,
		exe:      exe,
		dir:      dir,
		chaos:    chaos,
		interval: interval,
		start:    time.Now(),
		exits:    make(chan devExit, 4*n),
	}
	runErr := d.run(c.Context, n, profile)
	d.stopAll()
	if d.lc != nil && d.waiting == 0 {
		d.lc.Close()
	}

	// After a failure the logs are what explains it.
	keep := c.Bool("keep") || runErr != nil && d.started
	if keep {
		fmt.Fprintf(d.out, "kept %s (configuration, state and log of every node)\n", dir)
	} else if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(d.out, "could not remove %s: %v\n", dir, err)
	} else {
		fmt.Fprintf(d.out, "removed %s\n", dir)
	}
	return runErr
}

// devSession is the state of clustd dev: the cluster it runs, and what it
// has shown of it. Only the goroutine that calls run and stopAll touches
// it; the processes' waiters report on exits.
type devSession struct {
	out      io.Writer
	exe      string
	dir      string
	chaos    bool
	interval time.Duration
	start    time.Time
	lc       *localcluster.Cluster
	nodes    []*devNode
	exits    chan devExit
	// waiting counts the processes whose waiter has not reported yet.
	waiting int
	// started is set once a daemon has been started: there are logs.
	started bool

	line       string    // the last cluster line printed
	master     *devNode  // the master of the last poll, or nil
	masterTerm uint64    // its term
	lostAt     time.Time // when the cluster was last seen to lose its master
	hadMaster  bool      // whether there ever was a master
	nextKill   time.Time // when --chaos kills next; zero until the first master
	chaosHeld  bool      // a "not killing" note was printed for this wait
}

type devNode struct {
	idx      int // in the cluster
	id       string
	log      string
	peerAddr string
	httpAddr string

	proc    *localcluster.Proc
	running bool
	// expectExit marks a process that was sent a signal on purpose.
	expectExit bool
	// killed marks a process that was sent SIGKILL.
	killed bool
	// restartAt is when --chaos restarts the node; zero if it will not.
	restartAt time.Time

	st       *api.Status // the last status it answered since it started
	answered time.Time   // when it answered that
	fails    int         // status requests that failed in a row since
}

type devExit struct {
	node *devNode
	proc *localcluster.Proc
}

func (d *devSession) printf(format string, args ...any) {
	fmt.Fprintf(d.out, "%6.1fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// run sets the cluster up and watches it until ctx ends (nil) or the
// cluster cannot go on (an error).
func (d *devSession) run(ctx context.Context, n int, profile string) error {
	lc, err := localcluster.New(ctx, localcluster.Options{Bin: d.exe, Dir: d.dir, Nodes: n, Profile: profile, InProcessInit: true})
	if errors.Is(err, localcluster.ErrNoPorts) {
		return &exitError{code: 1, msg: fmt.Sprintf("cannot find %d free consecutive ports on 127.0.0.1 for the daemons: %v", 2*n, err)}
	}
	if err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("writing the configuration: %v", err)}
	}
	d.lc = lc
	for i, id := range lc.IDs {
		d.nodes = append(d.nodes, &devNode{idx: i, id: id, log: lc.LogPath(i), peerAddr: lc.Peer[i], httpAddr: lc.HTTP[i]})
	}
	chaos := ""
	if d.chaos {
		chaos = fmt.Sprintf(", killing the master every %v", d.interval)
	}
	fmt.Fprintf(d.out, "clustd dev: %d nodes on 127.0.0.1, timing profile %s%s\n", n, profile, chaos)
	fmt.Fprintf(d.out, "configuration, state and logs in %s (one log per node: n1.log …)\n", d.dir)
	for _, nd := range d.nodes {
		if err := d.startNode(nd); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		fmt.Fprintf(d.out, "started %s (pid %d): peers at %s, status page at http://%s/\n", nd.id, nd.proc.Pid(), nd.peerAddr, nd.httpAddr)
	}
	// init's start command for the node, with the path quoted for a shell.
	status := strings.Replace(lc.Init.Nodes[0].Command, "clustd run ", "clustd status ", 1)
	fmt.Fprintf(d.out, "In another terminal, try: %s   (or transfer, maintenance)\n", status)
	fmt.Fprintln(d.out, "Ctrl-C stops the cluster.")

	tick := time.NewTicker(devPollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-d.exits:
			d.exited(e)
		case <-tick.C:
			d.poll(ctx)
			if ctx.Err() != nil {
				return nil
			}
			d.drainExits()
			d.show()
			d.chaosStep()
		}
		if err := d.allGone(); err != nil {
			return err
		}
	}
}

// startNode starts the node's daemon. localcluster puts it in a process
// group of its own, so that Ctrl-C in the terminal reaches clustd dev only,
// which stops the daemons itself.
func (d *devSession) startNode(nd *devNode) error {
	if err := d.lc.Start(nd.idx); err != nil {
		return err
	}
	p := d.lc.Proc(nd.idx)
	nd.proc = p
	nd.running = true
	nd.expectExit, nd.killed = false, false
	d.started = true
	nd.st, nd.answered, nd.fails = nil, time.Time{}, 0
	d.waiting++
	go func() {
		<-p.Done()
		d.exits <- devExit{node: nd, proc: p}
	}()
	return nil
}

// exited records that a daemon's process ended, and explains it unless it
// was sent a signal on purpose.
func (d *devSession) exited(e devExit) {
	d.waiting--
	nd := e.node
	if e.proc != nd.proc {
		return
	}
	err, pid := e.proc.Err(), e.proc.Pid()
	nd.running = false
	nd.st, nd.answered, nd.fails = nil, time.Time{}, 0
	switch {
	case nd.killed:
		return
	case nd.expectExit && err == nil:
		return
	case nd.expectExit:
		d.printf("%s (pid %d) did not stop cleanly on SIGTERM (%v); the last lines of %s:", nd.id, pid, err, nd.log)
	case err != nil:
		d.printf("%s (pid %d) exited unexpectedly (%v); the last lines of %s:", nd.id, pid, err, nd.log)
	default:
		d.printf("%s (pid %d) exited unexpectedly (exit status 0); the last lines of %s:", nd.id, pid, nd.log)
	}
	for _, l := range localcluster.LogTail(nd.log, devLogTail) {
		fmt.Fprintf(d.out, "          | %s\n", l)
	}
}

func (d *devSession) drainExits() {
	for {
		select {
		case e := <-d.exits:
			d.exited(e)
		default:
			return
		}
	}
}

// allGone ends clustd dev when no daemon runs and none is due back: there is
// nothing left to watch.
func (d *devSession) allGone() error {
	for _, nd := range d.nodes {
		if nd.running || !nd.restartAt.IsZero() {
			return nil
		}
	}
	return &exitError{code: 1, msg: "every node has exited; see their logs above"}
}

// poll reads every running node's status, all at once.
func (d *devSession) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, devPollTimeout)
	defer cancel()
	type answer struct {
		st *api.Status
		at time.Time
	}
	answers := make([]answer, len(d.nodes))
	var wg sync.WaitGroup
	for i, nd := range d.nodes {
		if !nd.running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := d.lc.Status(ctx, nd.idx)
			if err == nil {
				answers[i] = answer{st, time.Now()}
			}
		}()
	}
	wg.Wait()
	for i, nd := range d.nodes {
		if !nd.running {
			continue
		}
		if a := answers[i]; a.st != nil {
			nd.st, nd.answered, nd.fails = a.st, a.at, 0
		} else {
			nd.fails++
		}
	}
}

// label is what a node is doing, as shown on the cluster line.
func (nd *devNode) label() string {
	switch {
	case !nd.running:
		return "down"
	case nd.st == nil:
		return "starting"
	case nd.fails >= devNoAnswer:
		return "not answering"
	}
	s := nd.st.Role
	if nd.st.Role != driverproto.RoleFollower {
		s += fmt.Sprintf(" term %d", nd.st.Term)
	}
	if nd.st.Maintenance {
		s += " (maintenance)"
	}
	return s
}

// isMaster says whether the node's own last answer says it is master.
func (nd *devNode) isMaster() bool {
	return nd.running && nd.st != nil && nd.fails < devNoAnswer && nd.st.Role == driverproto.RoleMaster
}

// show prints the cluster line when it changed, and a note when a master
// appears.
func (d *devSession) show() {
	var master *devNode
	for _, nd := range d.nodes {
		if nd.isMaster() && (master == nil || nd.st.Term > master.st.Term) {
			master = nd
		}
	}
	var others []string
	for _, nd := range d.nodes {
		if nd != master {
			others = append(others, nd.id+" "+nd.label())
		}
	}
	line := "no master"
	if master != nil {
		line = fmt.Sprintf("%s master term %d", master.id, master.st.Term)
	}
	if len(others) > 0 {
		line += "  (" + strings.Join(others, ", ") + ")"
	}
	if line != d.line {
		d.line = line
		d.printf("%s", line)
	}

	switch {
	case master == nil && d.master != nil:
		if d.lostAt.IsZero() {
			d.lostAt = time.Now()
		}
	case master != nil && (master != d.master || master.st.Term != d.masterTerm):
		// The master's own answer says how long ago it became master,
		// which is more precise than the poll that saw it.
		since := master.answered.Add(-time.Duration(master.st.SinceMS) * time.Millisecond)
		switch {
		case !d.hadMaster:
			d.printf("first master %s at term %d, %.2fs after start", master.id, master.st.Term, max(since.Sub(d.start), 0).Seconds())
			if d.chaos {
				d.nextKill = time.Now().Add(d.interval)
			}
		case !d.lostAt.IsZero():
			d.printf("new master %s at term %d after %.2fs without one", master.id, master.st.Term, max(since.Sub(d.lostAt), 0).Seconds())
		case d.master != nil:
			d.printf("new master %s at term %d (was %s at term %d)", master.id, master.st.Term, d.master.id, d.masterTerm)
		}
		d.hadMaster = true
		d.lostAt = time.Time{}
	}
	d.master = master
	if master != nil {
		d.masterTerm = master.st.Term
	}
}

// chaosStep kills the master when it is time, and restarts the nodes it
// killed when theirs is.
func (d *devSession) chaosStep() {
	now := time.Now()
	for _, nd := range d.nodes {
		if nd.running || nd.restartAt.IsZero() || now.Before(nd.restartAt) {
			continue
		}
		nd.restartAt = time.Time{}
		if err := d.startNode(nd); err != nil {
			d.printf("chaos: %v; %s stays down", err, nd.id)
			continue
		}
		d.printf("chaos: restarted %s (pid %d)", nd.id, nd.proc.Pid())
	}
	if !d.chaos || d.master == nil || d.nextKill.IsZero() || now.Before(d.nextKill) {
		return
	}
	up := 0
	for _, nd := range d.nodes {
		if nd.running && nd.st != nil && nd.fails < devNoAnswer {
			up++
		}
	}
	if majority := len(d.nodes)/2 + 1; up-1 < majority {
		if !d.chaosHeld {
			d.chaosHeld = true
			d.printf("chaos: not killing %s yet: only %d of %d nodes answer, and without it the rest would be no majority", d.master.id, up, len(d.nodes))
		}
		return
	}
	m := d.master
	m.expectExit, m.killed = true, true
	if err := m.proc.Signal(syscall.SIGKILL); err != nil {
		m.expectExit, m.killed = false, false
		d.printf("chaos: cannot kill %s: %v", m.id, err)
		d.nextKill = now.Add(d.interval)
		return
	}
	d.printf("chaos: killed master %s (term %d, pid %d) with SIGKILL; restarting it in %v", m.id, m.st.Term, m.proc.Pid(), devRestartAfter)
	m.restartAt = now.Add(devRestartAfter)
	d.lostAt = now
	d.nextKill = now.Add(d.interval)
	d.chaosHeld = false
}

// stopAll sends SIGTERM to every daemon, waits for them to exit, and kills
// those that are still there after devStopGrace.
func (d *devSession) stopAll() {
	var ids []string
	for _, nd := range d.nodes {
		nd.restartAt = time.Time{}
		if nd.running {
			nd.expectExit = true
			if err := nd.proc.Signal(syscall.SIGTERM); err == nil {
				ids = append(ids, nd.id)
			}
		}
	}
	if len(ids) > 0 {
		d.printf("stopping: SIGTERM to %s", strings.Join(ids, ", "))
	}
	grace := time.NewTimer(devStopGrace)
	defer grace.Stop()
	killed := false
	for d.waiting > 0 {
		select {
		case e := <-d.exits:
			d.exited(e)
		case <-grace.C:
			if killed {
				d.printf("giving up: %d daemon process(es) did not go away even after SIGKILL", d.waiting)
				return
			}
			killed = true
			for _, nd := range d.nodes {
				if nd.running && !nd.killed {
					d.printf("%s (pid %d) did not stop within %v; sending SIGKILL", nd.id, nd.proc.Pid(), devStopGrace)
					nd.killed = true
					nd.proc.Signal(syscall.SIGKILL)
				}
			}
			grace.Reset(devStopGrace)
		}
	}
	if len(ids) > 0 {
		d.printf("all nodes stopped")
	}
}
