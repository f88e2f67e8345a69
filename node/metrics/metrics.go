// Package metrics defines clustd's Prometheus metrics and the small methods
// through which the daemon updates them.
//
// Every metric carries the constant label node, so that several daemons
// sharing a process (tests, a development cluster) or a Prometheus job stay
// apart. Series whose label values are known in advance (roles, the reasons
// for dropping a frame) exist from the start with value 0, because a series
// that appears only on its first increment breaks rate() and alerts on
// absence.
package metrics

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every metric name.
const namespace = "clustd"

// Roles, the values SetRole accepts: the driver protocol's, which the
// status API also uses.
const (
	RoleMaster    = driverproto.RoleMaster
	RoleFollower  = driverproto.RoleFollower
	RoleCandidate = driverproto.RoleCandidate
)

var roles = []string{RoleMaster, RoleFollower, RoleCandidate}

// Reasons for dropping a peer frame, the values FrameDropped accepts.
const (
	// DropMalformed: the frame could not be parsed.
	DropMalformed = "malformed"
	// DropOversized: the frame exceeded the length limit.
	DropOversized = "oversized"
	// DropReplayed: the frame's sequence number was already seen.
	DropReplayed = "replayed"
	// DropUnauthenticated: the frame's authentication tag did not verify.
	DropUnauthenticated = "unauthenticated"
	// DropUnknownPeer: the sender is not a member.
	DropUnknownPeer = "unknown_peer"
	// DropClusterMismatch: the sender's member list or timing differs.
	DropClusterMismatch = "cluster_mismatch"
	// DropDecode: the frame authenticated but its message did not decode.
	DropDecode = "decode"
	// DropQueueFull: an outgoing frame found the peer's send queue full,
	// which happens while the peer is slow or unreachable.
	DropQueueFull = "queue_full"
	// DropOther counts reasons not listed above. The daemon should never
	// produce it; it exists so that a new reason cannot create an
	// unbounded number of series.
	DropOther = "other"
)

// Listeners, the values AcceptError and ConnectionsShed accept.
const (
	ListenerPeer = "peer"
	ListenerHTTP = "http"
)

var listeners = []string{ListenerPeer, ListenerHTTP}

var dropReasons = []string{
	DropMalformed, DropOversized, DropReplayed, DropUnauthenticated,
	DropUnknownPeer, DropClusterMismatch, DropDecode, DropQueueFull,
}

// Metrics holds one daemon's metrics. Its methods are safe for concurrent
// use. A nil *Metrics accepts every call and records nothing, so that code
// under test need not build one.
type Metrics struct {
	state *stateCollector

	term          prometheus.Gauge
	elections     prometheus.Counter
	masterChanges prometheus.Counter
	authFailures  prometheus.Counter
	framesDropped *prometheus.CounterVec
	peerSent      *prometheus.CounterVec
	peerReceived  *prometheus.CounterVec
	peerReachable *prometheus.GaugeVec
	peerRTT       *prometheus.GaugeVec
	drivers       prometheus.Gauge
	acceptErrors  *prometheus.CounterVec
	shed          *prometheus.CounterVec
	duplicates    prometheus.Counter
	seedDrivers   prometheus.Gauge
	overruns      prometheus.Counter
}

