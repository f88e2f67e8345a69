package node

import (
	"testing"

	"github.com/clustd/clustd/node/config"
)

// What the external tests (package node_test) may use of the in-process
// test cluster.

// TestCluster runs daemons in the test's process.
type TestCluster = inProcessCluster

// NewTestCluster starts n daemons whose configurations end with extra, which
// may continue the http section.
func NewTestCluster(t *testing.T, n int, extra string) *TestCluster {
	t.Helper()
	return newTestClusterYAML(t, n, extra)
}

// WaitMaster waits until the running daemons agree on a master other than
// not, and returns its index.
func (tc *inProcessCluster) WaitMaster(not int) int {
	tc.t.Helper()
	return tc.waitMaster(not)
}

// Daemon returns daemon i.
func (tc *inProcessCluster) Daemon(i int) *Daemon { return tc.daemons[i] }

// Config returns daemon i's configuration.
func (tc *inProcessCluster) Config(i int) *config.Config { return tc.cfgs[i] }

// ProtocolDriversConnected reports how many drivers of clustd's own
// protocol are connected to daemon i.
func (tc *inProcessCluster) ProtocolDriversConnected(i int) int {
	h := tc.daemons[i].hub
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// DialProtocolDriver connects a driver of clustd's own protocol to daemon i.
func (tc *inProcessCluster) DialProtocolDriver(i int, id string) error {
	_, err := dialDriver(tc.t, tc.daemons[i], tc.cfgs[i].DriversSecret, id, false)
	return err
}
