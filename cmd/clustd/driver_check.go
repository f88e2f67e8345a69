package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/drivers/check"
	"github.com/clustd/clustd/drivers/webhook"
)

func driverCheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check a service, a link or a gateway, and make the node ineligible while it fails",
		Description: "Runs one check every --interval, each bounded by --timeout, and reports the result\n" +
			"to the daemon as this driver's health. Exactly one of:\n" +
			"   --exec CMD        /bin/sh -c CMD exits 0\n" +
			"   --http URL        a GET answers with status --expect (default 200); no redirects\n" +
			"   --tcp HOST:PORT   a TCP connection is accepted\n" +
			"   --link IFACE      the interface is up and has carrier (netlink)\n" +
			"   --ping ADDR       an ICMP echo is answered (unprivileged datagram socket where\n" +
			"                     net.ipv4.ping_group_range allows it, else a raw socket)\n\n" +
			"The check fails after --fall failures in a row and passes again after --rise\n" +
			"successes in a row; the first result counts at once. With --required the node is\n" +
			"ineligible while the check fails: a master hands over through the planned path (the\n" +
			"other drivers stop first, no overlap), and the node is a candidate again once the\n" +
			"check passes. A node that loses the master role to its own failing check twice\n" +
			"within --flap-window stays ineligible until that window has passed since the second\n" +
			"loss (0 turns this off), or until clustd maintenance off; the log says so. Without --required the result is only\n" +
			"reported (logs, events).\n\n" +
			"--name names the check: the daemon's logs and status show it, and a node\n" +
			"configuration that requires a driver names it so.\n\n" +
			"Examples:\n" +
			"   clustd driver check --config /etc/clustd/clustd.yml --required --name web --http http://127.0.0.1:8080/healthz\n" +
			"   clustd driver check --config /etc/clustd/clustd.yml --required --name uplink --link eth0 --interval 500ms --fall 2\n" +
			"   clustd driver check --config /etc/clustd/clustd.yml --required --name gw --ping 10.0.0.1",
		Flags: append(driverFlags("check"),
			&cli.StringFlag{Name: "exec", Usage: "a shell command that exits 0 while the service is well"},
			&cli.StringFlag{Name: "http", Usage: "an http:// or https:// URL to GET"},
			&cli.IntFlag{Name: "expect", Value: 200, Usage: "the HTTP status --http must answer with"},
			&cli.StringFlag{Name: "tcp", Usage: "HOST:PORT that must accept a TCP connection"},
			&cli.StringFlag{Name: "link", Usage: "an interface that must be up with carrier"},
			&cli.StringFlag{Name: "ping", Usage: "an address (a gateway) that must answer ICMP echo"},
			&cli.DurationFlag{Name: "interval", Value: check.DefaultInterval, Usage: "the time between the starts of two checks"},
			&cli.DurationFlag{Name: "timeout", Value: check.DefaultTimeout, Usage: "how long one check may take before it counts as failed"},
			&cli.IntFlag{Name: "fall", Value: check.DefaultFall, Usage: "failures in a row that make the check fail"},
			&cli.IntFlag{Name: "rise", Value: check.DefaultRise, Usage: "successes in a row that make it pass again"},
			&cli.DurationFlag{Name: "flap-window", Value: check.DefaultFlapWindow, Usage: "two losses of the master role to this check within this window keep the node ineligible until it has passed (0: no damping)"},
		),
		Action: runDriverCheck,
	}
}

func runDriverCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return driverUsageError(c, fmt.Sprintf("unexpected argument %q; quote the command of --exec", c.Args().First()))
	}
	kind, probe, what, err := checkProbe(c)
	if err != nil {
		return err
	}
	if err := checkTimingFlags(c); err != nil {
		return err
	}
	// A check does nothing on demote: no demote time to declare.
	opts, log, _, err := driverSetup(c)
	if err != nil {
		return err
	}
	var client *driverclient.Client
	var d *check.Driver
	d, err = check.New(check.Options{
		Name:       c.String("name"),
		Probe:      probe,
		Interval:   c.Duration("interval"),
		Timeout:    c.Duration("timeout"),
		Fall:       c.Int("fall"),
		Rise:       c.Int("rise"),
		FlapWindow: c.Duration("flap-window"),
		Logger:     log,
		// Record, which reports, runs only from d.Run, started once
		// client is set.
		SetHealth: func(ok bool, reason string) { client.SetHealth(ok, reason) },
	})
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	// The event stream carries `clustd maintenance off`, which ends flap
	// damping.
	opts.OnEvent = d.Event
	if client, err = driverclient.New(opts, d); err != nil {
		return driverUsageError(c, err.Error())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "check", kind+" "+what, "required", opts.Required)
	go d.Run(c.Context)
	return driverExit(client.Run(c.Context))
}

// checkProbe reads the one check flag given (--exec, --http, --tcp, --link
// or --ping) into its probe, and returns the flag and what it checks, for
// the log.
func checkProbe(c *cli.Context) (kind string, probe check.Probe, what string, err error) {
	var kinds []string
	if s := c.String("exec"); c.IsSet("exec") {
		if strings.TrimSpace(s) == "" {
			return "", nil, "", driverUsageError(c, "--exec: empty command")
		}
		kinds, probe, what = append(kinds, "--exec"), check.Exec(s), s
	}
	if s := strings.TrimSpace(c.String("http")); c.IsSet("http") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", nil, "", driverUsageError(c, fmt.Sprintf("--http %q: want an http:// or https:// URL", s))
		}
		if e := c.Int("expect"); e < 100 || e > 599 {
			return "", nil, "", driverUsageError(c, fmt.Sprintf("--expect %d: want an HTTP status, 100 to 599", e))
		}
		kinds, probe, what = append(kinds, "--http"), check.HTTP(s, c.Int("expect")), webhook.Redact(s)
	} else if c.IsSet("expect") {
		return "", nil, "", driverUsageError(c, "--expect goes with --http")
	}
	if s := strings.TrimSpace(c.String("tcp")); c.IsSet("tcp") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", nil, "", driverUsageError(c, fmt.Sprintf("--tcp %q: want HOST:PORT", s))
		}
		kinds, probe, what = append(kinds, "--tcp"), check.TCP(s), s
	}
	if s := strings.TrimSpace(c.String("link")); c.IsSet("link") {
		if s == "" {
			return "", nil, "", driverUsageError(c, "--link: empty interface name")
		}
		kinds, probe, what = append(kinds, "--link"), check.Link(s), s
	}
	if s := strings.TrimSpace(c.String("ping")); c.IsSet("ping") {
		if s == "" {
			return "", nil, "", driverUsageError(c, "--ping: empty address")
		}
		kinds, probe, what = append(kinds, "--ping"), check.Ping(s), s
	}
	switch len(kinds) {
	case 0:
		return "", nil, "", driverUsageError(c, "no check: give one of --exec, --http, --tcp, --link or --ping")
	case 1:
		return kinds[0], probe, what, nil
	}
	return "", nil, "", driverUsageError(c, fmt.Sprintf("%s: one check per driver; run one driver for each", strings.Join(kinds, ", ")))
}

// checkTimingFlags checks --interval, --timeout, --fall, --rise and
// --flap-window.
func checkTimingFlags(c *cli.Context) error {
	for _, f := range []string{"interval", "timeout"} {
		if c.Duration(f) <= 0 {
			return driverUsageError(c, fmt.Sprintf("--%s %v: must be positive", f, c.Duration(f)))
		}
	}
	for _, f := range []string{"fall", "rise"} {
		if c.Int(f) < 1 {
			return driverUsageError(c, fmt.Sprintf("--%s %d: must be at least 1", f, c.Int(f)))
		}
	}
	if c.Duration("flap-window") < 0 {
		return driverUsageError(c, fmt.Sprintf("--flap-window %v: must not be negative", c.Duration("flap-window")))
	}
	return nil
}
