//go:build race

package sim

// The race detector slows the simulator about tenfold; tests that sweep
// seeds run a smaller sample under it (make test runs the full sweep without).
const raceEnabled = true
