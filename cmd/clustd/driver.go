package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/drivers/common"
	"github.com/clustd/clustd/drivers/execdriver"
	"github.com/clustd/clustd/drivers/shelldriver"
	"github.com/clustd/clustd/drivers/webhook"
	"github.com/clustd/clustd/internal/secretfile"
	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
)

// webhookFlushTimeout bounds how long a stopping webhook driver keeps
// posting what is still queued, its own final demote included.
const webhookFlushTimeout = 5 * time.Second

// maxDriverName leaves room in the 96-character driver id for the dash and
// 8 hex digits the client library appends.
const maxDriverName = 96 - 9

func driverCommand() *cli.Command {
	return &cli.Command{
		Name:  "driver",
		Usage: "run a built-in driver: a command, scripts or a webhook that follow this node's role",
		Description: "A driver connects to the daemon on its own machine and acts whenever the machine\n" +
			"becomes or stops being the master. Run one per machine, beside `clustd run`, under\n" +
			"the same service manager. Every driver needs the daemon's address and the drivers\n" +
			"secret: --config names the node's configuration and takes both from it; otherwise\n" +
			"give --secret-file (and --addr unless the daemon listens on " + config.DefaultHTTPListen + ").\n\n" +
			"When the daemon is unreachable the driver keeps reconnecting; a driver acting as\n" +
			"master demotes itself when its lease runs out, daemon or not. SIGTERM or Ctrl-C\n" +
			"demotes it (stops the command, runs on-standby) and exits with status 0.",
		Subcommands: []*cli.Command{
			driverExecCommand(),
			driverShellCommand(),
			driverWebhookCommand(),
			driverFileCommand(),
			driverNotifyCommand(),
			driverVIPCommand(),
			driverCheckCommand(),
		},
		// A driver, like the daemon, waits and reacts: one processor for
		// Go code spares the runtime a second thread woken after every
		// message (a master's drivers get several renewals a second).
		// GOMAXPROCS in the environment still wins.
		Before: func(*cli.Context) error {
			node.LimitProcs()
			return nil
		},
		HideHelpCommand: true,
	}
}

// driverFlags are the flags every driver has: how to reach the daemon, who
// the driver is, and logging.
func driverFlags(name string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CLUSTD_CONFIG"},
			Usage: "the node's configuration file: the daemon is at its http.listen, and the drivers secret is its drivers_secret_file (else its secret_file)",
		},
		&cli.StringFlag{
			Name: "addr", EnvVars: []string{"CLUSTD_ADDR"},
			Usage: "the daemon's local listener as HOST:PORT, instead of the configuration's http.listen (default without --config: " + config.DefaultHTTPListen + ")",
		},
		&cli.StringFlag{
			Name:  "secret-file",
			Usage: "the drivers secret (the cluster secret unless the daemon has a drivers_secret_file), instead of the one --config names",
		},
		&cli.StringFlag{Name: "name", Value: name, Usage: "what this driver does, as the daemon's logs and status name it (a random suffix is added)"},
		&cli.StringFlag{Name: "role", EnvVars: []string{"CLUSTD_DRIVER_ROLE"}, Usage: "the role this driver serves, in a cluster with roles: (default: the first role)"},
		&cli.BoolFlag{Name: "required", Usage: "declare the driver required; only the node's drivers.required makes it so (list its --name there): then the node is ineligible for master while it is not connected or reports itself unhealthy"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
	}
}

func driverExecCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command only while this node is master",
		ArgsUsage: "-- CMD [ARGS…]",
		Description: "Starts CMD when the node becomes master and stops it when the node stops being\n" +
			"master: a service that must never run on two machines at once. CMD runs in a\n" +
			"cgroup v2 of its own when the driver may create one (as root, or in a delegated\n" +
			"subtree such as systemd's Delegate=yes), so that stopping reaches everything CMD\n" +
			"started, even what left its process group with setsid; elsewhere it runs in a\n" +
			"process group of its own, and the driver says so when it starts. Stopping sends\n" +
			"--stop-signal to every process, then SIGKILL after --stop-timeout, and a demote is\n" +
			"confirmed only once no process is left. The driver declares --stop-timeout plus\n" +
			"5s (the wait after SIGKILL) as its demote time: on a planned hand-over the daemon\n" +
			"keeps the role that long at most, and it refuses a driver that declares more than\n" +
			"its demote_timeout (with --config the driver checks that itself at start-up). If\n" +
			"the daemon goes silent, CMD is stopped when the lease runs out, and killed if it\n" +
			"is still running shortly before the cluster's stop budget is spent, whatever\n" +
			"--stop-timeout says: the next master may start then.\n\n" +
			"If CMD exits by itself while the node is still master, it is restarted after 1s,\n" +
			"then 2s, 4s, … up to 30s. While it keeps dying within 10s of its start the driver\n" +
			"reports itself unhealthy with the exit status; if drivers.required names it, that makes\n" +
			"the node ineligible, and the daemon hands the role to another machine. The driver is healthy\n" +
			"again once CMD stays up for 10s, or once the node is no longer master.\n\n" +
			"Should the driver itself be killed with SIGKILL, the kernel kills CMD (though not\n" +
			"what CMD started) with it: nothing would stop it at the end of the lease. The\n" +
			"next exec driver to start on the machine kills what is left in its cgroups.\n\n" +
			"CMD gets CLUSTD_ROLE (master), CLUSTD_TERM (the fencing token), CLUSTD_MASTER,\n" +
			"CLUSTD_NODE and CLUSTD_REASON in its environment, and the driver's stdout and\n" +
			"stderr. Put the driver's own flags before --.\n\n" +
			"Examples:\n" +
			"   clustd driver exec --config /etc/clustd/clustd.yml -- /usr/sbin/mysvc --foreground --config /etc/mysvc.conf\n" +
			"   clustd driver exec --config /etc/clustd/clustd.yml --required --stop-signal INT --stop-timeout 20s -- \\\n" +
			"       /usr/local/bin/scheduler --fencing-token-from-env CLUSTD_TERM",
		Flags: append(driverFlags("exec"),
			&cli.StringFlag{Name: "stop-signal", Value: "TERM", Usage: "the signal that asks CMD to stop: TERM, INT, HUP, QUIT, USR1, USR2, WINCH or a number"},
			&cli.DurationFlag{Name: "stop-timeout", Value: execdriver.DefaultStopTimeout, Usage: "how long CMD gets to exit after the stop signal before it is killed with SIGKILL"},
		),
		Action: runDriverExec,
	}
}

func driverShellCommand() *cli.Command {
	return &cli.Command{
		Name:  "shell",
		Usage: "run a script when this node becomes master, another when it stops being master",
		Description: "The classic start/stop scripts of a failover setup. --on-master runs when the node\n" +
			"becomes master; --on-standby runs when it stops being master, and also once at\n" +
			"start-up if the node is not master then, so that the machine begins in a known\n" +
			"state. Nothing runs on other changes (a new master elsewhere, a follower becoming\n" +
			"candidate). Both are required; for one that does nothing, write true.\n\n" +
			"Each runs as /bin/sh -c SCRIPT with CLUSTD_ROLE (master, follower or candidate),\n" +
			"CLUSTD_TERM (the fencing token), CLUSTD_MASTER, CLUSTD_NODE and CLUSTD_REASON in its\n" +
			"environment, never two at once, and its output is logged line by line. A script\n" +
			"that exits non-zero, or runs past --timeout (its whole process group is then\n" +
			"killed), is reported to the daemon as failed and makes the driver unhealthy until\n" +
			"a later script succeeds; if drivers.required names it, the node is ineligible meanwhile. A failed\n" +
			"on-master is not repeated for the same term; a failed on-standby runs again at the\n" +
			"next change. If the lease runs out while on-master runs, it is killed and\n" +
			"on-standby follows.\n\n" +
			"On a planned hand-over (transfer, maintenance, SIGTERM) the daemon keeps the\n" +
			"master role, so that no other node starts, until on-standby has finished. The\n" +
			"driver declares --timeout as its demote time, which must not exceed the daemon's\n" +
			"demote_timeout (with --config the driver checks that at start-up). When the lease\n" +
			"runs out instead, on-standby must be done before the cluster's stop budget is\n" +
			"spent: one still running shortly before is killed with its whole process group,\n" +
			"and counts as failed.\n\n" +
			"Examples:\n" +
			"   clustd driver shell --config /etc/clustd/clustd.yml \\\n" +
			"       --on-master 'ip addr add 10.0.0.100/24 dev eth0' \\\n" +
			"       --on-standby 'ip addr del 10.0.0.100/24 dev eth0 || true'\n" +
			"   clustd driver shell --config /etc/clustd/clustd.yml --required --timeout 5s \\\n" +
			"       --on-master 'systemctl start mysvc' --on-standby 'systemctl stop mysvc'",
		Flags: append(driverFlags("shell"),
			&cli.StringFlag{Name: "on-master", Usage: "the script to run when this node becomes master"},
			&cli.StringFlag{Name: "on-standby", Usage: "the script to run when this node stops being master, and at start-up if it is not master"},
			&cli.DurationFlag{Name: "timeout", Value: shelldriver.DefaultTimeout, Usage: "how long a script may run before its process group is killed and it counts as failed"},
		),
		Action: runDriverShell,
	}
}

