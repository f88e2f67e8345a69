package election_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestProfiles checks that both named profiles, and the empty name, give a
// valid timing, and that an unknown name is refused by name.
func TestProfiles(t *testing.T) {
	for _, name := range []string{"", election.ProfileDefault, election.ProfileFast} {
		tm, err := election.ProfileTiming(name)
		if err != nil {
			t.Fatalf("profile %q: %v", name, err)
		}
		if err := tm.Validate(); err != nil {
			t.Fatalf("profile %q does not validate: %v", name, err)
		}
	}
	if d, _ := election.ProfileTiming(""); d != election.MustProfile(election.ProfileDefault) {
		t.Fatalf("empty profile %+v, want the default one", d)
	}
	fast := election.MustProfile(election.ProfileFast)
	if fast.Heartbeat != 10*time.Millisecond || fast.ElectionMin != 100*time.Millisecond || fast.Step != 10*time.Millisecond {
		t.Fatalf("fast profile %+v, want docs/election.md's 10ms/100ms/10ms", fast)
	}
	def := election.MustProfile(election.ProfileDefault)
	if def.Heartbeat != 100*time.Millisecond || def.ElectionMin != 500*time.Millisecond || def.Step != 50*time.Millisecond {
		t.Fatalf("default profile %+v, want 100ms/500ms/50ms", def)
	}
	if _, err := election.ProfileTiming("turbo"); err == nil || !strings.Contains(err.Error(), `"turbo"`) {
		t.Fatalf("unknown profile: %v, want an error naming it", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustProfile of an unknown name did not panic")
		}
	}()
	election.MustProfile("turbo")
}

