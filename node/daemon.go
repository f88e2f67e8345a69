package node

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/metrics"
	"github.com/clustd/clustd/node/sdnotify"
	"github.com/clustd/clustd/node/seeddrv"
	"github.com/clustd/clustd/node/store"
	"github.com/clustd/clustd/node/transport"
)

// Daemon runs one member of the cluster: the election core driven by the
// monotonic clock, the peer transport, the state file and the local HTTP
// listener. Every input to the core (a frame, on the goroutine that read
// it; the timer, on the loop goroutine; a command) runs under one lock and
// is acted on before the lock is released, so the core sees one input at a
// time. Inputs are not handed to a goroutine that owns the core: on an idle
// cluster that hand-off, a wake-up per frame, was most of the cost.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger
	// roles are the elections this node takes part in (roles.go), in the
	// configuration's order; a peer frame names a role by its index. The
	// first role's fields are promoted (d.core, d.state, d.hub): the
	// top-level keys of the status describe it, and the failover journal
	// follows it.
	*roleElection
	roles   []*roleElection
	peers   map[string]*peer
	order   []*peer
	hello   transport.Hello
	metrics *metrics.Metrics
	reg     *prometheus.Registry
	failLog burstLog
	wg      sync.WaitGroup
	// handshakes bounds the peer connections that have not yet proved
	// the secret.
	handshakes *shedder
	dups       duplicates

	peerLn net.Listener
	httpLn net.Listener
	seed   *seeddrv.Server // nil unless http.seed_drivers
	rec    *recorder       // the event journal (events.go)

	// mu guards the core and everything below it.
	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Duration // what timer is set for
	stopped  bool          // no more input: the loop has returned
	fatal    error         // why the daemon must stop, once failed is closed
	failed   chan struct{}
	leaving  bool // stopping: wake the loop after each input
	wake     chan struct{}
	scratch  []byte // encodes outgoing messages
	// batches are the frames being built for each peer (by index in
	// order) while the cores' output of one input is sent: with several
	// roles, one frame per peer carries every role's messages.
	batches [][]byte
	// members is the member list the states published by one input share.
	members   []driverproto.Member
	nextLinks time.Duration
	lastPing  []time.Duration // by index in order
	// nextPing is when the loop next pings the watchdog (service.go).
	nextPing   time.Duration
	statusLine string

	// Notify, if set before Run, is told when the daemon is ready, pinged
	// by the loop for the service manager's watchdog, and sent a one-line
	// role summary (service.go).
	Notify *sdnotify.Notifier
	// maint is the maintenance window (maintenance.go).
	maint maintenance
	// drivers are the ids of the drivers connected to any role, which the
	// roles' hubs share.
	drivers *driverRegistry
	// health is the node's health as its required drivers have it, across
	// roles (drivers.go, updateHealth).
	health struct {
		sync.Mutex
		unhealthy bool
	}
}

// stateStore keeps the term and vote: *store.Store, or in tests one that
// fails or blocks, to show that nothing depending on a vote leaves before
// the vote is durable.
type stateStore interface {
	Save(store.HardState) error
	Close() error
}

// LimitProcs makes the Go runtime run Go code on one CPU at a time, unless
// the GOMAXPROCS environment variable chose otherwise. A daemon's work is
// microseconds per message and needs no parallelism; with one processor
// the runtime no longer wakes a second thread to look for work after
// every frame, which took a fifth of an idle master's CPU (BENCHMARKS.md).
// clustd run calls it first.
func LimitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// New opens the state files and binds both listeners, so that every
// start-up problem (a corrupt state file, a port in use) is reported
// before Run.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	if err := checkOwnAddress(cfg); err != nil {
		return nil, err
	}
	now := Monotonic()
	roles, err := openRoles(cfg, now)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			for _, r := range roles {
				r.store.Close()
			}
		}
	}()
	reg := metrics.NewRegistry()
	d := &Daemon{
		cfg:          cfg,
		log:          log,
		roleElection: roles[0],
		roles:        roles,
		peers:        map[string]*peer{},
		hello:        transport.Hello{Node: cfg.ID, ClusterHash: cfg.MembersHash(), Instance: transport.NewInstance()},
		timer:        time.NewTimer(0),
		failed:       make(chan struct{}),
		wake:         make(chan struct{}, 1),
		reg:          reg,
		metrics:      metrics.NewRoles(reg, cfg.ID, roleNamesOf(cfg)),
		failLog:      burstLog{quiet: 30 * time.Second},

		handshakes: newShedder(maxHandshakes, maxHandshakesPerSource),
	}
	d.drivers = newDriverRegistry()
	d.nextPing = noPing
	d.addPeers()
	d.lastPing = make([]time.Duration, len(d.order))
	d.batches = make([][]byte, len(d.order))
	if err := d.listen(); err != nil {
		return nil, err
	}
	// The recorder first: the hubs report to it.
	d.rec = newRecorder(d)
	for _, r := range d.roles {
		r.hub = d.newRoleHub(r)
	}
	if err := d.restoreMaintenance(now); err != nil {
		d.peerLn.Close()
		d.httpLn.Close()
		d.rec.close()
		return nil, err
	}
	d.startSeed()
	ok = true
	hs := d.core.HardState()
	log.Info("starting", "term", hs.Term, "vote", hs.Vote, "roles", len(d.roles), "listen", d.peerLn.Addr().String(),
		"http", d.httpLn.Addr().String(), "members", len(cfg.Members), "instance", hex.EncodeToString(d.hello.Instance[:]),
		"election_timeout", cfg.Timing.ElectionMin, "lease", cfg.Timing.LeaseDuration())
	return d, nil
}

