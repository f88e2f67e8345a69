package bench

import (
	"math"
	"slices"
	"time"

	"github.com/clustd/clustd/internal/percentile"
)

// Summary describes a sample of durations in milliseconds. The percentiles
// use the nearest-rank method: the p-th percentile of n sorted values is
// the value of rank ceil(p/100 × n). It is always one of the observed
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

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted values by
// the nearest-rank method (package percentile), or NaN when there are none.
// The values must be in ascending order.
func Percentile(sorted []float64, p float64) float64 {
	v, ok := percentile.NearestRank(sorted, p)
	if !ok {
		return math.NaN()
	}
	return v
}

// Median returns the median of values by nearest rank (the lower middle
// value of an even count), or NaN when there are none. It does not modify
// values.
func Median(values []float64) float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	return Percentile(s, 50)
}

// Summarize summarises durations. An empty sample gives a Summary with
// N = 0 and zero figures, which JSON can carry (NaN it cannot).
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = Millis(d)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Summary{
		N:    len(ms),
		Min:  ms[0],
		P50:  Percentile(ms, 50),
		P99:  Percentile(ms, 99),
		Max:  ms[len(ms)-1],
		Mean: round3(sum / float64(len(ms))),
	}
}

// Millis converts d to milliseconds, rounded to the microsecond.
func Millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// round3 rounds to three decimals, so that JSON figures do not carry
// meaningless digits.
func round3(x float64) float64 {
	return math.Round(x*1000) / 1000
}
