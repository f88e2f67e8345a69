package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/drivers/notify"
)

// notifyFlushTimeout bounds how long a stopping notifier keeps sending
// what is still queued.
const notifyFlushTimeout = 20 * time.Second

func driverNotifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "notify",
		Usage: "send one message per failover: by mail, to Slack or to a webhook",
		Description: "Sends one plain-text message per failover record: the old and the new master, the\n" +
			"cause, how long the cluster had no master, and when each step happened. Only the new\n" +
			"master's daemon hands a record to its drivers, so run the notifier on every machine:\n" +
			"each failover is then told once.\n\n" +
			"A record waits --window before it goes, in case the old master revises its cause (a\n" +
			"paused master can only say so once it runs again). At most --burst messages leave at\n" +
			"once and --per-hour an hour after that; the rest wait. A failed send is retried with\n" +
			"exponential backoff. Nothing here slows a failover down.\n\n" +
			"Give exactly one destination:\n" +
			"   --smtp smtp://[USER@]HOST[:587] --from ADDR --to ADDR[,ADDR…]  (STARTTLS when offered;\n" +
			"       ?starttls=required to insist; smtps:// for TLS from the start; the password, if\n" +
			"       any, in --smtp-password-file)\n" +
			"   --slack-webhook-file FILE   (a file holding the Slack incoming webhook's URL)\n" +
			"   --webhook-file FILE         (a file holding a URL to POST the record to as JSON)\n\n" +
			"Examples:\n" +
			"   clustd driver notify --config /etc/clustd/clustd.yml --smtp smtp://mail.example.com:587 \\\n" +
			"       --from clustd@example.com --to ops@example.com\n" +
			"   clustd driver notify --config /etc/clustd/clustd.yml --slack-webhook-file /etc/clustd/slack-url",
		Flags: append(driverFlags("notify"),
			&cli.StringFlag{Name: "smtp", Usage: "the mail server, as smtp://[USER@]HOST[:PORT] or smtps://[USER@]HOST[:PORT]"},
			&cli.StringFlag{Name: "smtp-password-file", Usage: "a file holding the password of the --smtp URL's user"},
			&cli.StringFlag{Name: "from", Usage: "the sender address of the mail"},
			&cli.StringSliceFlag{Name: "to", Usage: "a recipient of the mail (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "slack-webhook-file", Usage: "a file holding the URL of a Slack incoming webhook"},
			&cli.StringFlag{Name: "webhook-file", Usage: "a file holding a URL to POST each failover record to as JSON"},
			&cli.DurationFlag{Name: "window", Value: notify.DefaultWindow, Usage: "how long a record waits for a revision before it is sent"},
			&cli.IntFlag{Name: "burst", Value: notify.DefaultBurst, Usage: "how many messages may leave at once"},
			&cli.IntFlag{Name: "per-hour", Value: notify.DefaultPerHour, Usage: "how many messages may leave per hour after a burst"},
		),
		Action: runDriverNotify,
	}
}

func runDriverNotify(c *cli.Context) error {
	if c.NArg() > 0 {
		return driverUsageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	var dests []string
	for _, f := range []string{"smtp", "slack-webhook-file", "webhook-file"} {
		if strings.TrimSpace(c.String(f)) != "" {
			dests = append(dests, "--"+f)
		}
	}
	if len(dests) != 1 {
		return driverUsageError(c, fmt.Sprintf("give exactly one destination: --smtp, --slack-webhook-file or --webhook-file (got %d)", len(dests)))
	}
	if c.Duration("window") < 0 || c.Int("burst") < 1 || c.Int("per-hour") < 1 {
		return driverUsageError(c, "--window must not be negative, --burst and --per-hour must be at least 1")
	}
	var sender notify.Sender
	switch dests[0] {
	case "--smtp":
		var password string
		if f := strings.TrimSpace(c.String("smtp-password-file")); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("--smtp-password-file: %v", err)}
			}
			password = strings.TrimSpace(string(b))
		}
		var to []string
		for _, t := range c.StringSlice("to") {
			for _, a := range strings.Split(t, ",") {
				if a = strings.TrimSpace(a); a != "" {
					to = append(to, a)
				}
			}
		}
		s, err := notify.NewSMTP(notify.SMTPOptions{URL: c.String("smtp"), Password: password, From: c.String("from"), To: to})
		if err != nil {
			return driverUsageError(c, err.Error())
		}
		sender = s
	case "--slack-webhook-file":
		u, err := notify.ReadURLFile(c.String("slack-webhook-file"))
		if err != nil {
			return &exitError{code: 1, msg: "--slack-webhook-file: " + err.Error()}
		}
		sender = notify.NewSlack(u)
	case "--webhook-file":
		u, err := notify.ReadURLFile(c.String("webhook-file"))
		if err != nil {
			return &exitError{code: 1, msg: "--webhook-file: " + err.Error()}
		}
		sender = notify.NewWebhook(u)
	}
	opts, log, _, err := driverSetup(c)
	if err != nil {
		return err
	}
	window := c.Duration("window")
	if window == 0 {
		window = time.Nanosecond // "no wait"; zero would mean the default
	}
	d, err := notify.New(notify.Options{Sender: sender, Window: window, Burst: c.Int("burst"), PerHour: c.Int("per-hour"), Logger: log, Zone: time.Local})
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	opts.OnEvent = d.Event
	client, err := driverclient.New(opts, d)
	if err != nil {
		return driverUsageError(c, err.Error())
	}
	log.Info("driver starting", "addr", opts.Addr, "id", client.ID(), "to", sender.String())
	runErr := client.Run(c.Context)
	ctx, cancel := context.WithTimeout(context.Background(), notifyFlushTimeout)
	defer cancel()
	d.Close(ctx)
	return driverExit(runErr)
}