// adminToken is the token admin requests must carry: the admin token
// file's, or, in a configuration without one, the token derived from the
// peer secret.
func (d *Daemon) adminToken() string {
	if d.cfg.AdminToken != "" {
		return d.cfg.AdminToken
	}
	return api.AdminToken(d.cfg.Secret)
}

// HTTPAddr is the local listener's address.
func (d *Daemon) HTTPAddr() net.Addr { return d.httpLn.Addr() }

// Run runs the daemon until ctx ends, then hands leadership over if this
// node is master, and stops.
func (d *Daemon) Run(ctx context.Context) error {
	defer func() {
		for _, r := range d.roles {
			r.store.Close()
		}
	}()
	defer d.rec.stopped()
	netCtx, stopNet := context.WithCancel(context.Background())
	defer stopNet()

	d.wg.Add(1)
	go d.serve(netCtx, d.peerLn)
	for _, p := range d.order {
		d.wg.Add(1)
		go d.dialLoop(netCtx, p)
	}
	srv := &http.Server{
		Handler: localOnly(api.NewHandler(api.HandlerOptions{
			Daemon:     d,
			Token:      d.adminToken(),
			Gatherer:   d.reg,
			Driver:     d.hub,
			Seed:       d.seedHandler(),
			Logger:     d.log,
			AuthFailed: d.metrics.AuthFailure,
			LogRefused: func(remote string) bool {
				return d.failLog.first("admin/"+hostOf(remote), Monotonic())
			},
			Journal: d.rec.j,
		})),
		// A client that connects and sends nothing, or trickles, must
		// not hold a connection for long; drivers' websockets set their
		// own deadlines once hijacked.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	httpLn := d.httpLn
	if d.cfg.TLSCertificate != nil {
		httpLn = tls.NewListener(httpLn, &tls.Config{Certificates: []tls.Certificate{*d.cfg.TLSCertificate}, MinVersion: tls.VersionTLS12})
	}
	lim := newHTTPLimiter(httpLn, maxHTTPConns, maxHTTPConns, func(n int) {
		d.metrics.ConnectionsShed(metrics.ListenerHTTP, n)
		if d.failLog.first("http/shed", Monotonic()) {
			d.log.Warn("too many connections on the local HTTP listener; closing the oldest", "limit", maxHTTPConns)
		}
	})
	srv.ConnState = lim.connState
	srv.RegisterOnShutdown(d.rec.endStreams)
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(lim) }()
	d.startNotify()

	// A required driver absent at start keeps the node ineligible until
	// it connects.
	d.updateHealth()
	err := d.loop(ctx)
	d.stopMaintenanceTimer()

	shut, cancel := context.WithTimeout(context.Background(), time.Second)
	srv.Shutdown(shut)
	cancel()
	d.stopSeed()
	d.flush(500 * time.Millisecond)
	stopNet()
	d.peerLn.Close()
	d.wg.Wait()
	if err != nil {
		return err
	}
	if herr := <-httpDone; herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		return fmt.Errorf("local HTTP listener: %w", herr)
	}
	d.log.Info("stopped", "term", d.core.Term())
	return nil
}

