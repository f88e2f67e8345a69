package bench

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/clustd/clustd/sim"
)

// SimConfig describes the simulator speed measurement.
type SimConfig struct {
	Nodes    int
	Profile  string
	Duration time.Duration
	// Runs is how many seeds to run (1, 2, …).
	Runs int
	Log  io.Writer
}

// RunSim runs the simulator with the default fault mix for Duration of
// simulated time, Runs times with different seeds, timing each run by the
// wall clock and by this process's CPU time (which a busy machine does not
// inflate).
func RunSim(ctx context.Context, sc SimConfig) (*SimResult, error) {
	log := sc.Log
	if log == nil {
		log = io.Discard
	}
	res := &SimResult{Nodes: sc.Nodes, Profile: sc.Profile, Faults: true, SimulatedS: sc.Duration.Seconds()}
	var walls []float64
	for k := range sc.Runs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		seed := uint64(k + 1)
		cpu0 := cpuTime()
		start := time.Now()
		r, err := sim.Run(sim.RunConfig{Nodes: sc.Nodes, Seed: seed, Duration: sc.Duration, Faults: true, Mix: sim.DefaultMix(), Profile: sc.Profile})
		wall := time.Since(start).Seconds()
		cpu := (cpuTime() - cpu0).Seconds()
		if err != nil {
			return res, err
		}
		res.Seeds = append(res.Seeds, seed)
		res.WallS = append(res.WallS, round3(wall))
		res.CPUS = append(res.CPUS, round3(cpu))
		res.Violations += len(r.Violations)
		walls = append(walls, wall)
		fmt.Fprintf(log, "  sim seed %d: %v of %d-node time in %.3f s (%.3f s CPU), %d violations\n", seed, sc.Duration, sc.Nodes, wall, cpu, len(r.Violations))
	}
	if len(walls) > 0 {
		res.MedianWallS = round3(median(walls))
		res.SimPerWallS = round3(res.SimulatedS / median(walls))
		res.SimPerCPUS = round3(res.SimulatedS / median(res.CPUS))
	}
	return res, nil
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
