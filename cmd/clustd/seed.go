package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/clustd/clustd/node/api"
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
