package api

import "net/http"

// SeedDriversWarning is what the status, the page and the command line say
// of the 2018 drivers wherever they list them.
const SeedDriversWarning = "legacy 2018 (clustd-lib) drivers: they hold no lease and acknowledge nothing. " +
	"A planned hand-over waits seed_driver_grace after they answer trigger(false); " +
	"on an unplanned failover nothing stops them from acting as master until this daemon tells them otherwise."

// SeedDriverStatus is one connected 2018 driver.
type SeedDriverStatus struct {
	// ID is the id the driver gave in its hello.
	ID     string `json:"id"`
	Remote string `json:"remote"`
	// ToldMaster is the last isMaster it was sent.
	ToldMaster bool `json:"told_master"`
	// Holding: told it is master, and not yet past the grace that follows
	// its answer to trigger(false). A planned hand-over waits for it.
	Holding bool `json:"holding"`
	// SinceMS is how long ago, in milliseconds, it connected.
	SinceMS int64 `json:"since_ms"`
}

// seedMetadataHeader tells the 2018 drivers' upgrade requests apart from
// requests for the status page.
const seedMetadataHeader = "Metadata"

// seedOrPage routes a request for / to seed when it carries the 2018
// drivers' metadata header, and to page otherwise.
func seedOrPage(seed, page http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(seedMetadataHeader) == "" {
			page.ServeHTTP(w, r)
			return
		}
		if seed == nil {
			writeError(w, http.StatusForbidden, "this node does not accept 2018 (clustd-lib) drivers")
			return
		}
		seed.ServeHTTP(w, r)
	})
}
