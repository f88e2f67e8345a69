package metrics

// seedDriversHelp carries the warning wherever the metric is read: these
// drivers are legacy, and nothing bounds how long they act.
const seedDriversHelp = "Legacy 2018 (clustd-lib) drivers connected to this daemon. " +
	"They hold no lease and acknowledge nothing: on an unplanned failover nothing stops them " +
	"from acting until this daemon tells them; a planned hand-over only waits seed_driver_grace after they answer."

// SetSeedDrivers records how many 2018 drivers are connected.
func (m *Metrics) SetSeedDrivers(n int) {
	if m == nil {
		return
	}
	m.seedDrivers.Set(float64(n))
}
