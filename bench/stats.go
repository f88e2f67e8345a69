package bench

import (
	"math"
	"slices"
	"time"

	"github.com/clustd/clustd/internal/percentile"
)

// Summary describes a sample of durations in milliseconds. The percentiles
// use the nearest-rank method of package percentile: the p-th percentile
// of n sorted values is the value of rank ceil(p/100 × n). It is always one of the observed
// values, and with fewer than 100 values the 99th percentile is the
// maximum, which is the honest reading of a small sample.
type Summary struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// median returns the median of values by nearest rank (the lower middle
// value of an even count), or NaN when there are none. It does not modify
// values.
func median(values []float64) float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	if v, ok := percentile.NearestRank(s, 50); ok {
		return v
	}
	return math.NaN()
}

// summarize summarises durations. An empty sample gives a Summary with
// N = 0 and zero figures, which JSON can carry (NaN it cannot).
func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = millis(d)
		sum += ms[i]
	}
	slices.Sort(ms)
	// ms is not empty, so each percentile is one of its values.
	p50, _ := percentile.NearestRank(ms, 50)
	p99, _ := percentile.NearestRank(ms, 99)
	return Summary{
		N:    len(ms),
		Min:  ms[0],
		P50:  p50,
		P99:  p99,
		Max:  ms[len(ms)-1],
		Mean: round3(sum / float64(len(ms))),
	}
}

// millis converts d to milliseconds, rounded to the microsecond.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// round3 rounds to three decimals, so that JSON figures do not carry
// meaningless digits.
func round3(x float64) float64 {
	return math.Round(x*1000) / 1000
}
