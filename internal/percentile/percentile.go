// Package percentile is the one percentile rule of clustd's figures: the
// simulator's, the chaos suite's and the benchmarks' failover times all use
// it, so that a p99 means the same thing in each of their reports.
package percentile

// NearestRank returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the value of rank ⌈p/100 × n⌉ among n values in
// ascending order. It is always one of the values, and with fewer than 100
// of them the 99th percentile is the maximum, which is the honest reading of
// a small sample. It reports false when there are no values or p is out of
// range.
func NearestRank[T any](sorted []T, p float64) (T, bool) {
	n := len(sorted)
	if n == 0 || !(p > 0 && p <= 100) {
		var zero T
		return zero, false
	}
	// Rounding up by a hair less than one, rather than math.Ceil, keeps
	// floating-point noise from moving the rank: 99.9/100 × 1000 is a
	// little above 999.
	rank := int(p/100*float64(n) + 0.999999)
	return sorted[min(max(rank, 1), n)-1], true
}
