package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// writeSeedDrivers lists the 2018 drivers after the members, with the
// warning that they are legacy; nothing when there are none.
func writeSeedDrivers(w io.Writer, ds []api.SeedDriverStatus) error {
	if len(ds) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nWARNING: %d %s\n", len(ds), api.SeedDriversWarning)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEGACY DRIVER\tREMOTE\tTOLD MASTER\tHOLDING\tCONNECTED")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\n", printable(d.ID), printable(d.Remote), yesNo(d.ToldMaster), yesNo(d.Holding), msString(d.SinceMS))
	}
	return tw.Flush()
}

func importSeedCommand() *cli.Command {
	return &cli.Command{
		Name:  "import-seed",
		Usage: "convert the 2018 daemon's config.yml into a clustd configuration that accepts its drivers",
		Description: "Reads the 2018 daemon's config.yml (its server and cluster sections: bind address and\n" +
			"port, remote_address and machines as ws://HOST:PORT URLs, id and secret) and writes\n" +
			"DIR/secret (the old cluster.secret, which the 2018 drivers keep using) and DIR/ID.yml\n" +
			"with http.seed_drivers on, its local listener on 127.0.0.1 at the old port, where the\n" +
			"2018 drivers connect. It then lists what it could not carry over.\n\n" +
			"Give every machine's config.yml (repeat --config) to keep the old ids; from one file\n" +
			"alone the member ids are made from the addresses, alike on every machine. 2018 daemons\n" +
			"cannot be peers of clustd daemons: move every machine at once.\n\n" +
			"Example:\n" +
			"   clustd import-seed --config old/config.yml --dir /etc/clustd",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "config", Usage: "the 2018 daemon's config.yml (repeatable: one per machine)", Required: true},
			&cli.StringFlag{Name: "dir", Usage: "directory to write to (created if missing)", Required: true},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files, the secret included"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
			}
			res, err := config.ImportSeed(config.ImportSeedOptions{
				Configs: c.StringSlice("config"),
				Dir:     c.String("dir"),
				Force:   c.Bool("force"),
			})
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			out := c.App.Writer
			for _, f := range res.Files {
				fmt.Fprintf(out, "wrote %s\n", f)
			}
			fmt.Fprintln(out, "\nnot carried over:")
			if len(res.NotCarried) == 0 {
				fmt.Fprintln(out, "  nothing")
			}
			for _, l := range res.NotCarried {
				fmt.Fprintf(out, "  %s\n", l)
			}
			fmt.Fprintln(out, "\nstart each node with:")
			for _, n := range res.Nodes {
				fmt.Fprintf(out, "  %s    # %s; 2018 drivers at ws://%s\n", n.Command, n.ID, n.HTTPListen)
			}
			fmt.Fprintf(out, "\nWARNING: %s\n", api.SeedDriversWarning)
			fmt.Fprintln(out, "Port them to clustd's drivers; README.md shows `clustd driver shell` in place of the 2018 shell driver.")
			return nil
		},
	}
}
