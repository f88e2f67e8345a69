package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/sim"
)

func simCommand() *cli.Command {
	return &cli.Command{
		Name:  "sim",
		Usage: "run the election under the deterministic network simulator",
		Description: "Runs N election cores on a virtual clock and a simulated network, checking after\n" +
			"every event that there is one master per term, that no two nodes hold a lease at\n" +
			"the same instant and that terms never go back; after every heal a master must\n" +
			"appear within the liveness bound. The same seed gives the same output, byte for\n" +
			"byte. Exits with status 1 on any violation.\n\n" +
			"With --roles N, every node runs N independent elections (roles r0, r1, ...) over\n" +
			"the same network: a crash, pause or partition hits every role of a node at once.\n" +
			"Role r prefers node r mod the cluster size, and the seed also draws whether\n" +
			"preemption is on. Every check runs per role, porcupine included, and a violation\n" +
			"names its role.\n\n" +
			"Examples:\n" +
			"   clustd sim --nodes 5 --faults --seed 7\n" +
			"   clustd sim --roles 3 --faults --seed 7\n" +
			"   clustd sim --faults --duration 1h --profile fast --json",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 5, Usage: "cluster size (1 to 64)"},
			&cli.IntFlag{Name: "roles", Value: 1, Usage: fmt.Sprintf("independent elections (roles) per node, each checked on its own (1 to %d)", sim.MaxRoles)},
			&cli.Uint64Flag{Name: "seed", Usage: "seed for every random choice (default: drawn at random and printed)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Minute, Usage: "simulated time to run"},
			&cli.BoolFlag{Name: "faults", Usage: "inject the default fault mix (delay, loss, duplication, reordering, partitions, crashes, pauses, drift, transfers, maintenance)"},
			&cli.StringFlag{Name: "profile", Value: election.ProfileDefault, Usage: "timing profile: default or fast"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of the summary"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print the timeline as it happens"},
			&cli.BoolFlag{Name: "linearizability", Value: true, Usage: "check the leadership history with porcupine"},
			&cli.StringFlag{Name: "html", Usage: "where to write porcupine's visualisation if the history is not linearizable (default: clustd-sim-SEED.html in the temp dir; with --roles, one file per role: clustd-sim-SEED-r2.html)"},
		},
		Action: runSim,
	}
}

func runSim(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	if _, err := election.ProfileTiming(c.String("profile")); err != nil {
		return usageError(c, "--profile: "+err.Error())
	}
	nodes := c.Int("nodes")
	if nodes < 1 || nodes > 64 {
		return usageError(c, fmt.Sprintf("--nodes %d: must be between 1 and 64", nodes))
	}
	roles := c.Int("roles")
	if roles < 1 || roles > sim.MaxRoles {
		return usageError(c, fmt.Sprintf("--roles %d: must be between 1 and %d", roles, sim.MaxRoles))
	}
	d := c.Duration("duration")
	if d <= 0 {
		return usageError(c, fmt.Sprintf("--duration %v: must be positive", d))
	}
	seed := c.Uint64("seed")
	if !c.IsSet("seed") {
		seed = uint64(time.Now().UnixNano())
	}
	out := c.App.Writer
	if !c.Bool("json") {
		fmt.Fprintf(out, "seed %d\n", seed)
	}
	html := c.String("html")
	if html == "" {
		html = filepath.Join(os.TempDir(), fmt.Sprintf("clustd-sim-%d.html", seed))
	}
	rc := sim.RunConfig{
		Nodes:           nodes,
		Roles:           roles,
		Seed:            seed,
		Duration:        d,
		Faults:          c.Bool("faults"),
		Mix:             sim.DefaultMix(),
		Profile:         c.String("profile"),
		Linearizability: c.Bool("linearizability"),
		HTMLPath:        html,
	}
	if c.Bool("verbose") {
		rc.Verbose = out
	}
	res, err := sim.Run(rc)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := res.WriteJSON(out); err != nil {
			return err
		}
	} else {
		res.WriteSummary(out)
	}
	if !res.OK() {
		return &exitError{code: 1}
	}
	return nil
}

// usageError reports a bad flag or argument with the command's usage line.
func usageError(c *cli.Context, msg string) error {
	return &exitError{code: 2, msg: fmt.Sprintf("%s\nusage: %s %s [options]  (see --help)", msg, c.App.Name, c.Command.Name)}
}
