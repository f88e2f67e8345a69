package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSeedDrivers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "n1")
	m.SetSeedDrivers(2)
	want := "# HELP clustd_seed_drivers_connected " + seedDriversHelp + "\n" +
		"# TYPE clustd_seed_drivers_connected gauge\n" +
		"clustd_seed_drivers_connected{node=\"n1\"} 2\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "clustd_seed_drivers_connected"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(seedDriversHelp, "Legacy") || !strings.Contains(seedDriversHelp, "unplanned failover") {
		t.Errorf("the help text must carry the legacy warning: %q", seedDriversHelp)
	}
	var none *Metrics
	none.SetSeedDrivers(1) // a nil *Metrics records nothing and does not panic
}
