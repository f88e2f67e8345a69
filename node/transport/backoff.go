package transport

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces out reconnection attempts to a peer. The ceiling starts at
// the minimum and doubles with every attempt up to the maximum; each delay
// is drawn uniformly between the minimum and the current ceiling. The
// jitter spans the whole range so that daemons which lost a peer at the
// same moment do not all redial it in step; the floor keeps a peer that
// refuses every handshake from being hammered. A Backoff is not safe for
// concurrent use.
type Backoff struct {
	min, max time.Duration
	ceiling  time.Duration
	r        *rand.Rand
}

// NewBackoff returns a Backoff whose delays lie in [min, max]. It panics
// unless 0 < min <= max, since any other range is a programming error. The
// delays are drawn from r, so a seeded r makes them reproducible; a nil r
// uses the global generator of math/rand/v2.
func NewBackoff(min, max time.Duration, r *rand.Rand) *Backoff {
	if min <= 0 || max < min {
		panic("transport: NewBackoff needs 0 < min <= max")
	}
	return &Backoff{min: min, max: max, ceiling: min, r: r}
}

// Next returns the delay before the next attempt and raises the ceiling for
// the one after.
func (b *Backoff) Next() time.Duration {
	span := int64(b.ceiling - b.min)
	var jitter int64
	if b.r != nil {
		jitter = b.r.Int64N(span + 1)
	} else {
		jitter = rand.Int64N(span + 1)
	}
	d := b.min + time.Duration(jitter)
	if b.ceiling > b.max/2 {
		b.ceiling = b.max // doubling would pass max, or overflow
	} else {
		b.ceiling *= 2
	}
	return d
}

// Reset brings the ceiling back to the minimum, for use once a connection
// has proved healthy.
func (b *Backoff) Reset() { b.ceiling = b.min }
