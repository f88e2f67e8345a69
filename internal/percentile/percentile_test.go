package percentile

import (
	"math"
	"testing"
)

func TestNearestRank(t *testing.T) {
	ten := seq(10)
	hundred := seq(100)
	thousand := seq(1000)
	for _, tc := range []struct {
		name   string
		sorted []int
		p      float64
		want   int
	}{
		{"single value", []int{7}, 50, 7},
		{"single value p99", []int{7}, 99, 7},
		{"median of ten is the fifth", ten, 50, 5},
		{"p99 of ten is the maximum", ten, 99, 10},
		{"p100 is the maximum", ten, 100, 10},
		{"p10 of ten is the first", ten, 10, 1},
		{"tiny p is the minimum", ten, 0.001, 1},
		{"p99 of a hundred is the 99th", hundred, 99, 99},
		{"p50 of a hundred is the 50th", hundred, 50, 50},
		{"median of an even pair is the lower", []int{1, 2}, 50, 1},
		{"p99.9 of a thousand is the 999th, float noise aside", thousand, 99.9, 999},
	} {
		got, ok := NearestRank(tc.sorted, tc.p)
		if !ok || got != tc.want {
			t.Errorf("%s: NearestRank(p=%v) = %v, %v; want %v", tc.name, tc.p, got, ok, tc.want)
		}
	}
}

func TestNearestRankRejects(t *testing.T) {
	for _, tc := range []struct {
		sorted []int
		p      float64
	}{
		{nil, 50},
		{[]int{1}, 0},
		{[]int{1}, -1},
		{[]int{1}, 101},
		{[]int{1}, math.NaN()},
	} {
		if got, ok := NearestRank(tc.sorted, tc.p); ok {
			t.Errorf("NearestRank(%v, %v) = %v, want no value", tc.sorted, tc.p, got)
		}
	}
}

// TestNearestRankIsCeiling checks the rank against the exact ceiling,
// computed in integers, for every sample size up to 10 000 and the
// percentiles the reports use.
func TestNearestRankIsCeiling(t *testing.T) {
	for n := 1; n <= 10000; n++ {
		s := seq(n)
		for _, p := range []int{1, 10, 50, 90, 99, 100} {
			want := (p*n + 99) / 100
			if got, _ := NearestRank(s, float64(p)); got != want {
				t.Fatalf("n=%d p=%d: rank %d, want %d", n, p, got, want)
			}
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}
