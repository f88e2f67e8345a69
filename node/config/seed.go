package config

import "time"

// DefaultSeedDriverGrace is the default of seed_driver_grace.
const DefaultSeedDriverGrace = 2 * time.Second

// rawSeed holds the fields about the drivers written for the 2018 daemon
// ("seed drivers"): http.seed_drivers switches them on, seed_driver_grace is
// how long a planned hand-over waits after such a driver answered
// trigger(false). They have no acknowledgement of having acted, so the grace
// is a guess at how long their work takes, not a guarantee.
type rawSeed struct {
	enabled field[bool]
	grace   field[time.Duration]
}

// resolveSeed applies the seed driver fields to c. The grace must be shorter
// than demote_timeout, which bounds the whole wait for the drivers: a longer
// grace would silently never be waited out.
func (p *parser) resolveSeed(r *rawConfig, c *Config) error {
	c.SeedDrivers = r.seed.enabled.v
	if r.seed.grace.set {
		c.SeedDriverGrace = r.seed.grace.v
	}
	if c.SeedDrivers && c.SeedGrace() >= c.DemoteTimeout {
		n := orNode(r.seed.grace.n, orNode(r.seed.enabled.n, r.root))
		field := "seed_driver_grace"
		if !r.seed.grace.set {
			field = "demote_timeout"
			n = orNode(r.demoteTimeout.n, n)
		}
		return p.errAt(n, field, "seed_driver_grace (%v) must be shorter than demote_timeout (%v), which bounds the whole wait for the drivers during a hand-over", c.SeedGrace(), c.DemoteTimeout)
	}
	return nil
}

// SeedGrace is how long a planned hand-over waits after a 2018 driver
// answered trigger(false): seed_driver_grace, by default
// DefaultSeedDriverGrace.
func (c *Config) SeedGrace() time.Duration {
	if c.SeedDriverGrace > 0 {
		return c.SeedDriverGrace
	}
	return DefaultSeedDriverGrace
}
