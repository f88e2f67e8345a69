package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Help texts of the series a role has.
const (
	termHelp          = "The current election term."
	electionsHelp     = "Elections this node started as a candidate."
	masterChangesHelp = "Times the master known to this node changed."
)

// NewRoles is New for a daemon that elects the roles named roleNames (at
// least one; "master" in a cluster without roles:). The series of a role
// (clustd_term, clustd_is_master, clustd_lease_remaining_seconds,
// clustd_elections_total, clustd_master_changes_total) carry a label role
// with its name, and clustd_role, whose label role already holds the
// node's part (master, follower or candidate), carries it as role_name.
// The methods of Metrics that set them act on the first role; Role(i)
// gives every role's.
func NewRoles(reg prometheus.Registerer, node string, roleNames []string) *Metrics {
	if len(roleNames) == 0 {
		roleNames = []string{"master"}
	}
	return newMetrics(reg, node, roleNames)
}

// RoleMetrics are the series of one role.
type RoleMetrics struct {
	name          string
	state         *rolesCollector
	term          prometheus.Gauge
	elections     prometheus.Counter
	masterChanges prometheus.Counter
}

// Role returns the series of role i of a Metrics made by NewRoles, or nil
// (which records nothing) for any other.
func (m *Metrics) Role(i int) *RoleMetrics {
	if m == nil || i < 0 || i >= len(m.roles) {
		return nil
	}
	return m.roles[i]
}

func (m *Metrics) addRoles(reg prometheus.Registerer, cl prometheus.Labels, names []string,
	gaugeVec func(name, help, label string) *prometheus.GaugeVec, counterVec func(name, help, label string) *prometheus.CounterVec) {
	rc := register(reg, newRolesCollector(cl, names))
	term := gaugeVec("term", termHelp, "role")
	elections := counterVec("elections_total", electionsHelp, "role")
	changes := counterVec("master_changes_total", masterChangesHelp, "role")
	for _, n := range names {
		m.roles = append(m.roles, &RoleMetrics{
			name:          n,
			state:         rc,
			term:          term.WithLabelValues(n),
			elections:     elections.WithLabelValues(n),
			masterChanges: changes.WithLabelValues(n),
		})
	}
}

// SetRole records the node's part in the role: RoleMaster, RoleFollower
// or RoleCandidate.
func (r *RoleMetrics) SetRole(role string) {
	if r == nil {
		return
	}
	r.state.set(r.name, func(s *roleState) { s.role = role })
}

// SetTerm records the role's term.
func (r *RoleMetrics) SetTerm(term uint64) {
	if r == nil {
		return
	}
	r.term.Set(float64(term))
}

// SetLease records the role's lease left, in seconds; 0 when not master.
func (r *RoleMetrics) SetLease(seconds float64) {
	if r == nil {
		return
	}
	r.state.set(r.name, func(s *roleState) {
		if !(seconds > 0) {
			s.deadline = time.Time{}
			return
		}
		seconds = min(seconds, 1e6)
		s.deadline = r.state.now().Add(time.Duration(seconds * float64(time.Second)))
	})
}

// Election counts an election of the role this node started.
func (r *RoleMetrics) Election() {
	if r != nil {
		r.elections.Inc()
	}
}

// MasterChange counts a change of the role's master.
func (r *RoleMetrics) MasterChange() {
	if r != nil {
		r.masterChanges.Inc()
	}
}

type roleState struct {
	role     string
	deadline time.Time
}

// rolesCollector is stateCollector with a label per role: every role's
// series from one snapshot.
type rolesCollector struct {
	roleDesc, isMasterDesc, leaseDesc *prometheus.Desc
	now                               func() time.Time
	names                             []string

	mu     sync.Mutex
	states map[string]*roleState
}

func newRolesCollector(cl prometheus.Labels, names []string) *rolesCollector {
	c := &rolesCollector{
		roleDesc:     prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "role"), "1 for the node's current part in the role role_name (master, follower or candidate), 0 for the others.", []string{"role", "role_name"}, cl),
		isMasterDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "is_master"), "1 if this node is the role's master, else 0.", []string{"role"}, cl),
		leaseDesc:    prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "lease_remaining_seconds"), "Seconds left on the master's lease of the role; 0 when not its master.", []string{"role"}, cl),
		now:          time.Now,
		names:        names,
		states:       map[string]*roleState{},
	}
	for _, n := range names {
		c.states[n] = &roleState{}
	}
	return c
}

func (c *rolesCollector) set(name string, f func(*roleState)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.states[name]; s != nil {
		f(s)
	}
}

// Describe implements prometheus.Collector.
func (c *rolesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.roleDesc
	ch <- c.isMasterDesc
	ch <- c.leaseDesc
}

// Collect implements prometheus.Collector.
func (c *rolesCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	snap := make([]roleState, len(c.names))
	for i, n := range c.names {
		snap[i] = *c.states[n]
	}
	c.mu.Unlock()
	now := c.now()
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for i, n := range c.names {
		s := snap[i]
		for _, r := range roles {
			ch <- prometheus.MustNewConstMetric(c.roleDesc, prometheus.GaugeValue, b(r == s.role), r, n)
		}
		ch <- prometheus.MustNewConstMetric(c.isMasterDesc, prometheus.GaugeValue, b(s.role == RoleMaster), n)
		lease := 0.0
		if !s.deadline.IsZero() {
			lease = max(0, s.deadline.Sub(now).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.leaseDesc, prometheus.GaugeValue, lease, n)
	}
}
