// Command clustd-prof runs one clustd daemon exactly as `clustd run` does,
// under the Go profiler: it writes a CPU profile of a chosen window and
// allocation profiles at the window's start and end. clustd-bench -pprof
// runs an idle cluster of these to find where an idle daemon's time goes.
//
//	clustd-prof --config n1.yml --cpuprofile n1.cpu.pprof --allocprofile n1.alloc.pprof --after 10s --for 60s
//	go tool pprof -top n1.cpu.pprof
//	go tool pprof -sample_index=alloc_space -base n1.alloc.pprof.base -top n1.alloc.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
)

func main() {
	// Sample an allocation every 4 KiB on average rather than every 512
	// KiB: an idle daemon allocates little, and the default rate would
	// record only a handful of samples in a minute.
	runtime.MemProfileRate = 4096
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "clustd-prof:", err)
		os.Exit(1)
	}
}

func run() error {
	cfgPath := flag.String("config", "", "the daemon's configuration file")
	cpuPath := flag.String("cpuprofile", "", "write the CPU profile of the window here")
	allocPath := flag.String("allocprofile", "", "write the allocation profile at the window's end here, and at its start to this name plus .base")
	after := flag.Duration("after", 10*time.Second, "start of the window, from start-up")
	length := flag.Duration("for", time.Minute, "length of the window")
	flag.Parse()
	if *cfgPath == "" {
		return fmt.Errorf("--config is required")
	}
	node.LimitProcs() // as clustd run does
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.ID)
	d, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		if err := profile(ctx, *cpuPath, *allocPath, *after, *length); err != nil {
			log.Error("profiling failed", "err", err)
		}
	}()
	return d.Run(ctx)
}

// profile waits for the window and records it.
func profile(ctx context.Context, cpuPath, allocPath string, after, length time.Duration) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(after):
	}
	if allocPath != "" {
		if err := writeProfile("allocs", allocPath+".base"); err != nil {
			return err
		}
	}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(length):
	}
	if cpuPath != "" {
		pprof.StopCPUProfile()
	}
	if allocPath != "" {
		return writeProfile("allocs", allocPath)
	}
	return nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
