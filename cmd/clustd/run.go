package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/sdnotify"
	"github.com/clustd/clustd/node/store"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run this machine's daemon",
		Description: "Starts the daemon described by the configuration file: it joins the other members,\n" +
			"takes part in electing the master, and serves drivers, the admin API and metrics on\n" +
			"its local listener. SIGTERM (or Ctrl-C) on the master hands leadership over before\n" +
			"exiting. SIGHUP (systemctl reload) re-reads the configuration file and applies, without\n" +
			"a failover, what may change live: log_level, members' priorities and preempt; it\n" +
			"refuses a file that changes anything else, names the fields, and keeps running on\n" +
			"the previous configuration.\n\n" +
			"The daemon runs Go code on one CPU at a time (GOMAXPROCS=1) unless the GOMAXPROCS\n" +
			"environment variable says otherwise: its work is microseconds per message, and one\n" +
			"processor spares an idle daemon the wake-ups of a second.\n\n" +
			"Example:\n" +
			"   clustd run --config /etc/clustd/clustd.yml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CLUSTD_CONFIG"}, Usage: "configuration file (see clustd init)", Required: true},
			&cli.StringFlag{Name: "log-format", Usage: "text or json (default: the file's log_format, else text)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: the file's log_level, else info)"},
		},
		Action: runDaemon,
	}
}

func runDaemon(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	node.LimitProcs()
	path := c.String("config")
	cfg, err := config.Load(path)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	format := cfg.LogFormat
	if c.IsSet("log-format") {
		format = c.String("log-format")
	}
	levelName := cfg.LogLevel
	if c.IsSet("log-level") {
		levelName = c.String("log-level")
	}
	var level slog.LevelVar
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return usageError(c, fmt.Sprintf("--log-level %q: expected debug, info, warn or error", levelName))
	}
	log, err := newLogger(c.App.ErrWriter, format, &level)
	if err != nil {
		return usageError(c, err.Error())
	}
	log = log.With("node", cfg.ID)

	d, err := node.New(cfg, log)
	if err != nil {
		var corrupt *store.CorruptError
		if errors.As(err, &corrupt) {
			return &exitError{code: 1, msg: err.Error()}
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %v", path, err)}
	}

	if d.Notify, err = sdnotify.FromEnv(); err != nil {
		log.Warn("not notifying the service manager", "err", err)
	}
	defer d.Notify.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			reload(c.Context, d, path, &level, log)
		}
	}()
	return d.Run(c.Context)
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: expected text or json", format)
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a new cluster's secret and one configuration file per member",
		Description: "Writes DIR/secret (mode 0600) and DIR/ID.yml for every member, each with its own\n" +
			"data directory (DIR/ID.data) and its own local listener (127.0.0.1:3001, :3002, … in\n" +
			"member order, so that members may share a host). Copy each file to its machine.\n\n" +
			"Example:\n" +
			"   clustd init --dir /tmp/c --members a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "directory to write to (created if missing)", Required: true},
			&cli.StringFlag{Name: "members", Usage: "ID=HOST:PORT[,ID=HOST:PORT…], the peer addresses", Required: true},
			&cli.StringSliceFlag{Name: "witness", Usage: "a member that votes but never becomes master (repeatable)"},
			&cli.StringFlag{Name: "profile", Value: "default", Usage: "timing profile: default or fast"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files, the secret included"},
			&cli.IntFlag{Name: "http-port", Value: 3001, Usage: "the first member's local listener port; the others count up from it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
			}
			res, err := config.Init(config.InitOptions{
				Dir:       c.String("dir"),
				Members:   c.String("members"),
				Witnesses: c.StringSlice("witness"),
				Profile:   c.String("profile"),
				Force:     c.Bool("force"),
				HTTPPort:  c.Int("http-port"),
			})
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			out := c.App.Writer
			fmt.Fprintf(out, "wrote %s\n", res.SecretFile)
			for _, n := range res.Nodes {
				fmt.Fprintf(out, "wrote %s\n", n.ConfigFile)
			}
			fmt.Fprintln(out, "\nstart each node with:")
			for _, n := range res.Nodes {
				fmt.Fprintf(out, "  %s    # %s, local listener %s\n", n.Command, n.ID, n.HTTPListen)
			}
			return nil
		},
	}
}
