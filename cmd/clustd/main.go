// Command clustd is the cluster failover daemon and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

// exitError carries an exit status without calling os.Exit inside an action,
// so deferred cleanup still runs.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func newApp() *cli.App {
	return &cli.App{
		Name:    "clustd",
		Usage:   "keep a singleton service on exactly one machine of a cluster, and fail it over fast",
		Version: version,
		Description: "Each machine of a small cluster runs `clustd run`; the daemons elect one master\n" +
			"by consensus, and local drivers act on it. `clustd sim` runs the very same election\n" +
			"code under a seeded, fault-injecting network simulator.",
		Commands: []*cli.Command{
			runCommand(),
			initCommand(),
			importSeedCommand(),
			simCommand(),
			devCommand(),
			statusCommand(),
			transferCommand(),
			maintenanceCommand(),
			eventsCommand(),
			tokenCommand(),
			driverCommand(),
			checkCommand(),
			genCommand(),
		},
		HideHelpCommand: true,
		// For the completion scripts of clustd gen completion.
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {},
	}
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newApp().RunContext(ctx, args)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "clustd:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "clustd:", err)
	return 2
}
