package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/journal"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "show what happened: the node's journal, with the cluster's failovers",
		Description: "Prints the journal of the daemon on this machine (or at --addr) as a timeline: role\n" +
			"changes, elections, members lost and back, drivers, maintenance, transfers, and one\n" +
			"failover record per change of master, which every node holds, with the old and new\n" +
			"master, the cause and how long the cluster had no master. Needs no admin token.\n\n" +
			"--since takes a duration (1h: the last hour), an RFC 3339 time, or a sequence number\n" +
			"(the events after it). --follow keeps printing events as they happen. --json prints\n" +
			"one JSON object per line, as GET /v1/events has them; a failover record has kind\n" +
			"\"failover\", term, from, to, cause and no_master_ms.\n\n" +
			"Examples:\n" +
			"   clustd events --config /etc/clustd/clustd.yml --since 24h --failovers\n" +
			"   clustd events --addr 127.0.0.1:3002 --follow --json | jq 'select(.kind==\"failover\")'",
		Flags: []cli.Flag{
			configFlag(),
			addrFlag(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing events as they happen"},
			&cli.StringFlag{Name: "since", Usage: "from when: a duration such as 1h, an RFC 3339 time, or a sequence number"},
			&cli.IntFlag{Name: "limit", Value: 1000, Usage: "print at most this many of the past events (the newest)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line"},
			&cli.BoolFlag{Name: "failovers", Usage: "print the failover records only"},
		},
		Action: runEvents,
	}
}

func runEvents(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	since := strings.TrimSpace(c.String("since"))
	if _, err := api.ParseSince(since, time.Now()); err != nil {
		return usageError(c, "--"+err.Error())
	}
	limit := c.Int("limit")
	if limit < 1 || limit > api.MaxEventLimit {
		return usageError(c, fmt.Sprintf("--limit %d: expected 1 to %d", limit, api.MaxEventLimit))
	}
	client, err := adminClient(c, false)
	if err != nil {
		return err
	}
	print := func(ev journal.Event) error {
		if c.Bool("json") {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", b)
			return err
		}
		return writeEvent(c.App.Writer, ev, timelineZone)
	}
	if c.Bool("follow") {
		err := client.Follow(c.Context, since, limit, c.Bool("failovers"), print, func(err error) {
			fmt.Fprintf(c.App.ErrWriter, "clustd: %v; reconnecting\n", err)
		})
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(c.Context, statusTimeout)
	defer cancel()
	evs, err := client.Events(ctx, since, limit, c.Bool("failovers"))
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	for _, ev := range evs.Events {
		if err := print(ev); err != nil {
			return err
		}
	}
	return nil
}

// timelineZone is the zone the timeline prints times in.
var timelineZone = time.Local

// writeEvent prints one event as a line of the timeline: the time, the
// node, the kind and what happened. Failover records stand out.
func writeEvent(w io.Writer, ev journal.Event, loc *time.Location) error {
	kind := ev.Kind
	if ev.IsFailover() {
		kind = "FAILOVER"
	}
	_, err := fmt.Fprintf(w, "%s  %-8s %-19s %s\n", ev.Time.In(loc).Format("2006-01-02 15:04:05.000"), ev.Node, kind, describeEvent(ev, loc))
	return err
}

func describeEvent(ev journal.Event, loc *time.Location) string {
	if ev.RoleName != "" {
		// In a cluster with roles:, say which one an event is of.
		role := ev.RoleName
		ev.RoleName = ""
		return "role " + role + ": " + describeEvent(ev, loc)
	}
	detail := func(s string) string {
		if ev.Detail == "" {
			return s
		}
		return s + ": " + ev.Detail
	}
	switch ev.Kind {
	case journal.KindStart:
		return "daemon started"
	case journal.KindStop:
		return "daemon stopped"
	case journal.KindRole:
		master := ev.Master
		if master == "" {
			master = "none known"
		}
		return detail(fmt.Sprintf("%s in term %d, master %s", ev.Role, ev.Term, master))
	case journal.KindElection:
		return fmt.Sprintf("election for term %d: %s", ev.Term, strings.TrimPrefix(ev.Detail, "campaigning: "))
	case journal.KindMemberLost:
		return "lost contact with " + ev.Peer
	case journal.KindMemberBack:
		return ev.Peer + " is reachable"
	case journal.KindDriverConnected:
		return "driver " + ev.Driver + " connected"
	case journal.KindDriverDisconnected:
		return detail("driver " + ev.Driver + " gone")
	case journal.KindDriverHealth:
		state := "healthy"
		if ev.OK != nil && !*ev.OK {
			state = "UNHEALTHY"
		}
		return detail("driver " + ev.Driver + " " + state)
	case journal.KindFailover:
		if ev.Failover == nil {
			break
		}
		return describeFailover(ev, loc)
	}
	if ev.Detail != "" {
		return ev.Detail
	}
	return "(no detail)"
}

// describeFailover puts a failover record in one line: who, why, how long,
// and the instants it was measured between.
func describeFailover(ev journal.Event, loc *time.Location) string {
	f := ev.Failover
	var b strings.Builder
	fmt.Fprintf(&b, "term %d: %s -> %s, cause %s, no master for %s", ev.Term, f.From, f.To, f.Cause, formatMS(f.NoMasterMS))
	clock := func(t time.Time) string { return t.In(loc).Format("15:04:05.000") }
	var times []string
	if f.LastContact != nil {
		times = append(times, "last contact "+clock(*f.LastContact))
	}
	if f.LeaseExpired != nil {
		times = append(times, "lease over "+clock(*f.LeaseExpired))
	}
	times = append(times, "elected "+clock(f.Elected))
	if f.Promoted != nil {
		times = append(times, fmt.Sprintf("drivers promoted %s (+%s)", clock(*f.Promoted), formatMS(f.Promoted.Sub(f.Elected).Milliseconds())))
	}
	b.WriteString(" (" + strings.Join(times, ", ") + ")")
	if f.Rev > 0 {
		fmt.Fprintf(&b, " [revised]")
	}
	return b.String()
}

func formatMS(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.1f s", float64(ms)/1000)
}
