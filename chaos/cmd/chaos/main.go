// Command chaos runs real clustd processes under a seeded fault schedule
// and checks what their drivers did: never two masters at once, terms only
// rising, a linearizable leadership history, a master soon after every
// heal, and the exec driver's command running on one node at a time.
//
//	go run ./chaos/cmd/chaos [--nodes 3] [--duration 2m] [--seed N] [--profile default|fast]
//	                         [--faults crash,pause,…] [--unsafe [--tries 4]] [--keep] [--loopback]
//
// It needs root for network namespaces and falls back to loopback without.
// CHAOS_DURATION, CHAOS_SEED and CHAOS_DIR stand in for the flags. It exits
// 1 when a promise was broken — or, with --unsafe, when the deliberately
// broken build was NOT caught within --tries runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/clustd/clustd/internal/fault"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/clustd/clustd/chaos"
)

func main() {
	os.Exit(run())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envInt is envOr for a number; a value that is not one is ignored.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// flags are the command line beyond what chaos.Config holds.
type flags struct {
	unsafe bool
	tries  int
	keep   bool
}

func run() int {
	cfg, fl, code := parseFlags(os.Args[1:])
	if code != 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if fl.unsafe {
		return selfTest(ctx, cfg, fl)
	}
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	fmt.Println()
	rep.Summary(os.Stdout)
	if rep.Failed() {
		return 1
	}
	return 0
}

// parseFlags reads the command line; a non-zero code is the exit status
// of a bad one, already explained on stderr.
func parseFlags(args []string) (chaos.Config, flags, int) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "cluster size, 3 to 9")
	durText := fs.String("duration", envOr("CHAOS_DURATION", "2m"), "how long to inject faults (env CHAOS_DURATION)")
	seedText := fs.String("seed", envOr("CHAOS_SEED", "0"), "the schedule's seed; 0 draws one (env CHAOS_SEED)")
	profile := fs.String("profile", "default", "timing profile: default or fast")
	faults := fs.String("faults", "", "comma-separated fault kinds to draw from (default: all): "+fault.Join(fault.ChaosKinds())+"; kill and oneway are old names of crash and one-way, partition is isolate and split")
	unsafe := fs.Bool("unsafe", false, "self-test: build clustd without stickiness and require the run to report an overlap")
	tries := fs.Int("tries", 4, "with --unsafe: how many seeds to try before giving up")
	keep := fs.Bool("keep", false, "keep the run's folder even when it passes")
	loopback := fs.Bool("loopback", false, "do not use network namespaces")
	noExec := fs.Bool("no-exec", false, "leave out the exec driver")
	roles := fs.Int("roles", envInt("CHAOS_ROLES", 1), "configure this many roles (r1, r2, …) and check each one's drivers for overlaps; faults and the other checks follow r1 (env CHAOS_ROLES)")
	dir := fs.String("dir", os.Getenv("CHAOS_DIR"), "where to make the run's folder (env CHAOS_DIR; default: the temporary directory)")
	quiet := fs.Bool("q", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return chaos.Config{}, flags{}, 2
	}
	dur, err := time.ParseDuration(*durText)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: --duration %q: %v\n", *durText, err)
		return chaos.Config{}, flags{}, 2
	}
	seed, err := strconv.ParseUint(*seedText, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: --seed %q: %v\n", *seedText, err)
		return chaos.Config{}, flags{}, 2
	}
	cfg := chaos.Config{
		Nodes: *nodes, Duration: dur, Seed: seed, Profile: *profile, Unsafe: *unsafe,
		Keep: *keep, Loopback: *loopback, NoExec: *noExec, Dir: *dir, Log: os.Stdout, Roles: *roles,
	}
	if *roles < 1 || *roles > 16 {
		fmt.Fprintf(os.Stderr, "chaos: --roles %d: must be 1 to 16\n", *roles)
		return chaos.Config{}, flags{}, 2
	}
	if *quiet {
		cfg.Log = nil
	}
	if *faults != "" {
		if cfg.Kinds, err = fault.ParseChaos(*faults); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: --faults:", err)
			return chaos.Config{}, flags{}, 2
		}
	}
	return cfg, flags{unsafe: *unsafe, tries: *tries, keep: *keep}, 0
}

// selfTest runs the build without stickiness on the faults where
// stickiness matters, a few seeds, stopping at the first run that catches
// the overlap: the checks pass only if they can fail.
func selfTest(ctx context.Context, cfg chaos.Config, fl flags) int {
	if cfg.Kinds == nil {
		cfg.Kinds = []fault.Kind{fault.Partial}
	}
	cfg.StopOnOverlap = true
	for try := 1; try <= fl.tries; try++ {
		if try > 1 {
			cfg.Seed++
		}
		rep, err := chaos.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		if cfg.Seed == 0 {
			cfg.Seed = rep.Seed
		}
		fmt.Println()
		rep.Summary(os.Stdout)
		if len(rep.Overlaps) > 0 {
			fmt.Printf("\nunsafe self-test: PASS — the build without stickiness was caught on try %d (%d overlaps; porcupine: %s)\n",
				try, len(rep.Overlaps), rep.Linearizable)
			// The failure was the point; its folder is kept only on request.
			if !fl.keep && rep.Dir != "" {
				os.RemoveAll(rep.Dir)
				fmt.Println("(the failure was expected, so its folder was removed after all; --keep keeps it, with the porcupine visualisation)")
			}
			return 0
		}
		fmt.Printf("\nunsafe self-test: no overlap on try %d of %d\n", try, fl.tries)
	}
	fmt.Printf("unsafe self-test: FAIL — %d runs of a build without stickiness reported no overlap\n", fl.tries)
	return 1
}
