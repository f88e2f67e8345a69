package node

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/store"
)

// roleElection is one role this node takes part in: an election core of
// its own with its own persisted term and vote, the last state it
// published, and the hub that serves the drivers that chose it. Roles
// share everything else: peers, sessions, the lock and the timer.
type roleElection struct {
	idx  int
	name string
	// cfg is the role's configuration. Daemon.cfg, the node's, hides it
	// in the daemon: the first role's is d.roleElection.cfg.
	cfg config.Role
	// core, store, state and roleSince are guarded by the daemon's mu.
	core      *election.Node
	store     stateStore
	statePath string
	state     election.State
	roleSince time.Duration
	// leaving: this role was master when the daemon began to stop, and
	// the stop waits for it to be handed over.
	leaving bool
	hub     *hub
}

// roleDir is where role name keeps its term and vote: the data directory
// itself for config.DefaultRole, so that a node upgraded from before roles
// existed keeps its vote, and DATA_DIR/roles/NAME for any other. A role's
// files are its own: a damaged one is never read for, or written by,
// another role.
func roleDir(dataDir, name string) string {
	if name == config.DefaultRole {
		return dataDir
	}
	return filepath.Join(dataDir, "roles", name)
}

// openRoles opens every role's state file and builds its core. A state
// file that cannot be trusted stops the start-up, naming the role and the
// file: starting the other roles alone would hide the damage, and the
// damaged role's vote cannot be recovered by guessing. Nothing is written
// to any role's file before all have been read. On error every store
// opened so far is closed again.
func openRoles(cfg *config.Config, now time.Duration) (roles []*roleElection, err error) {
	defer func() {
		if err != nil {
			for _, r := range roles {
				r.store.Close()
			}
			roles = nil
		}
	}()
	for i, rc := range cfg.RoleList() {
		dir := roleDir(cfg.DataDir, rc.Name)
		st, hs, err := store.Open(dir)
		if err != nil {
			if len(cfg.Roles) > 0 {
				return roles, fmt.Errorf("role %s: %w", rc.Name, err)
			}
			return roles, err
		}
		r := &roleElection{idx: i, name: rc.Name, cfg: rc, store: st, statePath: filepath.Join(dir, "state")}
		roles = append(roles, r)
		r.core, err = newCore(cfg, rc, hs, now)
		if err != nil {
			return roles, err
		}
	}
	return roles, nil
}

// role returns the role named name, the first role when name is empty,
// or nil.
func (d *Daemon) role(name string) *roleElection {
	if name == "" {
		return d.roles[0]
	}
	for _, r := range d.roles {
		if r.name == name {
			return r
		}
	}
	return nil
}

// roleNames lists the roles' names, in order.
func (d *Daemon) roleNames() []string {
	out := make([]string, len(d.roles))
	for i, r := range d.roles {
		out[i] = r.name
	}
	return out
}

// nextDeadline is when the timer must next fire for the roles' cores.
// With several roles, when the earliest deadline is a master's, the other
// masters' deadlines within coalesceWindow of it are served together, at
// the latest of them: those roles then send their heartbeats in the same
// tick, and so in one frame per peer, and stay in step from then on.
// Firing a master's timer a little late is safe (a heartbeat comes later,
// the lease it renews is shorter for it); never beyond a lease's end,
// which is served on time. Followers' timers are never delayed: they
// decide how fast a failover is.
func (d *Daemon) nextDeadline() time.Duration {
	first, firstMaster := time.Duration(1<<62), false
	for _, r := range d.roles {
		if n := r.core.NextDeadline(); n < first {
			first, firstMaster = n, r.state.Role == election.Master
		}
	}
	if len(d.roles) == 1 || !firstMaster {
		return first
	}
	limit := first + d.coalesceWindow()
	for _, r := range d.roles {
		st := r.state
		switch {
		case st.Role != election.Master:
			// Not past any follower's or candidate's deadline.
			limit = min(limit, max(r.core.NextDeadline(), first))
		case st.LeaseUntil > 0:
			limit = min(limit, max(st.LeaseUntil, first))
		}
	}
	dl := first
	for _, r := range d.roles {
		if n := r.core.NextDeadline(); r.state.Role == election.Master && n <= limit {
			dl = max(dl, n)
		}
	}
	return dl
}

// coalesceWindow is how late a master's timer may fire to share a tick
// with another role's: half a heartbeat, so that masters of any offset
// fall in step within one heartbeat round.
func (d *Daemon) coalesceWindow() time.Duration { return d.cfg.Timing.Heartbeat / 2 }