// loop feeds the core its timer and the stop, and waits for the hand-over
// when stopping. It returns the error that stopped the daemon, if any.
func (d *Daemon) loop(ctx context.Context) error {
	defer func() {
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		d.timer.Stop()
	}()
	var leaving <-chan time.Time
	drained := false
	done := ctx.Done()
	for {
		select {
		case <-d.timer.C:
			d.input(func(now time.Duration) {
				d.deadline = -1 // spent: set the timer again
				d.rec.ticked(now)
				for _, r := range d.roles {
					r.core.Tick(now)
				}
				d.pingWatchdog(now)
			})
		case <-done:
			done = nil
			d.Notify.Send(sdnotify.Stopping)
			d.input(func(now time.Duration) { leaving = d.leave(now) })
		case <-leaving:
			return nil
		case <-d.wake:
		case <-d.failed:
			return d.fatal
		}
		if leaving == nil {
			continue
		}
		d.mu.Lock()
		handedOver, draining := d.handedOver(), d.draining()
		d.mu.Unlock()
		if handedOver {
			return nil
		}
		if !drained && !draining {
			// The drivers have let go and the target was told: give it
			// an election's time, not the rest of the demote timeout.
			drained = true
			leaving = time.After(d.cfg.Timing.ElectionMax)
		}
	}
}

// input runs f on the core, with the clock read under the lock so that
// the core's inputs carry non-decreasing times, then acts on its output.
// After the loop has returned it does nothing and returns errStopped.
func (d *Daemon) input(f func(now time.Duration)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errStopped
	}
	now := Monotonic()
	f(now)
	d.acted(now)
	return nil
}

// acted acts on the core's output and sets the timer for its next
// deadline. Called with d.mu held.
func (d *Daemon) acted(now time.Duration) {
	saved, err := d.ready()
	if err != nil {
		if !d.stopped {
			d.stopped = true
			d.fatal = err
			close(d.failed)
		}
		return
	}
	if saved {
		now = Monotonic() // an fsync takes a while
	}
	if now >= d.nextLinks {
		d.checkLinks(now)
		d.nextLinks = now + d.linkEvery()
	}
	// Most inputs leave the deadline where it was (a master's next
	// heartbeat is due whatever the acknowledgements say): resetting the
	// timer costs more than comparing.
	if dl := min(d.nextDeadline(), d.nextLinks, d.nextPing); dl != d.deadline {
		d.deadline = dl
		d.timer.Reset(max(dl-now, 0))
	}
	if d.leaving {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// ready acts on the cores' output. The hard state reaches the disk before
// any message that depends on it leaves; failing that, the daemon stops:
// carrying on could vote twice in one term after a restart. It reports
// whether it saved anything. With several roles every role's messages to
// a peer leave in one frame (wire.go, frameRoles).
func (d *Daemon) ready() (bool, error) {
	saved, published := false, false
	// One member list serves every role's states of this input.
	d.members = nil
	for _, r := range d.roles {
		if !r.core.HasReady() {
			continue
		}
		rd := r.core.Ready()
		if rd.HardState != nil {
			if err := r.store.Save(store.HardState{Term: rd.HardState.Term, Vote: rd.HardState.Vote}); err != nil {
				d.log.Error("cannot persist term and vote; stopping", "role", r.name, "file", r.statePath, "err", err)
				return false, fmt.Errorf("persisting term and vote of role %s in %s: %w", r.name, r.statePath, err)
			}
			saved = true
		}
		for _, m := range rd.Messages {
			p := d.peers[m.To]
			if p == nil {
				continue
			}
			if len(d.roles) == 1 {
				d.scratch = encodeMessage(d.scratch[:0], m)
				if !p.send(d.scratch) {
					d.metrics.FrameDropped("queue_full")
				}
				continue
			}
			d.batches[p.idx] = appendRoleMessage(d.batches[p.idx], r.idx, m)
		}
		for _, st := range rd.States {
			d.publish(r, st)
			published = true
		}
	}
	if published {
		d.notifyStatus()
	}
	for i, b := range d.batches {
		if len(b) > 0 {
			if !d.order[i].send(b) {
				d.metrics.FrameDropped("queue_full")
			}
			d.batches[i] = b[:0]
		}
	}
	return saved, nil
}

// publish logs, counts and forwards one state change of role r.
func (d *Daemon) publish(r *roleElection, st election.State) {
	prev := r.state
	r.state = st
	rm := d.metrics.Role(r.idx)
	if st.Role == election.Candidate && st.Term != prev.Term {
		rm.Election()
	}
	if st.Role != prev.Role || st.Term != prev.Term || st.Master != prev.Master {
		r.roleSince = st.At
		if st.Role == election.Master {
			rm.MasterChange()
		}
		level := slog.LevelInfo
		if st.Role == election.PreCandidate || (st.Role == election.Candidate && st.Reason != election.ReasonWon) {
			level = slog.LevelDebug
		}
		args := []any{"role", roleName(st.Role), "term", st.Term, "master", st.Master, "reason", st.Reason.String()}
		if st.Role == election.Master {
			args = append(args, "lease", st.LeaseUntil-st.At)
		}
		if len(d.roles) > 1 {
			args = append(args, "role_name", r.name)
		}
		d.log.Log(context.Background(), level, "role changed", args...)
	}
	rm.SetRole(roleName(st.Role))
	rm.SetTerm(st.Term)
	if st.Role == election.Master {
		rm.SetLease((st.LeaseUntil - st.At).Seconds())
	} else {
		rm.SetLease(0)
	}
	if d.members == nil {
		d.members = d.memberList(st.At)
	}
	r.hub.publish(st, d.members)
	if r.idx == 0 {
		d.rec.state(prev, st)
	} else {
		d.rec.roleState(r, prev, st)
	}
}

// roleName maps a core role onto the three the driver protocol, the status
// API and the metrics name alike (driverproto.Role*; api and metrics use
// those constants). A pre-candidate has raised no term and may well find
// the master still alive: it is still a follower, and its reason says it
// is asking.
func roleName(r election.Role) string {
	switch r {
	case election.Master:
		return driverproto.RoleMaster
	case election.Candidate:
		return driverproto.RoleCandidate
	}
	return driverproto.RoleFollower
}

// leave starts the graceful stop: a master hands over first; a follower
// just goes. It returns when to give up waiting for the hand-over. Called
// with d.mu held.
func (d *Daemon) leave(now time.Duration) <-chan time.Time {
	d.leaving = true
	handing := false
	for _, r := range d.roles {
		if !r.core.IsMaster(now) {
			continue
		}
		if err := r.core.Transfer(now, ""); err != nil {
			d.log.Warn("stopping as master without handing over", "role", r.name, "err", err)
			continue
		}
		r.leaving, handing = true, true
	}
	if !handing {
		return time.After(0)
	}
	d.log.Info("stopping: handing leadership over first")
	// The drivers confirm their demote (at most demote_timeout, while this
	// node keeps its lease so no one else is elected meanwhile), the target
	// is told to take over, and then it needs an election's round trips.
	return time.After(d.cfg.DemoteTimeout + d.cfg.Timing.LeaseDuration() + d.cfg.Timing.ElectionMax)
}

// demoteDone tells role r's core that every driver confirmed its demote.
func (d *Daemon) demoteDone(r *roleElection) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.do(ctx, func(now time.Duration) { r.core.DemoteDone(now) })
}

// demoteUnconfirmed tells role r's core that some driver will not confirm
// its demote: it overran its declared time or went away.
func (d *Daemon) demoteUnconfirmed(r *roleElection) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.do(ctx, func(now time.Duration) { r.core.DemoteUnconfirmed(now) })
}

