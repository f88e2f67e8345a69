package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rawFlags are the flags that parseFlags checks and completes after
// parsing.
type rawFlags struct {
	stages, nodes, profiles, idleBare string
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("clustd-bench", flag.ContinueOnError)
	o := &options{}
	raw := defineFlags(fs, o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.resolve(raw); err != nil {
		return nil, err
	}
	return o, nil
}

// defineFlags defines clustd-bench's flags on fs, storing into o those
// that need no checking and into the returned rawFlags the others.
func defineFlags(fs *flag.FlagSet, o *options) *rawFlags {
	raw := &rawFlags{}
	fs.BoolVar(&o.quick, "quick", false, "few trials and short windows, for a quick look")
	fs.StringVar(&o.out, "out", "bench/results.json", "where to write the JSON results (empty: nowhere)")
	fs.StringVar(&o.clustd, "clustd", "", "clustd executable to measure (default: build ./cmd/clustd)")
	fs.StringVar(&raw.stages, "stages", "transfer,failover,idle,driver-idle,sim,micro", "stages to run, comma-separated")
	fs.StringVar(&raw.nodes, "nodes", "3,5", "cluster sizes for the failover and transfer trials")
	fs.StringVar(&raw.profiles, "profiles", "default,fast", "timing profiles for the failover and transfer trials and the idle cluster")
	fs.IntVar(&o.failoverTrials, "trials", 0, "kills per cluster size and profile (default 30, quick 8)")
	fs.IntVar(&o.transferTrials, "transfer-trials", 0, "planned transfers per cluster size and profile (default 30, quick 8)")
	fs.DurationVar(&o.idle, "idle", 0, "idle measurement window (default 60s, quick 15s)")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "how long an idle cluster runs before the window opens")
	fs.StringVar(&raw.idleBare, "idle-bare", "", "also measure an idle default cluster with no drivers: true or false (default true, quick false)")
	fs.IntVar(&o.simRuns, "sim-runs", 0, "simulated hours to run (default 5, quick 2)")
	fs.IntVar(&o.microCount, "micro-count", 0, "-count for the Go micro-benchmarks (default 5, quick 1)")
	fs.BoolVar(&o.keep, "keep", false, "keep the clusters' directories (configuration, state, logs)")
	fs.Func("daemon-env", "KEY=VALUE added to every daemon's environment, for experiments (repeatable; recorded in the results)", keyValue(&o.env))
	fs.Func("timing", "KEY=VALUE added to every daemon's timing section, e.g. heartbeat=100ms, for experiments (repeatable; recorded in the results)", keyValue(&o.timing))
	fs.StringVar(&o.logLevel, "log-level", "", "the daemons' log level in the trials (debug shows every election step; use with -keep)")
	fs.StringVar(&o.overlay, "overlay", "", "build clustd (and clustd-prof) with go build -overlay FILE: measure a proposed change without editing the tree (recorded in the results)")
	fs.StringVar(&o.pprofDir, "pprof", "", "also run the idle default cluster under clustd-prof and write each daemon's CPU and allocation profiles here")
	return raw
}

// keyValue is a repeatable KEY=VALUE flag that appends to list.
func keyValue(list *[]string) func(string) error {
	return func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE")
		}
		*list = append(*list, v)
		return nil
	}
}

// resolve checks the raw flags into o and fills in the defaults, which
// depend on -quick.
func (o *options) resolve(raw *rawFlags) error {
	var err error
	if o.stages, err = parseStages(raw.stages); err != nil {
		return err
	}
	if o.nodes, err = parseNodes(raw.nodes); err != nil {
		return err
	}
	if o.profiles, err = parseProfiles(raw.profiles); err != nil {
		return err
	}
	pick := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	pick(&o.failoverTrials, 30, 8)
	pick(&o.transferTrials, 30, 8)
	pick(&o.simRuns, 5, 2)
	pick(&o.microCount, 5, 1)
	if o.idle <= 0 {
		o.idle = 60 * time.Second
		if o.quick {
			o.idle = 15 * time.Second
		}
	}
	switch raw.idleBare {
	case "":
		o.idleBare = !o.quick
	case "true", "false":
		o.idleBare = raw.idleBare == "true"
	default:
		return fmt.Errorf("-idle-bare %q: true or false", raw.idleBare)
	}
	return nil
}

func parseStages(list string) (map[string]bool, error) {
	stages := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "transfer", "failover", "idle", "driver-idle", "sim", "micro":
			stages[s] = true
		case "":
		default:
			return nil, fmt.Errorf("-stages: unknown stage %q (transfer, failover, idle, driver-idle, sim, micro)", s)
		}
	}
	return stages, nil
}

func parseNodes(list string) ([]int, error) {
	var nodes []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 9 {
			return nil, fmt.Errorf("-nodes: %q is not a cluster size from 2 to 9", s)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func parseProfiles(list string) ([]string, error) {
	var profiles []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p != "default" && p != "fast" {
			return nil, fmt.Errorf("-profiles: %q is not a timing profile (default, fast)", p)
		}
		profiles = append(profiles, p)
	}
	return profiles, nil
}
