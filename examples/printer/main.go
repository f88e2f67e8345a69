// Command printer is the smallest useful clustd driver: it prints a line
// every time its machine becomes or stops being the master.
//
//	printer --secret-file /etc/clustd/secret [--addr 127.0.0.1:3001] [--name printer]
//
// It prints "master of term N" on a promote and "standby (master is X)"
// otherwise, and logs the client's connection and lease events to stderr.
// Stop it with Ctrl-C or SIGTERM: if it was master, it prints its demote
// before it exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/clustd/clustd/driverclient"
)

func main() {
	addr := flag.String("addr", driverclient.DefaultAddr, "the daemon's local listener, host:port")
	secretFile := flag.String("secret-file", "", "the cluster secret file, or the drivers secret file if the daemon has one (required)")
	name := flag.String("name", "printer", "the driver's name; the daemon sees it with a random suffix")
	flag.Parse()
	if err := run(*addr, *secretFile, *name); err != nil {
		fmt.Fprintln(os.Stderr, "printer:", err)
		os.Exit(1)
	}
}

func run(addr, secretFile, name string) error {
	if secretFile == "" {
		return fmt.Errorf("--secret-file is required")
	}
	secret, err := driverclient.ReadSecretFile(secretFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := driverclient.Options{
		Addr:   addr,
		Secret: secret,
		Name:   name,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	return driverclient.Run(ctx, opts, driverclient.TriggerFunc(printState))
}

// printState is the driver: Trigger is only called on a change, so every
// call is worth a line.
func printState(_ context.Context, s driverclient.State) error {
	switch {
	case s.IsMaster:
		fmt.Printf("master of term %d\n", s.Term)
	case s.Master != "":
		fmt.Printf("standby (master is %s)\n", s.Master)
	default:
		fmt.Println("standby (master is unknown)")
	}
	return nil
}
