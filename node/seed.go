package node

import (
	"net/http"
	"time"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/seeddrv"
)

// seedHolder is what the hub needs from the server of the 2018 drivers:
// to tell them the master status, and whether a hand-over must still wait
// for one of them. Both are called with the hub's lock held.
type seedHolder interface {
	SetMaster(isMaster bool)
	Holding() bool
}

// startSeed creates the server of the 2018 drivers when the configuration
// lets them in, and hands it to the hub, which counts them among the drivers
// a hand-over waits for. Called by New, before anything runs.
func (d *Daemon) startSeed() {
	if !d.cfg.SeedDrivers {
		return
	}
	h := d.hub
	d.seed = seeddrv.New(seeddrv.Options{
		Secret:     d.cfg.DriversSecret,
		Node:       d.cfg.ID,
		URL:        "ws://" + d.httpLn.Addr().String(),
		Grace:      d.cfg.SeedGrace(),
		Log:        d.log.With("component", "seed-drivers"),
		AuthFailed: d.metrics.AuthFailure,
		Released:   h.seedReleased,
		Connected:  d.metrics.SetSeedDrivers,
	})
	h.setSeed(d.seed)
	d.log.Warn("2018 (clustd-lib) drivers are accepted at the local listener's root path; " +
		"they hold no lease: on an unplanned failover nothing stops them from acting until this daemon tells them")
}

// setSeed makes the hub count the 2018 drivers of s among those a
// hand-over waits for. Called before the hub serves anything.
func (h *hub) setSeed(s seedHolder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seed = s
}

// seedReleased is told that no 2018 driver holds the master role any
// more: a hand-over waiting for them may go on.
func (h *hub) seedReleased() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkDemoted()
}

// seedHandler serves the 2018 drivers at /, or refuses them when they are
// not enabled.
func (d *Daemon) seedHandler() http.Handler {
	if d.seed == nil {
		return seeddrv.Disabled(d.log.With("component", "seed-drivers"))
	}
	return d.seed
}

// stopSeed disconnects the 2018 drivers; they keep their last state.
func (d *Daemon) stopSeed() {
	if d.seed != nil {
		d.seed.Close()
	}
}

// seedStatus lists the 2018 drivers for the status.
func (d *Daemon) seedStatus() []api.SeedDriverStatus {
	if d.seed == nil {
		return nil
	}
	var out []api.SeedDriverStatus
	for _, i := range d.seed.Drivers() {
		out = append(out, api.SeedDriverStatus{ID: i.ID, Remote: i.Remote, ToldMaster: i.ToldMaster, Holding: i.Holding, SinceMS: time.Since(i.Since).Milliseconds()})
	}
	return out
}
