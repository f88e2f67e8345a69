package bench

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/localcluster"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// Cluster is a localcluster.Cluster with what the benchmarks read back
// from its configuration: the timing, and the secrets that drivers and
// admin requests need.
type Cluster struct {
	*localcluster.Cluster
	Timing election.Timing
	// DriversSecret authenticates drivers; Token authorises admin requests.
	DriversSecret []byte
	Token         string
}

// Proc is one run of one daemon.
type Proc = localcluster.Proc

// Metric is one sample of a daemon's /metrics.
type Metric = localcluster.Metric

// Find returns the value of the first sample named name whose labels
// include every pair of labels (key, value, key, value…), and whether there
// was one.
func Find(samples []Metric, name string, labels ...string) (float64, bool) {
	return localcluster.Find(samples, name, labels...)
}

// NewCluster writes the configuration of an n-node cluster into dir with
// `clustd init` (nodes named n1, n2, …) and loads it back. No daemon runs
// yet. Each of timing, KEY=VALUE such as heartbeat=100ms, is added to the
// files' timing section, overriding the profile (for experiments).
func NewCluster(ctx context.Context, bin, dir string, n int, profile string, timing ...string) (*Cluster, error) {
	lc, err := localcluster.New(ctx, localcluster.Options{Bin: bin, Dir: dir, Nodes: n, Profile: profile})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Cluster: lc}
	if err := c.load(profile, timing); err != nil {
		lc.Close()
		return nil, err
	}
	return c, nil
}

// load applies the timing overrides and reads the configuration back.
func (c *Cluster) load(profile string, timing []string) error {
	if len(timing) > 0 {
		if err := overrideTiming(c.Configs, profile, timing); err != nil {
			return err
		}
	}
	cfg, err := config.Load(c.Configs[0])
	if err != nil {
		return err
	}
	c.Timing = cfg.Timing
	c.DriversSecret = cfg.DriversSecret
	c.Token = cfg.AdminToken
	if c.Token == "" {
		c.Token = api.AdminToken(cfg.Secret)
	}
	return nil
}

// overrideTiming adds KEY: VALUE lines to the timing section that clustd
// init wrote into each file.
func overrideTiming(files []string, profile string, kvs []string) error {
	section := fmt.Sprintf("timing:\n  profile: %q\n", profile)
	add := section
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("timing override %q: want KEY=VALUE", kv)
		}
		add += fmt.Sprintf("  %s: %s\n", strings.TrimSpace(k), strings.TrimSpace(v))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), section) {
			return fmt.Errorf("%s: no timing section as clustd init writes it", f)
		}
		if err := os.WriteFile(f, []byte(strings.Replace(string(b), section, add, 1)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Admin returns an admin API client for node i.
func (c *Cluster) Admin(i int) *api.Client { return c.Client(i, c.Token) }