// setHealthy passes the drivers' verdict on the node's health for role r
// to its core.
func (d *Daemon) setHealthy(r *roleElection, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.do(ctx, func(now time.Duration) { r.core.SetHealthy(now, ok) })
}

// memberList is the member list drivers get with each state.
func (d *Daemon) memberList(now time.Duration) []driverproto.Member {
	out := make([]driverproto.Member, 0, len(d.cfg.Members))
	for _, m := range d.cfg.Members {
		dm := driverproto.Member{ID: m.ID, Witness: m.Witness, Reachable: m.ID == d.cfg.ID}
		if p := d.peers[m.ID]; p != nil {
			p.mu.Lock()
			dm.Reachable = d.reachable(p, now)
			p.mu.Unlock()
		}
		out = append(out, dm)
	}
	return out
}

// handedOver reports whether another node is master now of every role
// this node was master of when it began to stop.
func (d *Daemon) handedOver() bool {
	for _, r := range d.roles {
		if st := r.core.State(); r.leaving && (st.Master == "" || st.Master == d.cfg.ID) {
			return false
		}
	}
	return true
}

// draining reports whether a role waits for its drivers to confirm a
// demote.
func (d *Daemon) draining() bool {
	for _, r := range d.roles {
		if r.core.Draining() {
			return true
		}
	}
	return false
}