// TestValidate checks each rule of Timing.Validate: the edge that passes, the
// edge that fails, and that the error names the offending value.
func TestValidate(t *testing.T) {
	base := election.Timing{
		Heartbeat:     50 * time.Millisecond,
		ElectionMin:   500 * time.Millisecond,
		ElectionMax:   1000 * time.Millisecond,
		Step:          50 * time.Millisecond,
		MaxClockDrift: 0.05,
	}
	for _, tc := range []struct {
		name string
		edit func(*election.Timing)
		// want lists substrings of the error; none means valid.
		want []string
	}{
		{"base", func(*election.Timing) {}, nil},
		{"zero heartbeat", func(t *election.Timing) { t.Heartbeat = 0 }, []string{"heartbeat 0s", "positive"}},
		{"negative heartbeat", func(t *election.Timing) { t.Heartbeat = -time.Millisecond }, []string{"heartbeat -1ms"}},
		{"zero election min", func(t *election.Timing) { t.ElectionMin = 0 }, []string{"election timeout min 0s", "positive"}},
		{"negative election min", func(t *election.Timing) { t.ElectionMin = -time.Second }, []string{"min -1s"}},
		{"min equals max", func(t *election.Timing) { t.ElectionMax = t.ElectionMin }, []string{"min 500ms", "max 500ms"}},
		{"min above max", func(t *election.Timing) { t.ElectionMax = 400 * time.Millisecond }, []string{"min 500ms", "max 400ms"}},
		{"heartbeat a third of min", func(t *election.Timing) { t.Heartbeat = t.ElectionMin / 3 }, nil},
		{"heartbeat over a third", func(t *election.Timing) { t.Heartbeat = t.ElectionMin/3 + 1 }, []string{"heartbeat 166.666667ms", "500ms", "third"}},
		{"zero step", func(t *election.Timing) { t.Step = 0 }, nil},
		{"negative step", func(t *election.Timing) { t.Step = -time.Millisecond }, []string{"rank step -1ms"}},
		{"step equals min", func(t *election.Timing) { t.Step = t.ElectionMin }, nil},
		{"step over min", func(t *election.Timing) { t.Step = t.ElectionMin + 1 }, []string{"rank step 500.000001ms", "min 500ms"}},
		{"no drift", func(t *election.Timing) { t.MaxClockDrift = 0 }, nil},
		{"negative drift", func(t *election.Timing) { t.MaxClockDrift = -0.01 }, []string{"max clock drift -0.01"}},
		{"drift one half", func(t *election.Timing) { t.MaxClockDrift = 0.5 }, []string{"max clock drift 0.5"}},
		{"drift NaN", func(t *election.Timing) { t.MaxClockDrift = math.NaN() }, []string{"max clock drift NaN"}},
		{"drift infinite", func(t *election.Timing) { t.MaxClockDrift = math.Inf(1) }, []string{"max clock drift +Inf"}},
		// ε near one half shrinks the lease to about a third of ElectionMin,
		// under a heartbeat that is itself a third: the lease rule catches
		// what the heartbeat rule lets through.
		{"lease under heartbeat", func(t *election.Timing) {
			t.Heartbeat, t.ElectionMin, t.ElectionMax, t.MaxClockDrift = 100*time.Millisecond, 300*time.Millisecond, 600*time.Millisecond, 0.49
		}, []string{"lease 99.", "drift 0.49", "heartbeat 100ms"}},
		{"tiny election min", func(t *election.Timing) {
			t.Heartbeat, t.ElectionMin, t.ElectionMax, t.Step = time.Microsecond, 3*time.Microsecond, time.Millisecond, 0
		}, []string{"lease", "heartbeat 1µs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := base
			tc.edit(&tm)
			err := tm.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%+v refused: %v", tm, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%+v accepted", tm)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestValidateHeartbeatOverflow checks the heartbeat rule at the top of the
// Duration range, where Heartbeat×3 wraps around to a negative number. A
// heartbeat of about 146 years over an election timeout of about 292 years
// is absurd, but it is a configuration value, and Validate promises to
// refuse every inconsistent one: here the heartbeat is half the timeout.
func TestValidateHeartbeatOverflow(t *testing.T) {
	tm := election.Timing{
		Heartbeat:     1 << 62,
		ElectionMin:   math.MaxInt64 - 1,
		ElectionMax:   math.MaxInt64,
		MaxClockDrift: 0.05,
	}
	if err := tm.Validate(); err == nil {
		t.Errorf("Validate accepted heartbeat %v with election timeout min %v (more than a third): Heartbeat*3 overflows", tm.Heartbeat, tm.ElectionMin)
	}
}

// TestLeaseDuration pins the lease formula of docs/election.md: ElectionMin ×
// (1−ε)/(1+ε) minus a margin of ElectionMin/100, at least 1ms.
func TestLeaseDuration(t *testing.T) {
	def := election.MustProfile(election.ProfileDefault)
	// 500ms × 0.95/1.05 = 452380952.38ns; the margin is 5ms.
	want := 452380952*time.Nanosecond - 5*time.Millisecond
	got := def.LeaseDuration()
	if d := got - want; d < -time.Nanosecond || d > time.Nanosecond {
		t.Fatalf("default lease %v, want %v", got, want)
	}
	if bound := time.Duration(float64(def.ElectionMin) / 1.05 * 0.95); got >= bound {
		t.Fatalf("default lease %v not below ElectionMin/(1+ε)×(1−ε) = %v", got, bound)
	}
	fast := election.MustProfile(election.ProfileFast)
	if got, want := fast.LeaseDuration(), 90476190*time.Nanosecond-time.Millisecond; got-want < -1 || got-want > 1 {
		t.Fatalf("fast lease %v, want %v", got, want)
	}
	// Without drift the lease is ElectionMin less the margin, and the margin
	// never drops below 1ms.
	small := election.Timing{Heartbeat: 10 * time.Millisecond, ElectionMin: 60 * time.Millisecond, ElectionMax: time.Second}
	if got := small.LeaseDuration(); got != 59*time.Millisecond {
		t.Fatalf("lease %v for ElectionMin 60ms without drift, want 59ms", got)
	}
}

// TestLeaseEndsBeforeStickiness checks the inequality the lease rests on,
// over a grid of timings: a master whose clock runs slow by ε holds its lease
// for at most L/(1−ε) of real time, and a follower whose clock runs fast by
// ε stays sticky for at least ElectionMin/(1+ε) of real time; the first must
// end strictly before the second.
func TestLeaseEndsBeforeStickiness(t *testing.T) {
	for _, em := range []time.Duration{3 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond, 7 * time.Second, time.Hour} {
		for _, eps := range []float64{0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.45, 0.499} {
			tm := election.Timing{Heartbeat: time.Nanosecond, ElectionMin: em, ElectionMax: 2 * em, MaxClockDrift: eps}
			l := tm.LeaseDuration()
			master := float64(l) / (1 - eps)
			follower := float64(em) / (1 + eps)
			if master >= follower {
				t.Errorf("ElectionMin %v ε %v: lease %v lasts %.0fns of real time, stickiness only %.0fns", em, eps, l, master, follower)
			}
		}
	}
}
