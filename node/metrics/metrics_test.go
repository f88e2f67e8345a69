package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFreshRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "n1")
	// Series with known label values exist from the start, at 0.
	const want = `
# HELP clustd_role 1 for the node's current role (master, follower or candidate), 0 for the others.
# TYPE clustd_role gauge
clustd_role{node="n1",role="candidate"} 0
clustd_role{node="n1",role="follower"} 0
clustd_role{node="n1",role="master"} 0
# HELP clustd_is_master 1 if this node is the master, else 0.
# TYPE clustd_is_master gauge
clustd_is_master{node="n1"} 0
# HELP clustd_lease_remaining_seconds Seconds left on the master's lease; 0 when not master.
# TYPE clustd_lease_remaining_seconds gauge
clustd_lease_remaining_seconds{node="n1"} 0
# HELP clustd_frames_dropped_total Peer frames dropped, incoming or outgoing, by reason.
# TYPE clustd_frames_dropped_total counter
clustd_frames_dropped_total{node="n1",reason="cluster_mismatch"} 0
clustd_frames_dropped_total{node="n1",reason="decode"} 0
clustd_frames_dropped_total{node="n1",reason="malformed"} 0
clustd_frames_dropped_total{node="n1",reason="oversized"} 0
clustd_frames_dropped_total{node="n1",reason="queue_full"} 0
clustd_frames_dropped_total{node="n1",reason="replayed"} 0
clustd_frames_dropped_total{node="n1",reason="unauthenticated"} 0
clustd_frames_dropped_total{node="n1",reason="unknown_peer"} 0
# HELP clustd_elections_total Elections this node started as a candidate.
# TYPE clustd_elections_total counter
clustd_elections_total{node="n1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"clustd_role", "clustd_is_master", "clustd_lease_remaining_seconds", "clustd_frames_dropped_total", "clustd_elections_total"); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"clustd_role", "clustd_term", "clustd_is_master", "clustd_lease_remaining_seconds",
		"clustd_elections_total", "clustd_master_changes_total", "clustd_auth_failures_total",
		"clustd_frames_dropped_total", "clustd_drivers_connected",
	}
	for _, n := range names {
		if c, err := testutil.GatherAndCount(reg, n); err != nil || c == 0 {
			t.Errorf("%s: %d series, %v", n, c, err)
		}
	}
}

func TestUpdates(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "n1")
	now := time.Unix(1000, 0)
	m.state.now = func() time.Time { return now }

	m.SetRole(RoleCandidate)
	m.Election()
	m.SetRole(RoleMaster)
	m.SetTerm(7)
	m.SetLease(1.5)
	m.MasterChange()
	m.MasterChange()
	m.AuthFailure()
	m.FrameDropped(DropReplayed)
	m.FrameDropped(DropReplayed)
	m.FrameDropped("something new")
	m.AddPeer("n3")
	n2 := m.Peer("n2")
	n2.Sent()
	n2.Sent()
	n2.Received()
	m.SetPeerReachable("n2", true)
	m.SetPeerReachable("n3", false)
	m.SetPeerRTT("n2", 0.0004)
	m.SetDrivers(2)
	now = now.Add(500 * time.Millisecond) // the lease counts down by itself

	const want = `