// flush gives queued frames a moment to leave before the sockets close.
func (d *Daemon) flush(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		busy := false
		for _, p := range d.order {
			p.mu.Lock()
			up := p.connected
			p.mu.Unlock()
			if up && len(p.out) > 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errStopped = errors.New("the daemon is stopping")

// do runs a command on the core. The lock is held only for the length of
// one input, so ctx is checked once, before.
func (d *Daemon) do(ctx context.Context, f func(now time.Duration)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.input(f)
}

// Status reports the node's view of the cluster.
func (d *Daemon) Status() api.Status {
	var s api.Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := d.do(ctx, func(now time.Duration) { s = d.status(now) })
	if err != nil {
		// The loop is gone (stopping): answer from what is known.
		s = api.Status{Node: d.cfg.ID, Role: driverproto.RoleFollower, Reason: "stopping"}
	}
	return s
}

func (d *Daemon) status(now time.Duration) api.Status {
	st := d.state
	s := api.Status{
		Node:        d.cfg.ID,
		Role:        roleName(st.Role),
		Term:        st.Term,
		Master:      st.Master,
		Eligible:    d.core.Eligible(),
		Maintenance: d.core.Maintenance(),
		Healthy:     d.core.Healthy(),
		Witness:     d.cfg.Self().Witness,
		Reason:      st.Reason.String(),
		SinceMS:     (now - d.roleSince).Milliseconds(),

		ElectionTimeoutMS:  d.cfg.Timing.ElectionMin.Milliseconds(),
		StopBudgetMS:       d.roleElection.cfg.StopBudget.Milliseconds(),
		ExpectedFailoverMS: (d.cfg.Timing.ElectionMin + d.roleElection.cfg.StopBudget).Milliseconds(),
		DriversActing:      st.Role == election.Master && st.Act,
	}
	d.maintenanceStatus(&s)
	if d.core.IsMaster(now) {
		s.LeaseMS = (st.LeaseUntil - now).Milliseconds()
	}
	for _, r := range d.roles {
		rs := api.RoleStatus{Name: r.name, Role: roleName(r.state.Role), Term: r.state.Term, Master: r.state.Master}
		if r.core.IsMaster(now) {
			rs.LeaseMS = (r.state.LeaseUntil - now).Milliseconds()
		}
		s.Roles = append(s.Roles, rs)
	}
	for _, m := range d.cfg.Members {
		ms := api.MemberStatus{ID: m.ID, Address: m.Address, Witness: m.Witness, Priority: m.Priority, LastSeenMS: -1}
		if m.ID == d.cfg.ID {
			ms.Self, ms.Reachable, ms.LastSeenMS = true, true, 0
		} else if p := d.peers[m.ID]; p != nil {
			p.mu.Lock()
			if p.lastSeen > 0 {
				ms.LastSeenMS = (now - p.lastSeen).Milliseconds()
			}
			ms.Reachable = d.reachable(p, now)
			ms.RTTMS = float64(p.rtt.Microseconds()) / 1000
			p.mu.Unlock()
		}
		s.Members = append(s.Members, ms)
	}
	s.Duplicates = d.duplicateStatus(now)
	s.MissingDrivers = d.missingRequired()
	s.SeedDrivers = d.seedStatus()
	slices.SortFunc(s.Members, func(a, b api.MemberStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return s
}

// Transfer hands leadership of the first role to target, or the best
// node when empty.
func (d *Daemon) Transfer(ctx context.Context, target string) error {
	return d.TransferRole(ctx, "", target)
}

// TransferRole hands leadership of the role named role (the first when
// empty) to target, or the best node when target is empty.
func (d *Daemon) TransferRole(ctx context.Context, role, target string) error {
	r := d.role(role)
	if r == nil {
		return fmt.Errorf("%w: no role %q; the roles are %s", api.ErrBadRequest, role, strings.Join(d.roleNames(), ", "))
	}
	var err error
	var master string
	if e := d.do(ctx, func(now time.Duration) {
		master = r.state.Master
		err = r.core.Transfer(now, target)
		if err == nil {
			d.log.Info("transferring leadership", "to", target, "role_name", r.name)
			d.rec.transfer(r, target)
		}
	}); e != nil {
		return e
	}
	switch {
	case errors.Is(err, election.ErrNotMaster):
		if master != "" {
			return fmt.Errorf("%w; the master is %s", api.ErrNotMaster, master)
		}
		return fmt.Errorf("%w, and no master is known", api.ErrNotMaster)
	case errors.Is(err, election.ErrUnknownNode):
		return fmt.Errorf("%w: %q", api.ErrUnknownTarget, target)
	case errors.Is(err, election.ErrNoTarget):
		return fmt.Errorf("%w: no other node is reachable and eligible", api.ErrNotEligible)
	case errors.Is(err, election.ErrBadTarget):
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return err
}

// localOnly refuses requests whose Host is a name other than localhost.
// The listener is on loopback, but a web page could still reach it through
// a DNS name rebound to 127.0.0.1; such a request carries that name.
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if _, err := netip.ParseAddr(host); err != nil && !strings.EqualFold(host, "localhost") {
			http.Error(w, `{"error":"requests must name this host by IP address or localhost"}`, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
