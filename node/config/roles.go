package config

import (
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
	"go.yaml.in/yaml/v3"
)

// DefaultRole names the one role of a configuration without roles:. Its
// term and vote stay in DATA_DIR/state, where they were before roles
// existed, so an upgraded node keeps them.
const DefaultRole = "master"

// MaxRoles bounds the roles: list. Every role is one election, and a
// heartbeat frame carries them all.
const MaxRoles = 256

// maxRoleName is the longest role name: it is a directory name and a
// metric label value, and travels in status and driver messages.
const maxRoleName = 32

// roleKeys are the keys of one entry of roles:.
var roleKeys = []fieldKey[*rawRole]{
	{"name", func(p *parser, r *rawRole, _, v *yaml.Node, name string) error {
		if err := p.str(&r.name, v, name); err != nil || !r.name.set {
			return err
		}
		if !ValidRoleName(r.name.v) {
			return p.errAt(v, name, "%q is not a role name: use 1 to %d of the characters a-z A-Z 0-9 _ -, starting with a letter or digit", r.name.v, maxRoleName)
		}
		return nil
	}},
	{"priorities", func(p *parser, r *rawRole, _, v *yaml.Node, name string) error {
		prios, err := p.rolePriorities(v, name)
		r.priorities = prios
		return err
	}},
	{"preempt", func(p *parser, r *rawRole, _, v *yaml.Node, name string) error {
		return p.boolean(&r.preempt, v, name)
	}},
	{"hold_down", func(p *parser, r *rawRole, _, v *yaml.Node, name string) error {
		return p.duration(&r.holdDown, v, name, maxOtherDuration)
	}},
	{"stop_budget", func(p *parser, r *rawRole, _, v *yaml.Node, name string) error {
		return p.stopBudget(&r.stopBudget, v, name)
	}},
}

// Role is one singleton the cluster elects a holder for. Each role is an
// election of its own: its own term, vote, lease and master.
type Role struct {
	// Name is unique in the cluster; see ValidRoleName.
	Name string
	// Priorities ranks the members for this role, by member id. A member
	// the role does not list has its members[].priority.
	Priorities map[string]int
	// Preempt and PreemptHoldDown are preempt.enabled and
	// preempt.hold_down for this role; they default to those.
	Preempt         bool
	PreemptHoldDown time.Duration
	// StopBudget is this role's timing.stop_budget (its default).
	StopBudget time.Duration
}

// Priority is the priority of member id for the role.
func (r Role) Priority(id string) int { return r.Priorities[id] }

// RoleTiming is the cluster's timing with the role's stop budget.
func (c *Config) RoleTiming(r Role) election.Timing {
	t := c.Timing
	t.StopBudget = r.StopBudget
	return t
}

// ValidRoleName reports whether s may name a role: 1 to 32 of the
// characters a-z A-Z 0-9 _ -, starting with a letter or digit. A role's
// name is a directory under DATA_DIR/roles, so it has no dots or slashes.
func ValidRoleName(s string) bool {
	if len(s) < 1 || len(s) > maxRoleName || s[0] == '-' || s[0] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RoleList is the roles the cluster elects, never empty: Roles, or
// without roles: the one role DefaultRole made of the members' priorities,
// preempt and timing.stop_budget, as they are now (a reload may change
// them).
func (c *Config) RoleList() []Role {
	if len(c.Roles) > 0 {
		return c.Roles
	}
	prio := make(map[string]int, len(c.Members))
	for _, m := range c.Members {
		prio[m.ID] = m.Priority
	}
	return []Role{{Name: DefaultRole, Priorities: prio, Preempt: c.Preempt, PreemptHoldDown: c.PreemptHoldDown, StopBudget: c.Timing.StopBudget}}
}

// rawRole is one entry of roles: as written.
type rawRole struct {
	node       *yaml.Node
	name       field[string]
	priorities []rawPriority
	preempt    field[bool]
	holdDown   field[time.Duration]
	stopBudget field[time.Duration]
}

type rawPriority struct {
	id       string
	key      *yaml.Node
	priority field[int]
}

// roles reads the roles: list; names that must be members are checked by
// resolveRoles once the member list is known.
func (p *parser) roles(f *field[[]rawRole], k, v *yaml.Node) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return p.errAt(v, "roles", "must be a list of roles (each with a name), not %s", describe(v))
	}
	if len(v.Content) == 0 {
		return p.errAt(k, "roles", "the list is empty; leave roles out for the one role %q, or list each role with its name", DefaultRole)
	}
	if len(v.Content) > MaxRoles {
		return p.errAt(k, "roles", "%d roles; at most %d are supported", len(v.Content), MaxRoles)
	}
	names := map[string]int{}
	for i, item := range v.Content {
		name := indexField("roles", i)
		n := deref(item)
		if n == nil {
			return p.errAt(item, name, "alias could not be resolved")
		}
		if isNull(n) {
			return p.errAt(n, name, "empty entry; a role needs a name")
		}
		r := &rawRole{node: n}
		err := decodeKeys(p, n, name, roleKeys, r)
		if err != nil {
			return err
		}
		if !r.name.set {
			return p.errAt(orNode(r.name.n, n), name+".name", "required")
		}
		if j, dup := names[r.name.v]; dup {
			return p.errAt(r.name.n, name+".name", "%q is already the name of roles[%d]", r.name.v, j)
		}
		names[r.name.v] = i
		f.v = append(f.v, *r)
	}
	f.set = true
	return nil
}