func driverWebhookCommand() *cli.Command {
	return &cli.Command{
		Name:  "webhook",
		Usage: "post this node's role changes, and optionally its events, to a URL",
		Description: "POSTs a JSON object for every change of this node's role, term or master:\n" +
			"   {\"type\":\"role\",\"node\":\"a\",\"role\":\"master\",\"term\":7,\"master\":\"a\",\"reason\":\"elected\",\"at\":\"2025-01-02T15:04:05.123Z\"}\n" +
			"(with \"local\":true when the driver demoted itself because the lease ran out), and\n" +
			"with --events all also the daemon's event stream (elections, members lost and back,\n" +
			"driver health):\n" +
			"   {\"type\":\"event\",\"node\":\"a\",\"term\":7,\"kind\":\"member_lost\",\"detail\":\"b\",\"at\":\"…\"}\n" +
			"and with --events failover or all one failover record per change of master, posted by\n" +
			"the new master's driver only:\n" +
			"   {\"type\":\"failover\",\"node\":\"b\",\"term\":8,\"from\":\"a\",\"to\":\"b\",\"cause\":\"master_lost\",\"no_master_ms\":812,…}\n\n" +
			"Failover never waits for the endpoint: notifications are queued and posted in order\n" +
			"in the background. Network errors, 5xx, 408 and 429 are retried with exponential\n" +
			"backoff, 4 attempts in all; other statuses are not. When --queue notifications are\n" +
			"waiting, the oldest is dropped (and logged) to make room. Each node posts its own\n" +
			"view, so run the driver on every machine and expect each change from several.\n\n" +
			"Examples:\n" +
			"   clustd driver webhook --config /etc/clustd/clustd.yml --url https://hooks.example.com/clustd\n" +
			"   clustd driver webhook --config /etc/clustd/clustd.yml --url https://alerts.example.com/in \\\n" +
			"       --events all --header 'Authorization: Bearer s3cret'",
		Flags: append(driverFlags("webhook"),
			&cli.StringFlag{Name: "url", Usage: "the http:// or https:// URL to post to (it shows in ps: a URL that holds a token belongs in --url-file)"},
			&cli.StringFlag{Name: "url-file", Usage: "a file holding the URL, readable by its owner only, to keep a token in the URL out of the process list"},
			&cli.StringFlag{Name: "events", Value: "role", Usage: "role: role changes only; failover: also the failover records this node makes as the new master; all: also the daemon's whole event stream"},
			&cli.GenericFlag{Name: "header", Value: &headerFlag{}, Usage: "a header to send with every request, as 'Name: value' (repeatable)"},
			&cli.DurationFlag{Name: "timeout", Value: webhook.DefaultTimeout, Usage: "how long one attempt may take"},
			&cli.IntFlag{Name: "queue", Value: webhook.DefaultQueue, Usage: "how many notifications may wait; beyond that the oldest is dropped"},
		),
		Action: runDriverWebhook,
	}
}

// headerFlag collects --header values. It is a flag.Value of its own
// because urfave/cli splits string slices at commas, and header values
// hold commas.
type headerFlag struct{ h http.Header }

