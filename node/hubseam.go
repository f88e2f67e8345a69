package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/metrics"
)

// hubDaemon is what a hub needs of the daemon: to hand a demote's outcome
// and the drivers' health to the cores, to know which members are
// reachable, to find the hub of the role a driver chose, and to send an
// event to every role's drivers. The hub reaches nothing else of the
// daemon: not its fields, not its peers or their locks. *Daemon
// implements it.
type hubDaemon interface {
	// demoteDone and demoteUnconfirmed take the daemon's lock: a hub calls
	// them without its own held (the lock order is daemon, then hub).
	demoteDone(r *roleElection)
	demoteUnconfirmed(r *roleElection)
	// updateHealth takes every hub's lock in turn: a hub calls it without
	// its own held.
	updateHealth()
	// reachability reports, for each peer in order, whether it counts as
	// reachable at now.
	reachability(now time.Duration) []memberReach
	// hubOf returns the hub of the role named name, the first role's when
	// name is empty, or nil when the node has no such role.
	hubOf(name string) *hub
	roleNames() []string
	// event sends an event to the drivers of every role; it takes each
	// hub's lock in turn.
	event(kind, detail string)
}

// memberReach is whether a peer counts as reachable, as the daemon's
// reachable has it.
type memberReach struct {
	id string
	up bool
}

// hubJournal is what a hub tells the event journal: *recorder. Its hooks
// never block.
type hubJournal interface {
	driverConnected(c *driverConn)
	driverGone(c *driverConn, reason string)
	driverHealth(c *driverConn, ok bool, reason string)
	member(id string, back bool)
	// promoteAcked is called with the hub's lock held.
	promoteAcked(h *hub, c *driverConn, seq uint64)
}

// hubConfig is the part of the node's configuration a hub reads. None of
// it changes on a reload (reload.go refuses or ignores each).
type hubConfig struct {
	node string // this node's id
	path string // the configuration file, named in errors
	// demoteTimeout is the longest a driver may declare for its demote,
	// and the time of one that declares nothing.
	demoteTimeout time.Duration
	timing        election.Timing // the role's (Config.RoleTiming)
	secret        []byte          // the drivers' secret
	required      []string        // drivers.required
}

// hubDeps are a hub's collaborators.
type hubDeps struct {
	daemon  hubDaemon
	metrics *metrics.Metrics
	journal hubJournal
	// failLog limits the warnings about refused connections.
	failLog *burstLog
	drivers *driverRegistry
	log     *slog.Logger
}

// driverRegistry holds the ids of the drivers connected to any of the
// node's roles, which every role's hub shares: an id is unique on the node.
type driverRegistry struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newDriverRegistry() *driverRegistry {
	return &driverRegistry{ids: map[string]bool{}}
}

// add registers id, unless a driver of that id is connected already. It
// returns whether it did, and how many drivers are connected then.
func (g *driverRegistry) add(id string) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ids[id] {
		return false, len(g.ids)
	}
	g.ids[id] = true
	return true, len(g.ids)
}

// remove forgets id and returns how many drivers are connected then.
func (g *driverRegistry) remove(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.ids, id)
	return len(g.ids)
}

// count is how many drivers are connected.
func (g *driverRegistry) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ids)
}

// newRoleHub builds the hub of role r, wired to the daemon.
func (d *Daemon) newRoleHub(r *roleElection) *hub {
	log := d.log.With("component", "drivers")
	if len(d.roles) > 1 {
		log = log.With("role_name", r.name)
	}
	cfg := hubConfig{
		node:          d.cfg.ID,
		path:          d.cfg.Path,
		demoteTimeout: d.cfg.DemoteTimeout,
		timing:        d.cfg.RoleTiming(r.cfg),
		secret:        d.cfg.DriversSecret,
		required:      d.cfg.RequiredDrivers,
	}
	return newHub(cfg, r, hubDeps{
		daemon:  d,
		metrics: d.metrics,
		journal: d.rec,
		failLog: &d.failLog,
		drivers: d.drivers,
		log:     log,
	})
}

// hubOf returns the hub of the role named name, the first role's when
// name is empty, or nil.
func (d *Daemon) hubOf(name string) *hub {
	if r := d.role(name); r != nil {
		return r.hub
	}
	return nil
}

// reachability reports which peers count as reachable at now, in order,
// each read under its own lock.
func (d *Daemon) reachability(now time.Duration) []memberReach {
	out := make([]memberReach, 0, len(d.order))
	for _, p := range d.order {
		p.mu.Lock()
		up := d.reachable(p, now)
		p.mu.Unlock()
		out = append(out, memberReach{id: p.id, up: up})
	}
	return out
}