// New creates the metrics of the node with the given id and registers them
// with reg; a nil reg leaves them unregistered. Calling New twice with the
// same registry and node shares the metrics instead of failing, so that a
// daemon restarted inside one process keeps counting. New panics if reg
// refuses the metrics for another reason, which only a programming error
// can cause (a clashing metric of the same name).
func New(reg prometheus.Registerer, node string) *Metrics {
	cl := prometheus.Labels{"node": node}
	gauge := func(name, help string) prometheus.Gauge {
		return register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help, ConstLabels: cl}))
	}
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help, ConstLabels: cl}))
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help, ConstLabels: cl}, []string{label}))
	}
	gaugeVec := func(name, help, label string) *prometheus.GaugeVec {
		return register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help, ConstLabels: cl}, []string{label}))
	}
	m := &Metrics{
		state:         register(reg, newStateCollector(cl)),
		term:          gauge("term", "The current election term."),
		elections:     counter("elections_total", "Elections this node started as a candidate."),
		masterChanges: counter("master_changes_total", "Times the master known to this node changed."),
		authFailures:  counter("auth_failures_total", "Failed authentications of peers, drivers or admin requests."),
		framesDropped: counterVec("frames_dropped_total", "Peer frames dropped, incoming or outgoing, by reason.", "reason"),
		peerSent:      counterVec("peer_messages_sent_total", "Messages sent to each peer.", "peer"),
		peerReceived:  counterVec("peer_messages_received_total", "Messages received from each peer.", "peer"),
		peerReachable: gaugeVec("peer_reachable", "1 if an authenticated session to the peer is up and it was heard from within the election timeout, else 0.", "peer"),
		peerRTT:       gaugeVec("peer_rtt_seconds", "The last measured round trip to each peer.", "peer"),
		drivers:       gauge("drivers_connected", "Drivers connected to this daemon."),
		acceptErrors:  counterVec("accept_errors_total", "Failed accepts (such as running out of descriptors), by listener.", "listener"),
		shed:          counterVec("connections_shed_total", "Connections closed to keep within the connection limits, by listener.", "listener"),
		duplicates:    counter("duplicate_members_total", "Connections refused because another live instance already claims the member id."),
		seedDrivers:   gauge("seed_drivers_connected", seedDriversHelp),
		overruns:      counter("driver_demote_overruns_total", "Driver demotes that did not finish within the time they were given: their declared demote time in a hand-over, the stop budget after a lost lease."),
	}
	for _, l := range listeners {
		m.acceptErrors.WithLabelValues(l)
		m.shed.WithLabelValues(l)
	}
	for _, r := range dropReasons {
		m.framesDropped.WithLabelValues(r)
	}
	return m
}

// register registers c, or returns the collector already registered in its
// place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("metrics: registering clustd's metrics: %v", err))
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, ready for New: what the daemon serves at /metrics. A fresh
// registry instead of the global default keeps other packages' metrics, and
// test leftovers, out of clustd's.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// SetRole records the node's current role, one of RoleMaster, RoleFollower
// and RoleCandidate. Any other value sets every role series to 0.
func (m *Metrics) SetRole(role string) {
	if m == nil {
		return
	}
	m.state.setRole(role)
}

// SetTerm records the current election term.
func (m *Metrics) SetTerm(term uint64) {
	if m == nil {
		return
	}
	m.term.Set(float64(term))
}

// SetLease records the lease the master holds, in seconds from now; 0 when
// the node is not master. The metric counts down by itself until the next
// call, so a scrape between renewals sees the lease actually left.
func (m *Metrics) SetLease(seconds float64) {
	if m == nil {
		return
	}
	m.state.setLease(seconds)
}

// Election counts an election this node started.
func (m *Metrics) Election() {
	if m == nil {
		return
	}
	m.elections.Inc()
}

// MasterChange counts a change of the master this node knows of.
func (m *Metrics) MasterChange() {
	if m == nil {
		return
	}
	m.masterChanges.Inc()
}

// DemoteOverrun counts a driver demote that did not finish in time.
func (m *Metrics) DemoteOverrun() {
	if m == nil {
		return
	}
	m.overruns.Inc()
}

// AuthFailure counts a failed authentication of a peer, a driver or an
// admin request.
func (m *Metrics) AuthFailure() {
	if m == nil {
		return
	}
	m.authFailures.Inc()
}

// FrameDropped counts a dropped peer frame. reason is one of the Drop
// constants; any other value is counted as DropOther.
func (m *Metrics) FrameDropped(reason string) {
	if m == nil {
		return
	}
	known := false
	for _, r := range dropReasons {
		if r == reason {
			known = true
			break
		}
	}
	if !known {
		reason = DropOther
	}
	m.framesDropped.WithLabelValues(reason).Inc()
}

// AcceptError counts a failed accept on listener (ListenerPeer or
// ListenerHTTP).
func (m *Metrics) AcceptError(listener string) {
	if m == nil {
		return
	}
	m.acceptErrors.WithLabelValues(knownListener(listener)).Inc()
}

// ConnectionsShed counts n connections closed on listener to stay within
// its limits.
func (m *Metrics) ConnectionsShed(listener string, n int) {
	if m == nil {
		return
	}
	m.shed.WithLabelValues(knownListener(listener)).Add(float64(n))
}

