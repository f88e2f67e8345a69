package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"single value", []float64{7}, 50, 7},
		{"single value p99", []float64{7}, 99, 7},
		{"median of ten is the fifth", ten, 50, 5},
		{"p99 of ten is the maximum", ten, 99, 10},
		{"p100 is the maximum", ten, 100, 10},
		{"p10 of ten is the first", ten, 10, 1},
		{"tiny p is the minimum", ten, 0.001, 1},
		{"p99 of a hundred is the 99th", hundred, 99, 99},
		{"p50 of a hundred is the 50th", hundred, 50, 50},
		{"median of an even pair is the lower", []float64{1, 2}, 50, 1},
		{"thirty values: p99 is the maximum", seq(30), 99, 30},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

func TestPercentileRejects(t *testing.T) {
	for _, tc := range []struct {
		sorted []float64
		p      float64
	}{
		{nil, 50},
		{[]float64{}, 99},
		{[]float64{1, 2}, 0},
		{[]float64{1, 2}, -1},
		{[]float64{1, 2}, 100.5},
		{[]float64{1, 2}, math.NaN()},
	} {
		if got := Percentile(tc.sorted, tc.p); !math.IsNaN(got) {
			t.Errorf("Percentile(%v, %v) = %v, want NaN", tc.sorted, tc.p, got)
		}
	}
}

func TestMedianLeavesInputAlone(t *testing.T) {
	in := []float64{5, 1, 4, 2, 3}
	orig := slices.Clone(in)
	if got := Median(in); got != 3 {
		t.Errorf("Median = %v, want 3", got)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("Median reordered its input: %v", in)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	// Out of order on purpose: Summarize sorts.
	ds := []time.Duration{30 * ms, 10 * ms, 20 * ms, 1500 * time.Microsecond, 40 * ms}
	got := Summarize(ds)
	want := Summary{N: 5, Min: 1.5, P50: 20, P99: 40, Max: 40, Mean: 20.3}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if ds[0] != 30*ms {
		t.Error("Summarize reordered its input")
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want the zero Summary", got)
	}
}

func TestMillisKeepsMicroseconds(t *testing.T) {
	if got := Millis(1234567 * time.Nanosecond); got != 1.234 {
		t.Errorf("Millis = %v, want 1.234", got)
	}
	if got := Millis(-2 * time.Millisecond); got != -2 {
		t.Errorf("Millis = %v, want -2", got)
	}
}
