package chaos

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// ms is a CLOCK_BOOTTIME instant in whole milliseconds, for hand-made
// histories.
func ms(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }

// tenure writes the four edges of one tenure of node in term.
func tenureRecs(node string, term uint64, start, done, demote, end int) []Record {
	return []Record{
		{Node: node, Event: EvPromoteStart, Term: term, MonoNS: ms(start)},
		{Node: node, Event: EvPromoteDone, Term: term, MonoNS: ms(done)},
		{Node: node, Event: EvDemoteStart, Term: term, MonoNS: ms(demote)},
		{Node: node, Event: EvDemoteDone, Term: term, MonoNS: ms(end)},
	}
}

func build(end int, recs ...[]Record) (*history, map[string][]Record) {
	byNode := map[string][]Record{}
	for _, rs := range recs {
		for _, r := range rs {
			byNode[r.Node] = append(byNode[r.Node], r)
		}
	}
	return buildHistory([]string{"a", "b", "c"}, byNode, nil, time.Duration(ms(end))), byNode
}

// TestHistoryChecks feeds the checkers hand-made histories with a known
// answer: each must pass the correct ones and catch the broken ones.
func TestHistoryChecks(t *testing.T) {
	cases := []struct {
		name     string
		recs     [][]Record
		overlaps int // conservative
		strict   int
		terms    int
		lin      porcupine.CheckResult
	}{
		{
			name: "clean failover",
			recs: [][]Record{tenureRecs("a", 1, 0, 1, 100, 101), tenureRecs("b", 2, 150, 151, 300, 301)},
			lin:  porcupine.Ok,
		},
		{
			name: "hand-over to the nanosecond is not an overlap",
			recs: [][]Record{tenureRecs("a", 1, 0, 1, 99, 100), tenureRecs("b", 2, 100, 101, 300, 301)},
			lin:  porcupine.Ok,
		},
		{
			name: "stale master still acting after a newer promotion",
			recs: [][]Record{tenureRecs("a", 1, 0, 1, 200, 201), tenureRecs("b", 2, 150, 151, 300, 301)},
			// a acts until 201, b from 150: an overlap on both intervals.
			overlaps: 1, strict: 1,
			lin: porcupine.Illegal,
		},
		{
			name: "demote ends after promote starts: only the conservative check sees it",
			recs: [][]Record{tenureRecs("a", 1, 0, 1, 149, 152), tenureRecs("b", 2, 150, 153, 300, 301)},
			// a surely acts until 149 and b from 153: no strict overlap;
			// a may act until 152 and b from 150: a conservative one.
			overlaps: 1, strict: 0,
			lin: porcupine.Illegal,
		},
		{
			name:  "term goes back",
			recs:  [][]Record{tenureRecs("b", 2, 0, 1, 100, 101), tenureRecs("a", 1, 150, 151, 300, 301)},
			terms: 1,
			lin:   porcupine.Illegal,
		},
		{
			name:  "two masters in one term, one after the other",
			recs:  [][]Record{tenureRecs("a", 3, 0, 1, 100, 101), tenureRecs("b", 3, 150, 151, 300, 301)},
			terms: 1,
			lin:   porcupine.Illegal,
		},
		{
			name: "same node again in its term after its own lease ran out",
			recs: [][]Record{tenureRecs("a", 4, 0, 1, 100, 101), tenureRecs("a", 4, 120, 121, 200, 201), tenureRecs("b", 5, 260, 261, 300, 301)},
			lin:  porcupine.Ok,
		},
		{
			name: "the campaign of a higher term began before a lower term's promotion",
			recs: [][]Record{
				tenureRecs("a", 1, 10, 11, 100, 101),
				{{Node: "b", Event: EvCandidate, Term: 2, MonoNS: ms(5)}},
				tenureRecs("b", 2, 150, 151, 300, 301),
			},
			lin: porcupine.Ok,
		},
		{
			name:     "three nodes, overlap among the last two",
			recs:     [][]Record{tenureRecs("a", 1, 0, 1, 100, 101), tenureRecs("b", 2, 150, 151, 300, 320), tenureRecs("c", 3, 310, 311, 400, 401)},
			overlaps: 1, strict: 0,
			lin: porcupine.Illegal,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, byNode := build(1000, c.recs...)
			if got := len(h.Overlaps()); got != c.overlaps {
				t.Errorf("conservative overlaps: got %d, want %d: %v", got, c.overlaps, h.Overlaps())
			}
			if got := len(h.StrictOverlaps()); got != c.strict {
				t.Errorf("strict overlaps: got %d, want %d: %v", got, c.strict, h.StrictOverlaps())
			}
			if got := h.TermViolations(byNode); len(got) != c.terms {
				t.Errorf("term violations: got %q, want %d", got, c.terms)
			}
			html := filepath.Join(t.TempDir(), "history.html")
			res, err := h.Linearizable(10*time.Second, html, []vizNote{{Node: -1, From: 0, To: time.Duration(ms(50)), Text: "a fault"}})
			if err != nil {
				t.Fatal(err)
			}
			if res != c.lin {
				t.Errorf("porcupine: got %v, want %v", res, c.lin)
			}
			page, err := os.ReadFile(html)
			switch {
			case c.lin == porcupine.Illegal && (err != nil || !bytes.Contains(page, []byte("<html"))):
				t.Errorf("no visualisation written for an illegal history: %v", err)
			case c.lin != porcupine.Illegal && err == nil:
				t.Error("visualisation written for a legal history")
			}
		})
	}
}

