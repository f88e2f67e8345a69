package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestMedianLeavesInputAlone(t *testing.T) {
	in := []float64{5, 1, 4, 2, 3}
	orig := slices.Clone(in)
	if got := median(in); got != 3 {
		t.Errorf("median = %v, want 3", got)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("median reordered its input: %v", in)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	// Out of order on purpose: summarize sorts.
	ds := []time.Duration{30 * ms, 10 * ms, 20 * ms, 1500 * time.Microsecond, 40 * ms}
	got := summarize(ds)
	want := Summary{N: 5, Min: 1.5, P50: 20, P99: 40, Max: 40, Mean: 20.3}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if ds[0] != 30*ms {
		t.Error("summarize reordered its input")
	}
	// With fewer than 100 values, p99 is the maximum.
	thirty := make([]time.Duration, 30)
	for i := range thirty {
		thirty[i] = time.Duration(30-i) * ms
	}
	if got := summarize(thirty); got.P50 != 15 || got.P99 != 30 || got.Max != 30 || got.Min != 1 {
		t.Errorf("summarize(1..30 ms) = %+v, want p50 15, p99 = max 30", got)
	}
	if got := summarize(nil); got != (Summary{}) {
		t.Errorf("summarize(nil) = %+v, want the zero Summary", got)
	}
}

func TestMillisKeepsMicroseconds(t *testing.T) {
	if got := millis(1234567 * time.Nanosecond); got != 1.234 {
		t.Errorf("millis = %v, want 1.234", got)
	}
	if got := millis(-2 * time.Millisecond); got != -2 {
		t.Errorf("millis = %v, want -2", got)
	}
}