// DuplicateMember counts a connection refused because another live
// instance of the same member id was already connected.
func (m *Metrics) DuplicateMember() {
	if m == nil {
		return
	}
	m.duplicates.Inc()
}

// knownListener keeps the listener label to its known values.
func knownListener(l string) string {
	if l == ListenerHTTP {
		return l
	}
	return ListenerPeer
}

// AddPeer creates the per-peer series of peer at their zero values, so that
// a peer that was never reachable shows up as 0 rather than not at all. The
// daemon calls it once per member at start.
func (m *Metrics) AddPeer(peer string) {
	if m == nil {
		return
	}
	m.peerSent.WithLabelValues(peer)
	m.peerReceived.WithLabelValues(peer)
	m.peerReachable.WithLabelValues(peer)
}

// PeerCounters are one peer's message counters, looked up once: the
// daemon counts every frame, and a label lookup per frame showed in its
// idle profile.
type PeerCounters struct {
	sent, received prometheus.Counter
}

// Peer returns peer's message counters. On a nil Metrics they count
// nothing.
func (m *Metrics) Peer(peer string) PeerCounters {
	if m == nil {
		return PeerCounters{}
	}
	return PeerCounters{sent: m.peerSent.WithLabelValues(peer), received: m.peerReceived.WithLabelValues(peer)}
}

// Sent counts a message sent.
func (c PeerCounters) Sent() {
	if c.sent != nil {
		c.sent.Inc()
	}
}

// Received counts a message received.
func (c PeerCounters) Received() {
	if c.received != nil {
		c.received.Inc()
	}
}

// SetPeerReachable records whether peer is reachable.
func (m *Metrics) SetPeerReachable(peer string, ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.peerReachable.WithLabelValues(peer).Set(v)
}

// SetPeerRTT records the last measured round trip to peer, in seconds.
func (m *Metrics) SetPeerRTT(peer string, seconds float64) {
	if m == nil {
		return
	}
	m.peerRTT.WithLabelValues(peer).Set(seconds)
}

// SetDrivers records the number of connected drivers.
func (m *Metrics) SetDrivers(n int) {
	if m == nil {
		return
	}
	m.drivers.Set(float64(n))
}

// stateCollector exports role, is_master and lease_remaining_seconds from
// one snapshot taken under a lock. Separate gauges would let a scrape that
// races with a role change see two roles at 1, or none, and a master whose
// is_master is 0.
type stateCollector struct {
	roleDesc, isMasterDesc, leaseDesc *prometheus.Desc
	now                               func() time.Time // replaced in tests

	mu       sync.Mutex
	role     string
	deadline time.Time // lease end; the zero time means no lease
}

func newStateCollector(cl prometheus.Labels) *stateCollector {
	return &stateCollector{
		roleDesc:     prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "role"), "1 for the node's current role (master, follower or candidate), 0 for the others.", []string{"role"}, cl),
		isMasterDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "is_master"), "1 if this node is the master, else 0.", nil, cl),
		leaseDesc:    prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "lease_remaining_seconds"), "Seconds left on the master's lease; 0 when not master.", nil, cl),
		now:          time.Now,
	}
}

func (c *stateCollector) setRole(role string) {
	c.mu.Lock()
	c.role = role
	c.mu.Unlock()
}

func (c *stateCollector) setLease(seconds float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !(seconds > 0) { // also catches NaN
		c.deadline = time.Time{}
		return
	}
	// Far beyond any real lease, and within time.Duration's range.
	seconds = min(seconds, 1e6)
	c.deadline = c.now().Add(time.Duration(seconds * float64(time.Second)))
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.roleDesc
	ch <- c.isMasterDesc
	ch <- c.leaseDesc
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	role, deadline := c.role, c.deadline
	c.mu.Unlock()
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for _, r := range roles {
		ch <- prometheus.MustNewConstMetric(c.roleDesc, prometheus.GaugeValue, b(r == role), r)
	}
	ch <- prometheus.MustNewConstMetric(c.isMasterDesc, prometheus.GaugeValue, b(role == RoleMaster))
	lease := 0.0
	if !deadline.IsZero() {
		lease = max(0, deadline.Sub(c.now()).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.leaseDesc, prometheus.GaugeValue, lease)
}