// Set adds one "Name: value" header.
func (f *headerFlag) Set(s string) error {
	name, value, err := webhook.ParseHeader(s)
	if err != nil {
		return err
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(name, value)
	return nil
}

// String lists the header names only: the values may be credentials, and
// the help text prints this.
func (f *headerFlag) String() string {
	if f == nil || len(f.h) == 0 {
		return ""
	}
	var names []string
	for k := range f.h {
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

func runDriverExec(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return driverUsageError(c, "no command to run: give it after --, as in "+c.Command.HelpName+" --config FILE -- /usr/sbin/mysvc --foreground")
	}
	sig, err := execdriver.ParseSignal(c.String("stop-signal"))
	if err != nil {
		return driverUsageError(c, "--stop-signal: "+err.Error())
	}
	if c.Duration("stop-timeout") <= 0 {
		return driverUsageError(c, fmt.Sprintf("--stop-timeout %v: must be positive", c.Duration("stop-timeout")))
	}
	opts, log, limit, err := driverSetup(c)
	if err != nil {
		return err
	}
	if err := limit.check(c, c.Duration("stop-timeout")+common.KillWait, fmt.Sprintf("--stop-timeout %v plus the %v wait after SIGKILL", c.Duration("stop-timeout"), common.KillWait)); err != nil {
		return err
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		// Not fatal: the command may live on storage only the master
		// mounts, and it is looked up again at every start.
		log.Warn("the command is not there now; it will be looked for again when this node becomes master", "err", err)
	}
	var client *driverclient.Client
	d, err := execdriver.New(execdriver.Options{
		Command:     args,
		StopSignal:  sig,
		StopTimeout: c.Duration("stop-timeout"),
		Stdout:      fileOf(c.App.Writer),
		Stderr:      fileOf(c.App.ErrWriter),
		Logger:      log,
		// Health is reported only from a Trigger, which runs after client
		// is set.
		SetHealth: func(ok bool, reason string) { client.SetHealth(ok, reason) },
	})
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	opts.DemoteTimeout = d.DemoteTimeout()
	if client, err = driverclient.New(opts, d); err != nil {
		return driverUsageError(c, err.Error())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "command", strings.Join(args, " "), "demote_timeout", opts.DemoteTimeout.String())
	runErr := client.Run(c.Context)
	// The client's final demote stopped the command; this catches the
	// case where it could not, so that the command never outlives us.
	if err := d.Close(); err != nil {
		return &exitError{code: 1, msg: "the command did not stop: " + err.Error()}
	}
	return driverExit(runErr)
}

func runDriverShell(c *cli.Context) error {
	if c.NArg() > 0 {
		return driverUsageError(c, fmt.Sprintf("unexpected argument %q; give the scripts with --on-master and --on-standby, quoted", c.Args().First()))
	}
	onMaster, onStandby := c.String("on-master"), c.String("on-standby")
	var missing []string
	if strings.TrimSpace(onMaster) == "" {
		missing = append(missing, "--on-master")
	}
	if strings.TrimSpace(onStandby) == "" {
		missing = append(missing, "--on-standby")
	}
	if len(missing) > 0 {
		return driverUsageError(c, fmt.Sprintf("missing %s: both scripts are required (write true for one that does nothing)", strings.Join(missing, " and ")))
	}
	if c.Duration("timeout") <= 0 {
		return driverUsageError(c, fmt.Sprintf("--timeout %v: must be positive", c.Duration("timeout")))
	}
	opts, log, limit, err := driverSetup(c)
	if err != nil {
		return err
	}
	if err := limit.check(c, c.Duration("timeout"), fmt.Sprintf("--timeout %v", c.Duration("timeout"))); err != nil {
		return err
	}
	var client *driverclient.Client
	d, err := shelldriver.New(shelldriver.Options{
		OnMaster:  onMaster,
		OnStandby: onStandby,
		Timeout:   c.Duration("timeout"),
		Logger:    log,
		SetHealth: func(ok bool, reason string) { client.SetHealth(ok, reason) },
	})
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	opts.DemoteTimeout = d.DemoteTimeout()
	if client, err = driverclient.New(opts, d); err != nil {
		return driverUsageError(c, err.Error())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "demote_timeout", opts.DemoteTimeout.String())
	return driverExit(client.Run(c.Context))
}

func runDriverWebhook(c *cli.Context) error {
	if c.NArg() > 0 {
		return driverUsageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	hookURL := strings.TrimSpace(c.String("url"))
	flagName := "--url"
	if f := strings.TrimSpace(c.String("url-file")); f != "" {
		if hookURL != "" {
			return driverUsageError(c, "give --url or --url-file, not both")
		}
		b, err := secretfile.Read(f)
		if err != nil {
			return &exitError{code: 1, msg: "--url-file " + err.Error()}
		}
		hookURL, flagName = strings.TrimSpace(string(b)), "--url-file "+f
	}
	if err := webhook.CheckURL(hookURL); err != nil {
		return driverUsageError(c, flagName+": "+err.Error())
	}
	events := strings.ToLower(c.String("events"))
	if events != "role" && events != "failover" && events != "all" {
		return driverUsageError(c, fmt.Sprintf("--events %q: expected role, failover or all", c.String("events")))
	}
	if c.Duration("timeout") <= 0 {
		return driverUsageError(c, fmt.Sprintf("--timeout %v: must be positive", c.Duration("timeout")))
	}
	if c.Int("queue") < 1 {
		return driverUsageError(c, fmt.Sprintf("--queue %d: must be at least 1", c.Int("queue")))
	}
	opts, log, _, err := driverSetup(c)
	if err != nil {
		return err
	}
	var header http.Header
	if h, ok := c.Generic("header").(*headerFlag); ok {
		header = h.h
	}
	d, err := webhook.New(webhook.Options{
		URL:     hookURL,
		Header:  header,
		Timeout: c.Duration("timeout"),
		Queue:   c.Int("queue"),
		Logger:  log,
	})
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	switch events {
	case "all":
		opts.OnEvent = d.Event
	case "failover":
		opts.OnEvent = func(ev driverproto.Event) {
			if ev.Kind == driverproto.EventFailover {
				d.Event(ev)
			}
		}
	}
	client, err := driverclient.New(opts, d)
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "url", webhook.Redact(hookURL), "events", events)
	runErr := client.Run(c.Context)
	// The final demote is worth telling too; give it a moment to go out.
	ctx, cancel := context.WithTimeout(context.Background(), webhookFlushTimeout)
	defer cancel()
	d.Close(ctx)
	return driverExit(runErr)
}

// demoteLimit is the daemon's demote_timeout, when the driver read the
// node's configuration: a driver that declares a longer demote time would
// be refused, and is better told at once.
type demoteLimit struct {
	d    time.Duration // zero if the configuration was not read
	path string        // the configuration file
}

// check returns a usage error if declared, the driver's demote time as its
// flags make it (what), exceeds the limit.
func (l demoteLimit) check(c *cli.Context, declared time.Duration, what string) error {
	if l.d == 0 || declared <= l.d {
		return nil
	}
	return driverUsageError(c, fmt.Sprintf("%s lets a demote take %v, longer than demote_timeout %v in %s: the daemon would refuse this driver; shorten it or raise demote_timeout",
		what, declared, l.d, l.path))
}

// driverSetup works out from the flags how to reach the daemon and makes
// the logger. The address comes from --addr, else the configuration's
// http.listen, else the default listener; the secret from --secret-file,
// else the configuration's drivers secret. The configuration is read only
// when it is needed, because the user may not be allowed to read it; when
// it is, its demote_timeout comes back as the limit.
func driverSetup(c *cli.Context) (driverclient.Options, *slog.Logger, demoteLimit, error) {
	var opts driverclient.Options
	var limit demoteLimit
	var level slog.LevelVar
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return opts, nil, limit, driverUsageError(c, fmt.Sprintf("--log-level %q: expected debug, info, warn or error", c.String("log-level")))
	}
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), &level)
	if err != nil {
		return opts, nil, limit, driverUsageError(c, err.Error())
	}

	name, role, err := driverIdentity(c)
	if err != nil {
		return opts, nil, limit, err
	}
	cfgPath := strings.TrimSpace(c.String("config"))
	addr := strings.TrimSpace(c.String("addr"))
	secretFile := strings.TrimSpace(c.String("secret-file"))
	if addr != "" {
		a, err := dialAddr(addr)
		if err != nil {
			return opts, nil, limit, driverUsageError(c, fmt.Sprintf("--addr %q: %v", addr, err))
		}
		addr = a
	}
	if cfgPath == "" && secretFile == "" {
		return opts, nil, limit, driverUsageError(c, "a driver needs the drivers secret: give --config FILE (the node's configuration) or --secret-file FILE")
	}
	var secret []byte
	var tlsConf *tls.Config
	if secretFile != "" {
		if secret, err = readSecretFile(secretFile); err != nil {
			return opts, nil, limit, &exitError{code: 1, msg: "--secret-file " + err.Error()}
		}
	}
	if cfgPath != "" && (addr == "" || secret == nil) {
		// The drivers secret and nothing else: a driver may be allowed to
		// read no other secret.
		scope := config.DriversSecretOnly
		if secret != nil {
			scope = config.NoSecrets
		}
		cfg, err := config.LoadFor(cfgPath, scope)
		if err != nil {
			return opts, nil, limit, &exitError{code: 1, msg: err.Error()}
		}
		if addr == "" {
			if addr, err = dialAddr(cfg.HTTPListen); err != nil {
				return opts, nil, limit, &exitError{code: 1, msg: fmt.Sprintf("%s: http.listen %q: %v", cfgPath, cfg.HTTPListen, err)}
			}
			if tlsConf, err = listenerTLS(cfg); err != nil {
				return opts, nil, limit, &exitError{code: 1, msg: err.Error()}
			}
		}
		if secret == nil {
			secret = cfg.DriversSecret
		}
		limit = demoteLimit{d: cfg.DemoteTimeout, path: cfgPath}
		log = log.With("node", cfg.ID)
		if err := checkRole(c, cfg, role); err != nil {
			return opts, nil, limit, err
		}
	}
	if addr == "" {
		addr = config.DefaultHTTPListen
	}
	return driverclient.Options{
		Addr:     addr,
		TLS:      tlsConf,
		Secret:   secret,
		Name:     name,
		Required: c.Bool("required"),
		Role:     role,
		Logger:   log,
	}, log, limit, nil
}

