package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/clustd/clustd/election"
)

// TestLinearizabilityCheckerCanFail feeds porcupine histories with a known
// answer, so the second checker is shown to catch a stale master.
func TestLinearizabilityCheckerCanFail(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// won records an election won at call's candidacy whose winner became
	// master at ret.
	won := func(h *history, client int, term uint64, master string, call, ret time.Duration) {
		h.complete(h.write(client, term, master, call), ret)
	}
	cases := []struct {
		name string
		hist func(h *history)
		want porcupine.CheckResult
	}{
		{"in order", func(h *history) {
			won(h, 0, 1, "a", ms(0), ms(10))
			h.read(0, 1, "a", ms(20), ms(20))
			won(h, 1, 2, "b", ms(30), ms(40))
			h.read(1, 2, "b", ms(50), ms(50))
		}, porcupine.Ok},
		{"lower term finishes later", func(h *history) {
			// Term 2's campaign started before term 1 was won: legal.
			won(h, 1, 2, "b", ms(0), ms(30))
			won(h, 0, 1, "a", ms(5), ms(20))
			h.read(1, 2, "b", ms(40), ms(40))
		}, porcupine.Ok},
		{"stale master renews after a newer win", func(h *history) {
			won(h, 0, 1, "a", ms(0), ms(10))
			won(h, 1, 2, "b", ms(20), ms(30))
			h.read(0, 1, "a", ms(40), ms(40))
		}, porcupine.Illegal},
		{"terms go back", func(h *history) {
			won(h, 1, 2, "b", ms(0), ms(10))
			won(h, 0, 1, "a", ms(20), ms(30))
		}, porcupine.Illegal},
		{"a vote won late, never master, seen by a follower", func(h *history) {
			// Seed 8511: a won term 20's vote after b had won term
			// 21's, sent its first round, and d accepted it before
			// hearing of term 21; a never became master (b's voters
			// refused its round). Legal: a's write is still pending.
			h.write(0, 20, "a", ms(75))
			won(h, 1, 21, "b", ms(668), ms(759))
			h.read(3, 20, "a", ms(712), ms(715))
			h.read(0, 21, "b", ms(706), ms(725))
			h.read(3, 21, "b", ms(706), ms(740))
		}, porcupine.Ok},
		{"a winner master after a higher term's, then renewing", func(h *history) {
			won(h, 0, 20, "a", ms(75), ms(720))
			won(h, 1, 21, "b", ms(668), ms(700))
			h.read(0, 20, "a", ms(730), ms(730))
		}, porcupine.Illegal},
		{"a pending write seen after a higher term's", func(h *history) {
			won(h, 1, 2, "b", ms(0), ms(10))
			h.write(0, 1, "a", ms(20))
			h.read(2, 1, "a", ms(30), ms(35))
		}, porcupine.Illegal},
		{"read of a term nobody won", func(h *history) {
			won(h, 0, 1, "a", ms(0), ms(10))
			h.read(1, 1, "b", ms(20), ms(20))
		}, porcupine.Illegal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Options{Nodes: 2, Timing: defaultTiming(), Linearizability: true})
			if err != nil {
				t.Fatal(err)
			}
			s.hist.ops = nil
			c.hist(s.hist)
			html := filepath.Join(t.TempDir(), "history.html")
			got, err := s.Linearizable(10*time.Second, html)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			page, err := os.ReadFile(html)
			if c.want == porcupine.Illegal {
				if err != nil || !strings.Contains(string(page), "<html") {
					t.Fatalf("no visualisation written for an illegal history: %v", err)
				}
			} else if err == nil {
				t.Fatal("visualisation written for a legal history")
			}
		})
	}
}

// TestUnknownFailsTheRun: a porcupine check that times out has checked
// nothing, so the run fails, and its history is kept as a visualisation.
func TestUnknownFailsTheRun(t *testing.T) {
	old := linearizeTimeout
	linearizeTimeout = time.Nanosecond
	t.Cleanup(func() { linearizeTimeout = old })
	html := filepath.Join(t.TempDir(), "history.html")
	r, err := Run(RunConfig{Nodes: 5, Seed: 1, Duration: 10 * time.Minute, Faults: true, Mix: DefaultMix(), Profile: election.ProfileFast, Linearizability: true, HTMLPath: html})
	if err != nil {
		t.Fatal(err)
	}
	if r.Linearizable != string(porcupine.Unknown) {
		t.Skipf("porcupine finished %d operations within its nanosecond (%s): nothing to see", r.HistoryOps, r.Linearizable)
	}
	if r.OK() || !strings.Contains(r.Violations[0], "timed out (Unknown)") {
		t.Fatalf("a check that timed out passed the run: %v", r.Violations)
	}
	if fi, err := os.Stat(html); err != nil || fi.Size() == 0 {
		t.Fatalf("the history was not kept at %s: %v", html, err)
	}
}
