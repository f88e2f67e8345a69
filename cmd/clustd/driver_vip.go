package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/drivers/vip"
)

func driverVIPCommand() *cli.Command {
	return &cli.Command{
		Name:  "vip",
		Usage: "hold floating IP addresses while this node is master",
		Description: "Adds the --address values to --interface through netlink when the node becomes\n" +
			"master and announces them, gratuitous ARP for IPv4 and unsolicited neighbour\n" +
			"advertisements for IPv6, --garp-count times --garp-interval apart, so that clients\n" +
			"and switches turn to this machine at once. While master it announces again every\n" +
			"--refresh, and at every new term even if the addresses never left. When the node\n" +
			"stops being master, or its lease runs out with the daemon dead or paused, the\n" +
			"addresses are removed before the demote is acknowledged: the next master adds them\n" +
			"only once they are gone here, so they are never on two machines.\n\n" +
			"At start the driver removes any of the addresses it finds on the interface (a\n" +
			"driver killed while master leaves them behind); if this node is master, they come\n" +
			"back as soon as the daemon says so.\n\n" +
			"It needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root, or with\n" +
			"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW) and says which one is missing.\n" +
			"--metrics-listen serves GET /status (JSON: the addresses held, the last\n" +
			"announcement) and GET /metrics for Prometheus.\n\n" +
			"In clouds, where gratuitous ARP does nothing, use clustd driver shell with the\n" +
			"provider's API instead: see examples/ in the source.\n\n" +
			"Examples:\n" +
			"   clustd driver vip --config /etc/clustd/clustd.yml --address 10.0.0.100/24 --interface eth0\n" +
			"   clustd driver vip --config /etc/clustd/clustd.yml --interface bond0 \\\n" +
			"       --address 10.0.0.100/24 --address 2001:db8::100/64 --metrics-listen 127.0.0.1:9101",
		Flags: append(driverFlags("vip"),
			&cli.StringSliceFlag{Name: "address", Usage: "a floating address with its prefix length, as 10.0.0.100/24 (repeatable)"},
			&cli.StringFlag{Name: "interface", Usage: "the interface the addresses go on"},
			&cli.IntFlag{Name: "garp-count", Value: vip.DefaultGARPCount, Usage: "how many announcements to send on promote (0: none)"},
			&cli.DurationFlag{Name: "garp-interval", Value: vip.DefaultGARPInterval, Usage: "the time between two announcements on promote"},
			&cli.DurationFlag{Name: "refresh", Value: vip.DefaultRefresh, Usage: "announce again this often while master (0: never)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve /status and /metrics on HOST:PORT (default: not at all)"},
		),
		Action: runDriverVIP,
	}
}

func runDriverVIP(c *cli.Context) error {
	if c.NArg() > 0 {
		return driverUsageError(c, fmt.Sprintf("unexpected argument %q; give addresses with --address", c.Args().First()))
	}
	var addrs []netip.Prefix
	for _, s := range c.StringSlice("address") {
		p, err := vip.ParseAddress(s)
		if err != nil {
			return driverUsageError(c, "--address "+err.Error())
		}
		addrs = append(addrs, p)
	}
	if len(addrs) == 0 {
		return driverUsageError(c, "missing --address: give the floating address with its prefix length, as --address 10.0.0.100/24")
	}
	ifname := strings.TrimSpace(c.String("interface"))
	if ifname == "" {
		return driverUsageError(c, "missing --interface: the interface the addresses go on, as --interface eth0")
	}
	if c.Int("garp-count") < 0 {
		return driverUsageError(c, fmt.Sprintf("--garp-count %d: must not be negative", c.Int("garp-count")))
	}
	if c.Duration("garp-interval") <= 0 {
		return driverUsageError(c, fmt.Sprintf("--garp-interval %v: must be positive", c.Duration("garp-interval")))
	}
	if c.Duration("refresh") < 0 {
		return driverUsageError(c, fmt.Sprintf("--refresh %v: must not be negative", c.Duration("refresh")))
	}
	var ln net.Listener
	if a := strings.TrimSpace(c.String("metrics-listen")); a != "" {
		var err error
		if ln, err = net.Listen("tcp", a); err != nil {
			return &exitError{code: 1, msg: "--metrics-listen: " + err.Error()}
		}
		defer ln.Close()
	}
	opts, log, limit, err := driverSetup(c)
	if err != nil {
		return err
	}
	if err := limit.check(c, vip.DemoteTimeout, "removing the addresses"); err != nil {
		return err
	}
	opts.DemoteTimeout = vip.DemoteTimeout
	var client *driverclient.Client
	d, err := vip.New(vip.Options{
		Interface:    ifname,
		Addresses:    addrs,
		GARPCount:    c.Int("garp-count"),
		GARPInterval: c.Duration("garp-interval"),
		Refresh:      c.Duration("refresh"),
		Logger:       log,
		// Health is reported only from a Trigger, which runs after client
		// is set.
		SetHealth: func(ok bool, reason string) { client.SetHealth(ok, reason) },
	})
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	defer d.Close()
	if client, err = driverclient.New(opts, d); err != nil {
		return driverUsageError(c, err.Error())
	}
	if ln != nil {
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status listener failed", "err", err)
			}
		}()
		defer srv.Shutdown(context.Background())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "interface", ifname, "addresses", c.StringSlice("address"))
	return driverExit(client.Run(c.Context))
}