// driverIdentity checks --name and --role.
func driverIdentity(c *cli.Context) (name, role string, err error) {
	name = c.String("name")
	if len(name) > maxDriverName || !driverproto.ValidID(name) {
		return "", "", driverUsageError(c, fmt.Sprintf("--name %q: need 1 to %d of A-Z a-z 0-9 . _ -", name, maxDriverName))
	}
	role = c.String("role")
	return name, role, checkRole(c, nil, role)
}

// checkRole checks --role: a role name, and one that cfg (when not nil)
// has.
func checkRole(c *cli.Context, cfg *config.Config, role string) error {
	if role == "" {
		return nil
	}
	if !driverproto.ValidRoleName(role) {
		return driverUsageError(c, fmt.Sprintf("--role %q: need 1 to 32 of A-Z a-z 0-9 _ -, starting with a letter or digit", role))
	}
	if cfg == nil {
		return nil
	}
	var names []string
	for _, r := range cfg.RoleList() {
		if r.Name == role {
			return nil
		}
		names = append(names, r.Name)
	}
	return driverUsageError(c, fmt.Sprintf("--role %q: %s has no such role; its roles are %s", role, cfg.Path, strings.Join(names, ", ")))
}

// driverExit turns what the client's Run returned into the exit status:
// Run ends without error when the context does, on SIGTERM or Ctrl-C,
// which is the normal way for a driver to stop.
func driverExit(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return &exitError{code: 1, msg: err.Error()}
}

// driverUsageError is usageError with the driver's full command name and,
// for exec, its arguments.
func driverUsageError(c *cli.Context, msg string) error {
	usage := c.Command.HelpName + " [options]"
	if c.Command.ArgsUsage != "" {
		usage += " " + c.Command.ArgsUsage
	}
	return &exitError{code: 2, msg: fmt.Sprintf("%s\nusage: %s  (see --help)", msg, usage)}
}

// fileOf returns w if it is a file, for a command's output to go to it
// directly; any other writer (a test's buffer) gets nothing.
func fileOf(w io.Writer) *os.File {
	f, _ := w.(*os.File)
	return f
}
