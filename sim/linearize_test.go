package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestLinearizabilityCheckerCanFail feeds porcupine histories with a known
// answer, so the second checker is shown to catch a stale master.
func TestLinearizabilityCheckerCanFail(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name string
		hist func(h *history)
		want porcupine.CheckResult
	}{
		{"in order", func(h *history) {
			h.write(0, 1, "a", ms(0), ms(10))
			h.read(0, 1, "a", ms(20), ms(20))
			h.write(1, 2, "b", ms(30), ms(40))
			h.read(1, 2, "b", ms(50), ms(50))
		}, porcupine.Ok},
		{"lower term finishes later", func(h *history) {
			// Term 2's campaign started before term 1 was won: legal.
			h.write(1, 2, "b", ms(0), ms(30))
			h.write(0, 1, "a", ms(5), ms(20))
			h.read(1, 2, "b", ms(40), ms(40))
		}, porcupine.Ok},
		{"stale master renews after a newer win", func(h *history) {
			h.write(0, 1, "a", ms(0), ms(10))
			h.write(1, 2, "b", ms(20), ms(30))
			h.read(0, 1, "a", ms(40), ms(40))
		}, porcupine.Illegal},
		{"terms go back", func(h *history) {
			h.write(1, 2, "b", ms(0), ms(10))
			h.write(0, 1, "a", ms(20), ms(30))
		}, porcupine.Illegal},
		{"read of a term nobody won", func(h *history) {
			h.write(0, 1, "a", ms(0), ms(10))
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
