package node

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// RefusedError lists the fields a reload would have had to change but
// cannot while the daemon runs. The daemon keeps its old configuration.
type RefusedError struct {
	// Fields name the changed fields, as the configuration file spells
	// them, each with why it cannot change live.
	Fields []string
}

func (e *RefusedError) Error() string {
	return "configuration not reloaded, still running on the previous one: " + strings.Join(e.Fields, "; ")
}

// Reload applies a new configuration of the same node without a restart,
// and so without a failover: priorities and preemption. It refuses, with a
// *RefusedError and changing nothing, a configuration that differs in
// anything the cluster must agree on (members, timing) or that the daemon
// only reads at start. It returns the fields it changed. The log level is
// the caller's: the daemon does not own its logger.
func (d *Daemon) Reload(ctx context.Context, cfg *config.Config) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil, errStopped
	}
	old := d.cfg
	if refused := refusedChanges(old, cfg); len(refused) > 0 {
		return nil, &RefusedError{Fields: refused}
	}
	now := Monotonic()
	var changed []string
	prio := map[string]int{}
	for _, m := range cfg.Members {
		prio[m.ID] = m.Priority
	}
	for _, m := range old.Members {
		if m.Priority != prio[m.ID] {
			changed = append(changed, fmt.Sprintf("priority of member %s %d → %d", m.ID, m.Priority, prio[m.ID]))
		}
	}
	if len(changed) > 0 {
		if err := d.core.SetPriorities(now, prio); err != nil {
			return nil, err
		}
		for i, m := range old.Members {
			old.Members[i].Priority = prio[m.ID]
		}
		// Priorities are part of the hash peers compare when they connect:
		// new connections carry the new one, which nodes still on the old
		// file refuse until they are reloaded too. Sessions already up stay.
		d.hello.ClusterHash = old.MembersHash()
	}
	if old.Preempt != cfg.Preempt || old.PreemptHoldDown != cfg.PreemptHoldDown {
		if err := d.core.SetPreempt(now, cfg.Preempt, cfg.PreemptHoldDown); err != nil {
			return nil, err
		}
		if old.Preempt != cfg.Preempt {
			changed = append(changed, fmt.Sprintf("preempt.enabled %v → %v", old.Preempt, cfg.Preempt))
		}
		if old.PreemptHoldDown != cfg.PreemptHoldDown {
			changed = append(changed, fmt.Sprintf("preempt.hold_down %v → %v", old.PreemptHoldDown, cfg.PreemptHoldDown))
		}
		old.Preempt, old.PreemptHoldDown = cfg.Preempt, cfg.PreemptHoldDown
	}
	if old.LogLevel != cfg.LogLevel {
		changed = append(changed, fmt.Sprintf("log_level %s → %s", old.LogLevel, cfg.LogLevel))
		old.LogLevel = cfg.LogLevel
	}
	d.acted(now)
	d.notifyStatus()
	return changed, nil
}

// currentHello is the hello new sessions send; a reload may change it.
func (d *Daemon) currentHello() transport.Hello {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hello
}

// refusedChanges lists what differs between two configurations of a
// running node and cannot change live.
func refusedChanges(old, cfg *config.Config) []string {
	var out []string
	cluster := "must agree across the cluster: change every node's file, then restart the nodes one at a time"
	restart := "read only at start: restart the daemon to change it"
	if old.ID != cfg.ID {
		out = append(out, fmt.Sprintf("id (%s → %s): a different node; restart the daemon", old.ID, cfg.ID))
	}
	// By id: the order of the list does not matter to the cluster.
	olds := map[string]config.Member{}
	for _, m := range old.Members {
		olds[m.ID] = m
	}
	same := len(old.Members) == len(cfg.Members)
	for _, n := range cfg.Members {
		o, ok := olds[n.ID]
		switch {
		case !ok:
			same = false
		case o.Address != n.Address:
			out = append(out, fmt.Sprintf("address of member %s (%s → %s) %s", n.ID, o.Address, n.Address, cluster))
		case o.Witness != n.Witness:
			out = append(out, fmt.Sprintf("witness of member %s (%v → %v) %s", n.ID, o.Witness, n.Witness, cluster))
		}
	}
	if !same {
		out = append(out, fmt.Sprintf("members (%s → %s) %s", memberIDs(old), memberIDs(cfg), cluster))
	}
	if old.Timing != cfg.Timing {
		out = append(out, fmt.Sprintf("timing (%s → %s) %s", describeTiming(old.Timing), describeTiming(cfg.Timing), cluster))
	}
	if !bytes.Equal(old.Secret, cfg.Secret) {
		out = append(out, "secret_file (the secret changed) "+cluster)
	}
	for _, f := range []struct {
		name     string
		old, new any
	}{
		{"listen", old.Listen, cfg.Listen},
		{"advertise", old.Advertise, cfg.Advertise},
		{"data_dir", old.DataDir, cfg.DataDir},
		{"http.listen", old.HTTPListen, cfg.HTTPListen},
		{"log_format", old.LogFormat, cfg.LogFormat},
		{"demote_timeout", old.DemoteTimeout, cfg.DemoteTimeout},
	} {
		if f.old != f.new {
			out = append(out, fmt.Sprintf("%s (%v → %v) %s", f.name, f.old, f.new, restart))
		}
	}
	if !bytes.Equal(old.DriversSecret, cfg.DriversSecret) {
		out = append(out, "drivers_secret_file (the drivers secret changed) "+restart)
	}
	return append(out, refusedRoles(old, cfg)...)
}

// refusedRoles lists what a reload cannot change in a configuration with
// roles:. A reload changes priorities and preemption of the one role of a
// configuration without; with roles: a restart changes them, as it does
// the list itself.
func refusedRoles(old, cfg *config.Config) []string {
	if len(old.Roles) == 0 && len(cfg.Roles) == 0 {
		return nil
	}
	restart := "cannot change by a reload in a configuration with roles: change every node's file, then restart the nodes one at a time"
	var out []string
	if !reflect.DeepEqual(old.RoleList(), cfg.RoleList()) {
		out = append(out, fmt.Sprintf("roles (%s → %s) %s", strings.Join(roleNamesOf(old), ", "), strings.Join(roleNamesOf(cfg), ", "), restart))
	}
	prio := map[string]int{}
	for _, m := range cfg.Members {
		prio[m.ID] = m.Priority
	}
	for _, m := range old.Members {
		if p, ok := prio[m.ID]; ok && p != m.Priority {
			out = append(out, fmt.Sprintf("priority of member %s (%d → %d) %s", m.ID, m.Priority, p, restart))
		}
	}
	if old.Preempt != cfg.Preempt || old.PreemptHoldDown != cfg.PreemptHoldDown {
		out = append(out, "preempt "+restart)
	}
	return out
}

func roleNamesOf(c *config.Config) []string {
	var out []string
	for _, r := range c.RoleList() {
		out = append(out, r.Name)
	}
	return out
}

func memberIDs(c *config.Config) string {
	ids := make([]string, len(c.Members))
	for i, m := range c.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}

func describeTiming(t election.Timing) string {
	return fmt.Sprintf("heartbeat %v, election timeout %v–%v, rank step %v, drift %g", t.Heartbeat, t.ElectionMin, t.ElectionMax, t.Step, t.MaxClockDrift)
}