// TestPorcupineAgreesWithOverlapCheck checks the claim in linearize.go on
// many generated histories: with calls at any time up to the promote
// start, porcupine objects exactly when the interval checks do.
func TestPorcupineAgreesWithOverlapCheck(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	var good, bad int
	for seed := range 300 {
		// A chain of tenures with rising terms whose gaps may go negative.
		x := uint64(seed)*2654435761 + 1
		next := func(n int) int {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			return int(x % uint64(n))
		}
		var recs [][]Record
		at := 0
		lastEnd := map[string]int{}
		for term := uint64(1); term <= 6; term++ {
			node := nodes[next(3)]
			start := at + next(40) - 10 // sometimes before the last end
			// One driver's tenures never overlap: its Trigger is serial.
			start = max(start, 0, lastEnd[node]+1)
			end := start + 5 + next(60)
			recs = append(recs,
				[]Record{{Node: node, Event: EvCandidate, Term: term, MonoNS: ms(max(start-next(200), 0))}},
				tenureRecs(node, term, start, start+1, end-1, end))
			at, lastEnd[node] = end, end
		}
		h, byNode := build(10000, recs...)
		broken := len(h.Overlaps()) > 0 || len(h.TermViolations(byNode)) > 0
		res, err := h.Linearizable(10*time.Second, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if (res == porcupine.Illegal) != broken {
			t.Fatalf("seed %d: porcupine %v but overlaps %v, terms %v\n%+v", seed, res, h.Overlaps(), h.TermViolations(byNode), h.Tenures)
		}
		if broken {
			bad++
		} else {
			good++
		}
	}
	// Both answers must be well represented, or the test proves little.
	if good < 50 || bad < 50 {
		t.Fatalf("%d correct and %d broken histories: the generator needs tuning", good, bad)
	}
}

func TestBuildHistoryEdgeCases(t *testing.T) {
	recs := []Record{
		{Node: "a", Event: EvState, Term: 3, MonoNS: ms(1), Role: "candidate"},
		{Node: "a", Event: EvPromoteStart, Term: 3, MonoNS: ms(10)},
		{Node: "a", Event: EvPromoteDone, Term: 3, MonoNS: ms(11)},
		// Straight on to term 4 with no demote in between.
		{Node: "a", Event: EvPromoteStart, Term: 4, MonoNS: ms(50)},
		{Node: "a", Event: EvPromoteDone, Term: 4, MonoNS: ms(51)},
		// And never demoted before the run ended.
	}
	exec := []Record{
		{Node: "a", Event: EvExecStart, PID: 7, Term: 3, MonoNS: ms(12)},
		{Node: "a", Event: EvExecStop, PID: 7, Term: 3, MonoNS: ms(60)},
		{Node: "b", Event: EvExecStart, PID: 9, Term: 5, MonoNS: ms(59)},
	}
	h := buildHistory([]string{"a", "b"}, map[string][]Record{"a": recs}, exec, time.Duration(ms(100)))
	if len(h.Tenures) != 2 {
		t.Fatalf("tenures: %+v", h.Tenures)
	}
	first, second := h.Tenures[0], h.Tenures[1]
	if first.Campaign != time.Duration(ms(1)) || first.End != time.Duration(ms(50)) || first.Cut != "next promote" {
		t.Errorf("first tenure: %+v", first)
	}
	if second.End != time.Duration(ms(100)) || second.Cut != "end of run" {
		t.Errorf("second tenure: %+v", second)
	}
	ov := h.ExecOverlaps()
	if len(ov) != 1 || ov[0].Length() != time.Duration(ms(1)) {
		t.Errorf("exec overlaps: %v", ov)
	}
	// Without a stop, a run ends one interval after its last act: it signs
	// life every ExecAliveEvery while it runs.
	if h.Exec[1].Cut != "killed" || h.Exec[1].End != time.Duration(ms(59))+ExecAliveEvery {
		t.Errorf("unterminated exec run: %+v", h.Exec[1])
	}
}

// A probe killed while draining has no stop record: its last sign of life
// bounds its end, one interval later, and an overlap is judged from there.
func TestExecKilledWhileDraining(t *testing.T) {
	exec := []Record{
		{Node: "a", Event: EvExecStart, PID: 7, Term: 3, MonoNS: ms(10)},
		{Node: "a", Event: EvExecAlive, PID: 7, Term: 3, MonoNS: ms(50)},
		{Node: "a", Event: EvExecAlive, PID: 7, Term: 3, MonoNS: ms(55)},
		{Node: "b", Event: EvExecStart, PID: 9, Term: 4, MonoNS: ms(58)},
		{Node: "c", Event: EvExecStart, PID: 11, Term: 5, MonoNS: ms(80)},
	}
	h := buildHistory([]string{"a", "b", "c"}, nil, exec, time.Duration(ms(100)))
	a := h.Exec[0]
	if a.Node != "a" || a.Cut != "killed" || a.End != time.Duration(ms(55))+ExecAliveEvery {
		t.Fatalf("killed run: %+v", a)
	}
	// b started 2 ms before a's end could be ruled out: an overlap of 2 ms.
	ov := h.ExecOverlaps()
	if len(ov) == 0 || ov[0].Length() != 2*time.Millisecond {
		t.Errorf("exec overlaps: %v", ov)
	}
}

func TestFiguresOfAHistory(t *testing.T) {
	h, _ := build(1000, tenureRecs("a", 1, 0, 10, 100, 101), tenureRecs("b", 2, 151, 160, 300, 301), tenureRecs("b", 2, 310, 311, 400, 401))
	if got := h.MasterChanges(); got != 1 {
		t.Errorf("master changes: %d", got)
	}
	if got := h.Repromotions(); got != 1 {
		t.Errorf("repromotions: %d", got)
	}
	if gap, ok := h.ClosestHandOver(); !ok || gap != 50*time.Millisecond {
		t.Errorf("closest hand-over: %v %v", gap, ok)
	}
	if d, ok := h.NextMaster(time.Duration(ms(120))); !ok || d != 40*time.Millisecond {
		t.Errorf("next master after 120ms: %v %v", d, ok)
	}
	if d, ok := h.NextMaster(time.Duration(ms(50))); !ok || d != 0 {
		t.Errorf("next master during a tenure: %v %v", d, ok)
	}
	// Acting: 10–100, 160–300, 311–400 of 0–1000: 90+140+89 = 319.
	if got := h.Availability(0, time.Duration(ms(1000))); got < 0.3189 || got > 0.3191 {
		t.Errorf("availability: %v", got)
	}
}

func TestReadRecords(t *testing.T) {
	in := `{"node":"a","event":"promote_start","term":1,"mono_ns":5}
{"node":"a","event":"promote_done","term":1,"mono_ns":6}
{"node":"a","event":"demote_st`
	recs, err := readRecords(strings.NewReader(in))
	if err != nil || len(recs) != 2 || recs[1].Event != EvPromoteDone {
		t.Fatalf("%v %+v", err, recs)
	}
	if _, err := readRecords(strings.NewReader("{nope\n")); err == nil {
		t.Fatal("a malformed line was accepted")
	}
	var buf bytes.Buffer
	f, err := os.Create(filepath.Join(t.TempDir(), "h.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := AppendRecord(f, Record{Node: "b", Event: EvExecStart, PID: 3, MonoNS: 9}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	buf.Write(b)
	recs, err = readRecords(&buf)
	if err != nil || len(recs) != 1 || recs[0].PID != 3 {
		t.Fatalf("round trip: %v %+v", err, recs)
	}
}

func TestStats(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 200; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	st := statsOf(s)
	if st.P50 != 100*time.Millisecond || st.P99 != 198*time.Millisecond || st.Max != 200*time.Millisecond || st.N != 200 {
		t.Fatalf("%+v", st)
	}
	if one := statsOf([]time.Duration{7}); one.P99 != 7 || one.P50 != 7 {
		t.Fatalf("%+v", one)
	}
}

func TestFailoverAndHandOverTimes(t *testing.T) {
	// a is master until its lease runs out after a kill at 100ms; b takes
	// over; then a planned transfer at 400ms hands over from b to c.
	h, _ := build(1000,
		tenureRecs("a", 1, 0, 1, 540, 541),
		tenureRecs("b", 2, 600, 610, 700, 705),
		tenureRecs("c", 3, 712, 715, 900, 901))
	if d, ok := firstPromotionAfter(h, time.Duration(ms(100))); !ok || d != 510*time.Millisecond {
		t.Errorf("failover after a kill at 100ms: %v %v, want 510ms (b's promote done at 610ms)", d, ok)
	}
	if d, ok := handOverTime(h, "b", time.Duration(ms(650))); !ok || d != 10*time.Millisecond {
		t.Errorf("hand-over from b at 650ms: %v %v, want 10ms (b done at 705ms, c acting at 715ms)", d, ok)
	}
	if _, ok := firstPromotionAfter(h, time.Duration(ms(800))); ok {
		t.Error("a promotion found after the last one")
	}
}

// A whole-node freeze: a's driver acts until 100 ms, is frozen, and after
// the thaw (at 900 ms) finds its lease gone, holds back and demotes. Its
// tenure ends one interval after its last act, so b, promoted at 600 ms,
// does not overlap it; the porcupine model agrees. Had a acted once after
// b's promote, the overlap would stand.
func TestHeldBackTenureEndsAtItsLastAct(t *testing.T) {
	a := []Record{
		{Node: "a", Event: EvPromoteStart, Term: 1, MonoNS: ms(0)},
		{Node: "a", Event: EvPromoteDone, Term: 1, MonoNS: ms(1)},
		{Node: "a", Event: EvActing, Term: 1, MonoNS: ms(95)},
		{Node: "a", Event: EvActing, Term: 1, MonoNS: ms(100)},
		{Node: "a", Event: EvHeld, Term: 1, MonoNS: ms(900), UntilNS: ms(150)},
		{Node: "a", Event: EvDemoteDone, Term: 1, MonoNS: ms(901)},
	}
	b := tenureRecs("b", 2, 600, 601, 2000, 2001)
	h, _ := build(3000, a, b)
	if got := h.Tenures[0]; got.End != time.Duration(ms(100))+ActEvery || got.Cut != "held back" || got.DemoteStart != got.End {
		t.Fatalf("held-back tenure %+v, want it to end at its last act + ActEvery", got)
	}
	if ov := h.Overlaps(); len(ov) != 0 {
		t.Errorf("overlaps %v", ov)
	}
	if res, _ := h.Linearizable(time.Minute, "", nil); res != porcupine.Ok {
		t.Errorf("porcupine: %v", res)
	}

	// An act after b's promote (a renewal let it go on) is counted.
	acted := slices.Insert(slices.Clone(a), 4, Record{Node: "a", Event: EvActing, Term: 1, MonoNS: ms(650)})
	h, _ = build(3000, acted, b)
	if ov := h.Overlaps(); len(ov) != 1 || ov[0].To != time.Duration(ms(650))+ActEvery {
		t.Errorf("overlaps %v, want one until a's act at 650 ms + ActEvery", ov)
	}
	// So is a write that was checked in time but began only after the
	// deadline (a freeze between check and write): it may have landed as
	// late as it returned.
	late := slices.Insert(slices.Clone(a), 4, Record{Node: "a", Event: EvLate, Term: 1, MonoNS: ms(100), UntilNS: ms(101), WriteNS: ms(899), LandedNS: ms(900)})
	h, _ = build(3000, late, b)
	if ov := h.Overlaps(); len(ov) != 1 || ov[0].To != time.Duration(ms(900)) {
		t.Errorf("overlaps %v, want one until the late write's return at 900 ms", ov)
	}
	// One that began in time landed then, however late it returned.
	late[4].WriteNS = ms(100)
	h, _ = build(3000, late, b)
	if ov := h.Overlaps(); len(ov) != 0 {
		t.Errorf("overlaps %v, for a write begun before the deadline", ov)
	}
}

// The probe's runs follow the same rule: held back, a run ends at its
// last act; a stop record written under the lease ends it as before.
func TestExecHeldBack(t *testing.T) {
	exec := []Record{
		{Node: "a", Event: EvExecStart, PID: 7, Term: 3, MonoNS: ms(10)},
		{Node: "a", Event: EvExecAlive, PID: 7, Term: 3, MonoNS: ms(15)},
		{Node: "a", Event: EvExecHeld, PID: 7, Term: 3, MonoNS: ms(500)},
		{Node: "b", Event: EvExecStart, PID: 9, Term: 4, MonoNS: ms(300)},
		{Node: "b", Event: EvExecAlive, PID: 9, Term: 4, MonoNS: ms(305)},
		{Node: "b", Event: EvExecHeld, PID: 9, Term: 4, MonoNS: ms(306)},
		{Node: "b", Event: EvExecAlive, PID: 9, Term: 4, MonoNS: ms(310)},
		{Node: "b", Event: EvExecStop, PID: 9, Term: 4, MonoNS: ms(320)},
	}
	h := buildHistory([]string{"a", "b"}, nil, exec, time.Duration(ms(1000)))
	if a := h.Exec[0]; a.Cut != "held back" || a.End != time.Duration(ms(15))+ExecAliveEvery {
		t.Errorf("a's run %+v", a)
	}
	if b := h.Exec[1]; b.Cut != "" || b.End != time.Duration(ms(320)) {
		t.Errorf("b's run %+v: held back, then acting again and stopped", b)
	}
	if ov := h.ExecOverlaps(); len(ov) != 0 {
		t.Errorf("overlaps %v", ov)
	}
}

// A probe that held back its start but acted later (finishing work after
// its stop signal) still has a run, from its first act: every act counts.
func TestExecRunFromItsFirstAct(t *testing.T) {
	exec := []Record{
		{Node: "a", Event: EvExecHeld, PID: 7, Term: 3, MonoNS: ms(10)},
		{Node: "a", Event: EvExecAlive, PID: 7, Term: 3, MonoNS: ms(40)},
		{Node: "b", Event: EvExecStart, PID: 9, Term: 4, MonoNS: ms(42)},
	}
	h := buildHistory([]string{"a", "b"}, nil, exec, time.Duration(ms(1000)))
	if len(h.Exec) != 2 || h.Exec[0].Start != time.Duration(ms(40)) || h.Exec[0].End != time.Duration(ms(40))+ExecAliveEvery {
		t.Fatalf("runs %+v", h.Exec)
	}
	if ov := h.ExecOverlaps(); len(ov) != 1 {
		t.Errorf("overlaps %v, want a's late act to overlap b's start", ov)
	}
}

// The shared file's order is where the probes' acts landed. An act checked
// in time whose write returned only after a freeze, but which sits before
// the next master's first line, landed before it: no violation. The same
// act landing after that line is one, although its check time is early.
func TestExecOrder(t *testing.T) {
	a := []Record{
		{Node: "a", Event: EvExecStart, PID: 7, Term: 3, MonoNS: ms(10)},
		{Node: "a", Event: EvExecAlive, PID: 7, Term: 3, MonoNS: ms(100), UntilNS: ms(150)},
	}
	late := Record{Node: "a", Event: EvLate, PID: 7, Term: 3, MonoNS: ms(100), UntilNS: ms(150), LandedNS: ms(600)}
	b := []Record{
		{Node: "b", Event: EvExecStart, PID: 9, Term: 4, MonoNS: ms(400)},
		{Node: "b", Event: EvExecAlive, PID: 9, Term: 4, MonoNS: ms(405)},
	}
	inOrder := slices.Concat(a, b, []Record{late})
	h := buildHistory([]string{"a", "b"}, nil, inOrder, time.Duration(ms(1000)))
	if v := h.ExecOrderViolations(); len(v) != 0 {
		t.Errorf("violations %v, though a's last act landed before b's first", v)
	}
	if ov := h.ExecOverlaps(); len(ov) != 0 {
		t.Errorf("overlaps %v", ov)
	}
	landedAfter := slices.Concat(a[:1], b[:1], a[1:], b[1:], []Record{late})
	h = buildHistory([]string{"a", "b"}, nil, landedAfter, time.Duration(ms(1000)))
	if v := h.ExecOrderViolations(); len(v) != 1 || !strings.Contains(v[0], "a's command (pid 7, term 3) wrote line 3") {
		t.Errorf("violations %v, want a's act landing after b's start", v)
	}
}