# HELP clustd_role 1 for the node's current role (master, follower or candidate), 0 for the others.
# TYPE clustd_role gauge
clustd_role{node="n1",role="candidate"} 0
clustd_role{node="n1",role="follower"} 0
clustd_role{node="n1",role="master"} 1
# HELP clustd_is_master 1 if this node is the master, else 0.
# TYPE clustd_is_master gauge
clustd_is_master{node="n1"} 1
# HELP clustd_lease_remaining_seconds Seconds left on the master's lease; 0 when not master.
# TYPE clustd_lease_remaining_seconds gauge
clustd_lease_remaining_seconds{node="n1"} 1
# HELP clustd_term The current election term.
# TYPE clustd_term gauge
clustd_term{node="n1"} 7
# HELP clustd_seed_drivers_connected Legacy 2018 (clustd-lib) drivers connected to this daemon. They hold no lease and acknowledge nothing: on an unplanned failover nothing stops them from acting until this daemon tells them; a planned hand-over only waits seed_driver_grace after they answer.
# TYPE clustd_seed_drivers_connected gauge
clustd_seed_drivers_connected{node="n1"} 0
# HELP clustd_elections_total Elections this node started as a candidate.
# TYPE clustd_elections_total counter
clustd_elections_total{node="n1"} 1
# HELP clustd_master_changes_total Times the master known to this node changed.
# TYPE clustd_master_changes_total counter
clustd_master_changes_total{node="n1"} 2
# HELP clustd_auth_failures_total Failed authentications of peers, drivers or admin requests.
# TYPE clustd_auth_failures_total counter
clustd_auth_failures_total{node="n1"} 1
# HELP clustd_frames_dropped_total Peer frames dropped, incoming or outgoing, by reason.
# TYPE clustd_frames_dropped_total counter
clustd_frames_dropped_total{node="n1",reason="cluster_mismatch"} 0
clustd_frames_dropped_total{node="n1",reason="decode"} 0
clustd_frames_dropped_total{node="n1",reason="malformed"} 0
clustd_frames_dropped_total{node="n1",reason="other"} 1
clustd_frames_dropped_total{node="n1",reason="oversized"} 0
clustd_frames_dropped_total{node="n1",reason="queue_full"} 0
clustd_frames_dropped_total{node="n1",reason="replayed"} 2
clustd_frames_dropped_total{node="n1",reason="unauthenticated"} 0
clustd_frames_dropped_total{node="n1",reason="unknown_peer"} 0
# HELP clustd_peer_messages_sent_total Messages sent to each peer.
# TYPE clustd_peer_messages_sent_total counter
clustd_peer_messages_sent_total{node="n1",peer="n2"} 2
clustd_peer_messages_sent_total{node="n1",peer="n3"} 0
# HELP clustd_peer_messages_received_total Messages received from each peer.
# TYPE clustd_peer_messages_received_total counter
clustd_peer_messages_received_total{node="n1",peer="n2"} 1
clustd_peer_messages_received_total{node="n1",peer="n3"} 0
# HELP clustd_peer_reachable 1 if an authenticated session to the peer is up and it was heard from within the election timeout, else 0.
# TYPE clustd_peer_reachable gauge
clustd_peer_reachable{node="n1",peer="n2"} 1
clustd_peer_reachable{node="n1",peer="n3"} 0
# HELP clustd_peer_rtt_seconds The last measured round trip to each peer.
# TYPE clustd_peer_rtt_seconds gauge
clustd_peer_rtt_seconds{node="n1",peer="n2"} 0.0004
# HELP clustd_drivers_connected Drivers connected to this daemon.
# TYPE clustd_drivers_connected gauge
clustd_drivers_connected{node="n1"} 2
# HELP clustd_driver_demote_overruns_total Driver demotes that did not finish within the time they were given: their declared demote time in a hand-over, the stop budget after a lost lease.
# TYPE clustd_driver_demote_overruns_total counter
clustd_driver_demote_overruns_total{node="n1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// The lease never goes negative, and losing the role clears it.
	now = now.Add(time.Hour)
	if v := sumGauge(t, reg, "clustd_lease_remaining_seconds"); v != 0 {
		t.Errorf("expired lease = %v", v)
	}
	m.SetLease(3)
	m.SetRole(RoleFollower)
	m.SetLease(0)
	if v := sumGauge(t, reg, "clustd_lease_remaining_seconds"); v != 0 {
		t.Errorf("lease after SetLease(0) = %v", v)
	}
	if v := sumGauge(t, reg, "clustd_is_master"); v != 0 {
		t.Errorf("is_master of a follower = %v", v)
	}
	m.SetRole("confused")
	if c := sumGauge(t, reg, "clustd_role"); c != 0 {
		t.Errorf("an unknown role should set every role series to 0, sum %v", c)
	}
}

func TestNewTwiceSharesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := New(reg, "n1")
	b := New(reg, "n1")
	a.Election()
	b.Election()
	if v := testutil.ToFloat64(b.elections); v != 2 {
		t.Errorf("elections = %v, want 2", v)
	}
	New(reg, "n2").Election() // another node in the same registry is separate
	if v := testutil.ToFloat64(a.elections); v != 2 {
		t.Errorf("n1 elections = %v after n2's, want 2", v)
	}
}

func TestUnregistered(t *testing.T) {
	m := New(nil, "n1")
	m.Election()
	if v := testutil.ToFloat64(m.elections); v != 1 {
		t.Errorf("elections = %v", v)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.SetRole(RoleMaster)
	m.SetTerm(1)
	m.SetLease(1)
	m.Election()
	m.MasterChange()
	m.AuthFailure()
	m.FrameDropped(DropDecode)
	m.AddPeer("p")
	m.Peer("p").Sent()
	m.Peer("p").Received()
	m.SetPeerReachable("p", true)
	m.SetPeerRTT("p", 1)
	m.SetDrivers(1)
}

func TestNewRegistry(t *testing.T) {
	reg := NewRegistry()
	New(reg, "n1")
	for _, n := range []string{"go_goroutines", "clustd_term"} {
		if c, err := testutil.GatherAndCount(reg, n); err != nil || c != 1 {
			t.Errorf("%s: %d series, %v", n, c, err)
		}
	}
}

// sumGauge adds up the values of every series of the gauge name.
func sumGauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