// rolePriorities reads one role's priorities: {node: n}.
func (p *parser) rolePriorities(v *yaml.Node, name string) ([]rawPriority, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errAt(v, name, "must be a mapping of member ids to priorities (like n1: 100), not %s", describe(v))
	}
	var out []rawPriority
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, pv := deref(v.Content[i]), deref(v.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || pv == nil {
			return nil, p.errAt(v.Content[i], name, "keys must be member ids")
		}
		fname := joinField(name, k.Value)
		if first, dup := seen[k.Value]; dup {
			return nil, p.errAt(k, fname, "repeated; it was already set on line %d", first)
		}
		seen[k.Value] = k.Line
		rp := rawPriority{id: k.Value, key: k}
		if err := p.priority(&rp.priority, pv, fname); err != nil {
			return nil, err
		}
		if !rp.priority.set {
			return nil, p.errAt(pv, fname, "needs a priority from 0 to %d", MaxPriority)
		}
		out = append(out, rp)
	}
	return out, nil
}

// resolveRoles fills c.Roles: the roles: list with its defaults, or the
// one role DefaultRole made of the top-level settings.
func (p *parser) resolveRoles(r *rawConfig, c *Config) error {
	base := map[string]int{}
	for _, m := range c.Members {
		base[m.ID] = m.Priority
	}
	if !r.roles.set {
		return nil
	}
	var ids []string
	for _, m := range c.Members {
		ids = append(ids, m.ID)
	}
	for i, rr := range r.roles.v {
		role := Role{Name: rr.name.v, Priorities: map[string]int{}, Preempt: c.Preempt, PreemptHoldDown: c.PreemptHoldDown, StopBudget: c.Timing.StopBudget}
		for id, n := range base {
			role.Priorities[id] = n
		}
		for _, rp := range rr.priorities {
			if _, ok := base[rp.id]; !ok {
				return p.errAt(rp.key, joinField(indexField("roles", i)+".priorities", rp.id), "%q is not among the members (%s)", rp.id, strings.Join(ids, ", "))
			}
			role.Priorities[rp.id] = rp.priority.v
		}
		if rr.preempt.set {
			role.Preempt = rr.preempt.v
		}
		if rr.holdDown.set {
			role.PreemptHoldDown = rr.holdDown.v
		}
		if rr.stopBudget.set {
			role.StopBudget = rr.stopBudget.v
			if err := c.RoleTiming(role).Validate(); err != nil {
				return p.errAt(rr.stopBudget.n, indexField("roles", i)+".stop_budget", "%v", err)
			}
		}
		c.Roles = append(c.Roles, role)
	}
	return nil
}

// appendRolesHash adds the roles to the cluster hash. Only a configuration
// with roles: does, so a cluster without them keeps the hash it had
// before roles existed and mixed versions still agree. Order matters: a
// role travels on the wire as its index in the list. Preemption is left
// out, as the top-level preempt is: a node may change it by a reload.
func (c *Config) appendRolesHash(b []byte) []byte {
	if len(c.Roles) == 0 {
		return b
	}
	b = append(b, "roles v1\x00"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Roles)))
	ids := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	for _, r := range c.Roles {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Name)))
		b = append(b, r.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(r.StopBudget))
		for _, id := range ids {
			b = binary.BigEndian.AppendUint64(b, uint64(int64(r.Priority(id))))
		}
	}
	return b
}
