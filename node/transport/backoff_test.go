package transport

import (
	"math/rand/v2"
	"testing"
	"time"
)

const (
	testMin = 100 * time.Millisecond
	testMax = 5 * time.Second
)

// ceilingAt is the upper bound of the delay returned by the n-th call of
// Next (counting from 0) after construction or Reset.
func ceilingAt(n int) time.Duration {
	c := testMin
	for range n {
		c *= 2
		if c >= testMax {
			return testMax
		}
	}
	return c
}

func TestBackoffBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 500 {
		b := NewBackoff(testMin, testMax, r)
		for n := range 20 {
			d := b.Next()
			if d < testMin || d > ceilingAt(n) {
				t.Fatalf("trial %d, attempt %d: delay %v outside [%v, %v]", trial, n, d, testMin, ceilingAt(n))
			}
		}
	}
}

// TestBackoffGrows checks that the delays fill their whole growing range:
// over many runs the largest delay seen at attempt n comes close to that
// attempt's ceiling, well past the previous one, until the cap.
func TestBackoffGrows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const trials, attempts = 400, 10
	var largest, smallest [attempts]time.Duration
	for i := range smallest {
		smallest[i] = testMax
	}
	for range trials {
		b := NewBackoff(testMin, testMax, r)
		for n := range attempts {
			d := b.Next()
			largest[n] = max(largest[n], d)
			smallest[n] = min(smallest[n], d)
		}
	}
	if largest[0] != testMin {
		t.Errorf("first delay reached %v, want exactly the minimum %v", largest[0], testMin)
	}
	for n := 1; n < attempts; n++ {
		c := ceilingAt(n)
		if largest[n] < c*9/10 {
			t.Errorf("attempt %d: largest delay %v, want close to the ceiling %v", n, largest[n], c)
		}
		if c < testMax && largest[n] <= ceilingAt(n-1) {
			t.Errorf("attempt %d: largest delay %v did not pass the previous ceiling %v", n, largest[n], ceilingAt(n-1))
		}
		// Full jitter: short delays stay possible however long the streak.
		if smallest[n] > testMin+(c-testMin)/10 {
			t.Errorf("attempt %d: smallest delay %v, want near the minimum %v", n, smallest[n], testMin)
		}
	}
}

func TestBackoffCapped(t *testing.T) {
	// A maximum near the top of the range must not overflow the doubling.
	const huge = time.Duration(1<<63 - 1)
	for _, maxD := range []time.Duration{testMax, huge} {
		b := NewBackoff(testMin, maxD, rand.New(rand.NewPCG(3, 3)))
		for n := range 200 {
			if d := b.Next(); d < testMin || d > maxD {
				t.Fatalf("max %v, attempt %d: delay %v outside [%v, %v]", maxD, n, d, testMin, maxD)
			}
		}
		if b.ceiling != maxD {
			t.Errorf("ceiling %v after many attempts, want the cap %v", b.ceiling, maxD)
		}
	}
}

func TestBackoffReset(t *testing.T) {
	b := NewBackoff(testMin, testMax, rand.New(rand.NewPCG(4, 4)))
	for range 10 {
		b.Next()
	}
	b.Reset()
	if d := b.Next(); d != testMin {
		t.Errorf("first delay after Reset %v, want %v", d, testMin)
	}
	if d := b.Next(); d < testMin || d > 2*testMin {
		t.Errorf("second delay after Reset %v, want within [%v, %v]", d, testMin, 2*testMin)
	}
}

func TestBackoffDeterministic(t *testing.T) {
	a := NewBackoff(testMin, testMax, rand.New(rand.NewPCG(5, 6)))
	b := NewBackoff(testMin, testMax, rand.New(rand.NewPCG(5, 6)))
	for n := range 30 {
		if x, y := a.Next(), b.Next(); x != y {
			t.Fatalf("attempt %d: %v and %v from the same seed", n, x, y)
		}
	}
}

func TestBackoffEqualBounds(t *testing.T) {
	b := NewBackoff(time.Second, time.Second, nil)
	for range 5 {
		if d := b.Next(); d != time.Second {
			t.Fatalf("delay %v, want exactly 1s", d)
		}
	}
}

func TestBackoffGlobalRand(t *testing.T) {
	b := NewBackoff(testMin, testMax, nil)
	for n := range 20 {
		if d := b.Next(); d < testMin || d > ceilingAt(n) {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, testMin, ceilingAt(n))
		}
	}
}

func TestNewBackoffRejectsBadRange(t *testing.T) {
	for _, tc := range []struct{ min, max time.Duration }{
		{0, time.Second},
		{-time.Second, time.Second},
		{2 * time.Second, time.Second},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBackoff(%v, %v) did not panic", tc.min, tc.max)
				}
			}()
			NewBackoff(tc.min, tc.max, nil)
		}()
	}
}
