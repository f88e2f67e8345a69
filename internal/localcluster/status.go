package localcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/boottime"
	"github.com/clustd/clustd/node/api"
)

// nowFunc is the clock Kill reads: the daemons' own, so that a suite can
// set the reading beside their timestamps.
var nowFunc = boottime.Now

// Client is an API client for node i's local listener, with token as its
// bearer token (empty for the read-only calls).
func (c *Cluster) Client(i int, token string) *api.Client {
	return &api.Client{Addr: c.HTTP[i], Token: token, HTTP: c.client}
}

// Status reads node i's /v1/status, bounded to a second. It touches no
// mutable state of the cluster, so pollers may call it from their own
// goroutines.
func (c *Cluster) Status(ctx context.Context, i int) (*api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := c.Client(i, "").Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", c.IDs[i], err)
	}
	return st, nil
}

// Get fetches path from node i's local listener, bounded to two seconds,
// and fails unless the answer is 200 OK.
func (c *Cluster) Get(ctx context.Context, i int, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.HTTP[i]+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s: GET %s: %s: %s", c.IDs[i], path, resp.Status, body)
	}
	return body, nil
}

// Metrics scrapes node i's /metrics.
func (c *Cluster) Metrics(ctx context.Context, i int) ([]Metric, error) {
	b, err := c.Get(ctx, i, "/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(string(b)), nil
}

// Live returns the nodes whose daemon runs and is not paused.
func (c *Cluster) Live() []int {
	var live []int
	for i := range c.IDs {
		if c.Running(i) && !c.Paused(i) {
			live = append(live, i)
		}
	}
	return live
}

// Master returns the node that every one of nodes (every live node when
// none are given) names as master in the same term, provided that node is
// among them and itself reports the role with some lease left. ok is false
// when they do not all agree or one does not answer.
func (c *Cluster) Master(ctx context.Context, nodes ...int) (m int, st *api.Status, ok bool) {
	if len(nodes) == 0 {
		nodes = c.Live()
	}
	if len(nodes) == 0 {
		return -1, nil, false
	}
	sts := map[int]*api.Status{}
	var first *api.Status
	for _, i := range nodes {
		st, err := c.Status(ctx, i)
		if err != nil || st.Master == "" {
			return -1, nil, false
		}
		if first == nil {
			first = st
		} else if st.Master != first.Master || st.Term != first.Term {
			return -1, nil, false
		}
		sts[i] = st
	}
	m = c.Index(first.Master)
	st, answered := sts[m]
	if !answered || st.Role != driverproto.RoleMaster || st.LeaseMS <= 0 {
		return -1, nil, false
	}
	return m, st, true
}
