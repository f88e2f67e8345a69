package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/clustd/clustd/internal/boottime"
)

// Events of the history files. The recorder driver writes the first
// eight, the probe command run by `clustd driver exec` the exec ones, and
// both write EvLate.
//
// The recorder and the probe are drivers and services that must never act
// beside another master, even after a whole-machine freeze: each checks its
// lease (driverclient.Lease) just before each action and acts only while
// it holds. Their acts are the records stamped with the time of that check
// (promote and demote records, EvActing, the exec records but EvExecHeld);
// when a check fails they write EvHeld or EvExecHeld instead and act no
// more until a check passes. A tenure or a run that ends held back ended
// at its last act (plus the interval to the next, to be safe), however
// much later the driver or the probe noticed: see BuildHistory.
const (
	// EvPromoteStart is written when Trigger is called with a master state,
	// before the driver does anything: from here on it may act as master.
	EvPromoteStart = "promote_start"
	// EvPromoteDone is written when the promote's work is done: the driver
	// surely acts as master.
	EvPromoteDone = "promote_done"
	// EvDemoteStart is written when Trigger is called with a state that is
	// not master while the driver was: it is stopping.
	EvDemoteStart = "demote_start"
	// EvDemoteDone is written once the demote's work is done: from here on
	// the driver surely no longer acts as master.
	EvDemoteDone = "demote_done"
	// EvState is any other Trigger call (a follower or candidate state),
	// which tells which terms the node saw and when.
	EvState = "state"
	// EvCandidate is the daemon's own "election" event: the node became
	// candidate for Term at MonoNS, by the daemon's reading of the clock.
	EvCandidate = "candidate"
	// EvActing is written every ActEvery while the driver is master: an
	// act, each checked against the lease, so that a driver frozen while
	// master leaves a record of the last moment it acted.
	EvActing = "acting"
	// EvHeld is written when the driver, about to act, found its lease
	// gone; Reason says which deadline had passed, UntilNS when. It is not
	// an act.
	EvHeld = "held"
	// EvLate follows an act that was checked in time (MonoNS, against
	// UntilNS) but whose write returned only at LandedNS, after that
	// deadline. If the write began (WriteNS) before the deadline, it is
	// taken to have landed then: SIGSTOP and the cgroup freezer stop a
	// process only as a system call returns, never inside one, and a file
	// with one writer keeps no write waiting. WriteNS is read just before
	// the system call, though, so a freeze in the few instructions between
	// that read and the call would make a late landing look timely: a
	// window of well under a microsecond, which only an order seen
	// downstream closes (the probe's shared file, ExecOrderViolations),
	// never a clock.
	// If the write began after the deadline, the process stopped between
	// its check and its write, and the act may have landed as late as
	// LandedNS: a recorder's tenure is then taken to last until then. For
	// the probe, the shared file's order says exactly where each act landed
	// among the others' (ExecOrderViolations).
	EvLate = "late"
	// EvExecStart and EvExecStop bracket one run of the command that the
	// exec driver runs only while master.
	EvExecStart = "exec_start"
	EvExecStop  = "exec_stop"
	// EvExecAlive is written every ExecAliveEvery while the probe runs,
	// and while it drains after its stop signal: a probe killed (its stop
	// budget ran out) has no stop record, and its last sign of life bounds
	// when it ended.
	EvExecAlive = "exec_alive"
	// EvExecHeld is the probe's EvHeld: it found its lease (the file
	// CLUSTD_LEASE_FILE) gone when about to act.
	EvExecHeld = "exec_held"
)

// Record is one line of a history file. Every timestamp is a reading of
// CLOCK_BOOTTIME (see Now), which all processes on the host share, so
// records from different processes compare exactly.
type Record struct {
	Node  string `json:"node"`
	Event string `json:"event"`
	Term  uint64 `json:"term"`
	// MonoNS is when, in nanoseconds of CLOCK_BOOTTIME: a monotonic clock,
	// the one the leases use.
	MonoNS int64  `json:"mono_ns"`
	Role   string `json:"role,omitempty"`
	Master string `json:"master,omitempty"`
	// Local marks a state the driver library made itself: its lease ran
	// out with no renewal from the daemon.
	Local  bool   `json:"local,omitempty"`
	Reason string `json:"reason,omitempty"`
	// PID identifies one run of the exec probe.
	PID int `json:"pid,omitempty"`
	// UntilNS is, on an act, the deadline its check found ahead; on
	// EvHeld and EvExecHeld, the one found passed.
	UntilNS int64 `json:"until_ns,omitempty"`
	// WriteNS and LandedNS are, on EvLate, when the late act's write
	// began and when it had returned.
	WriteNS  int64 `json:"write_ns,omitempty"`
	LandedNS int64 `json:"landed_ns,omitempty"`
}

// At is the record's time.
func (r Record) At() time.Duration { return time.Duration(r.MonoNS) }

// Now reads CLOCK_BOOTTIME, the clock of every timestamp here. It is the
// clock clustd's leases and the daemon's events run on (CLOCK_MONOTONIC
// plus any time the machine was suspended), so the recorded edges compare
// with lease deadlines and with the daemon's own event times.
func Now() time.Duration { return boottime.Now() }

// AppendRecord writes r as one JSON line with a single write on a file
// opened with O_APPEND, so that lines from several processes never
// interleave and a process killed with SIGKILL loses nothing it wrote.
func AppendRecord(f *os.File, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// readRecords reads a history file. A last line without its newline is a
// write cut short and is skipped; any other malformed line is an error.
func readRecords(r io.Reader) ([]Record, error) {
	var out []Record
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return out, fmt.Errorf("line %d: %v", n, err)
		}
		out = append(out, rec)
	}
}

// readRecordFile reads the history file at path; a missing file is empty.
func readRecordFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := readRecords(f)
	if err != nil {
		return recs, fmt.Errorf("%s: %v", path, err)
	}
	return recs, nil
}

// tenure is one stretch of a driver acting as master in one term.
type tenure struct {
	Node string
	Term uint64
	// Start (promote_start) to End (demote_done) is when the driver may
	// act: the conservative interval the overlap check uses.
	Start, End time.Duration
	// Done (promote_done) to DemoteStart (demote_start) is when it surely
	// acts: the interval availability and liveness use.
	Done, DemoteStart time.Duration
	// Campaign is the earliest sign of the campaign that won this term:
	// the daemon's candidate event, else the first state of that term the
	// driver saw, else Start. It only dates the porcupine write's call.
	Campaign time.Duration
	// Cut says how the tenure ended when no demote was recorded: "next
	// promote" (the driver went straight on as master of a newer term) or
	// "end of run" (closed when the run stopped the driver); or "held
	// back" when the driver found its lease gone and acted no more.
	Cut string
}

// ActEvery is how often the recorder acts (EvActing) while master.
const ActEvery = 5 * time.Millisecond

// actEvents are the recorder's records that are acts.
var actEvents = map[string]bool{EvPromoteStart: true, EvPromoteDone: true, EvDemoteStart: true, EvActing: true}

// acts follows the acts of one tenure or run: the last, whether the
// actor has held back since, and how late a write may have landed.
type acts struct {
	last   time.Duration
	held   bool
	landed time.Duration
}

func (a *acts) act(at time.Duration) { a.last, a.held = max(a.last, at), false }

func (a *acts) late(r Record) {
	landed := r.LandedNS
	if r.WriteNS > 0 && r.WriteNS < r.UntilNS {
		landed = r.WriteNS
	}
	a.landed = max(a.landed, time.Duration(landed))
}

// end is when the tenure or run ended, given that it was closed at
// closed: at its last act, one interval on, if it held back since.
// Either way no earlier than the latest a late write may have landed.
func (a *acts) end(closed, every time.Duration) (time.Duration, bool) {
	end := closed
	if a.held {
		end = min(closed, a.last+every)
	}
	return max(end, a.landed), a.held
}

// mayAct and acting return the two intervals of a tenure.
func (t tenure) mayAct() (time.Duration, time.Duration) { return t.Start, t.End }
func (t tenure) acting() (time.Duration, time.Duration) { return t.Done, t.DemoteStart }

// ExecAliveEvery is how often a draining probe writes EvExecAlive.
const ExecAliveEvery = 5 * time.Millisecond

// execRun is one run of the probe command under the exec driver.
type execRun struct {
	Node       string
	PID        int
	Term       uint64
	Start, End time.Duration
	// Cut is "killed" when no stop was recorded, "held back" when the
	// probe also found its lease gone before its end.
	Cut string
	// First and Last are the lines of the shared file where its first and
	// last acts landed: the order every probe's writes reached it in.
	First, Last int
}

// history is what the drivers recorded, put together.
type history struct {
	Nodes   []string
	Tenures []tenure // by Start
	Exec    []execRun
	// End is when the run stopped the drivers; tenures still open then
	// are closed there.
	End time.Duration
	// firstSeen[node][term] is when the node's driver first learnt of the
	// term, for the porcupine calls.
	firstSeen map[string]map[uint64]time.Duration
}

// buildHistory turns every node's records (in the order written) and the
// probe records into tenures and runs. end closes the tenures still open;
// a probe run with no stop record ends one ExecAliveEvery after its last
// act: every act of the probe is a record, so it acted no more after that
// one, and the interval to the sign of life it would have written next is
// margin.
func buildHistory(nodes []string, byNode map[string][]Record, exec []Record, end time.Duration) *history {
	h := &history{Nodes: nodes, End: end, firstSeen: map[string]map[uint64]time.Duration{}}
	for _, node := range nodes {
		h.addTenures(node, byNode[node])
	}
	h.dateCampaigns()
	sort.SliceStable(h.Tenures, func(i, j int) bool { return h.Tenures[i].Start < h.Tenures[j].Start })
	h.addExecRuns(exec)
	sort.SliceStable(h.Exec, func(i, j int) bool { return h.Exec[i].Start < h.Exec[j].Start })
	return h
}

// addTenures turns one node's records into its tenures, and notes when
// it first learnt of each term.
func (h *history) addTenures(node string, recs []Record) {
	seen := map[uint64]time.Duration{}
	h.firstSeen[node] = seen
	note := func(term uint64, at time.Duration) {
		if t, ok := seen[term]; !ok || at < t {
			seen[term] = at
		}
	}
	var open *tenure
	var done acts
	closeAt := func(at time.Duration, cut string) {
		end, held := done.end(at, ActEvery)
		if held {
			cut = "held back"
		}
		if open.Done == 0 {
			open.Done = open.Start
		}
		if open.DemoteStart == 0 || open.DemoteStart > end {
			open.DemoteStart = end
		}
		open.Done = min(open.Done, end)
		open.End = end
		open.Cut = cut
		h.Tenures = append(h.Tenures, *open)
		open = nil
	}
	for _, r := range recs {
		at := r.At()
		if open != nil {
			switch {
			case actEvents[r.Event]:
				done.act(at)
			case r.Event == EvHeld:
				done.held = true
			case r.Event == EvLate:
				done.late(r)
			}
		}
		switch r.Event {
		case EvCandidate, EvState:
			note(r.Term, at)
		case EvPromoteStart:
			note(r.Term, at)
			if open != nil {
				// No demote between two promotes: the driver acted
				// without a break, so its old tenure lasts until now.
				closeAt(at, "next promote")
			}
			open = &tenure{Node: node, Term: r.Term, Start: at}
			done = acts{last: at}
		case EvPromoteDone:
			if open != nil && open.Done == 0 {
				open.Done = at
			}
		case EvDemoteStart:
			if open != nil && open.DemoteStart == 0 {
				open.DemoteStart = at
			}
		case EvDemoteDone:
			if open != nil {
				closeAt(at, "")
			}
		}
	}
	if open != nil {
		closeAt(max(h.End, open.Start), "end of run")
	}
}

// dateCampaigns sets each tenure's Campaign from when its node first
// learnt of the term.
func (h *history) dateCampaigns() {
	for i := range h.Tenures {
		t := &h.Tenures[i]
		t.Campaign = t.Start
		if at, ok := h.firstSeen[t.Node][t.Term]; ok && at < t.Campaign {
			t.Campaign = at
		}
	}
}

// addExecRuns adds the probe's runs, one per process, from its records. A run
// starts at its first act, which is its start unless the probe held that
// back; it ends at its stop, or, with none, one ExecAliveEvery after its
// last act.
func (h *history) addExecRuns(exec []Record) {
	type key struct {
		node string
		pid  int
	}
	runs := map[key]*execRun{}
	done := map[key]*acts{}
	var order []key
	for line, r := range exec {
		k := key{r.Node, r.PID}
		switch r.Event {
		case EvExecStart, EvExecAlive, EvExecStop:
			if runs[k] == nil {
				runs[k] = &execRun{Node: r.Node, PID: r.PID, Term: r.Term, Start: r.At(), End: -1, First: line}
				done[k] = &acts{last: r.At()}
				order = append(order, k)
			}
			done[k].act(r.At())
			runs[k].Last = line
			if r.Event == EvExecStop {
				runs[k].End = r.At()
			}
		case EvExecHeld:
			if d := done[k]; d != nil {
				d.held = true
			}
		}
		// EvLate does not move the run's end: where the write landed
		// among the other probes' is known exactly (ExecOrderViolations).
	}
	for _, k := range order {
		run, d := runs[k], done[k]
		if run.End < 0 {
			// No stop: the probe was killed, or held back and then killed.
			// Its records are its acts: it acted last at its last one.
			run.End, run.Cut = d.last+ExecAliveEvery, "killed"
			if d.held {
				run.Cut = "held back"
			}
		}
		h.Exec = append(h.Exec, *run)
	}
}

// overlap is a time when two drivers (or two runs of the exec command) on
// different nodes may both have acted as master.
type overlap struct {
	A, B     string // "node term N" of each side
	From, To time.Duration
}

// Length is how long the overlap lasted.
func (o overlap) Length() time.Duration { return o.To - o.From }

func (o overlap) String() string {
	return fmt.Sprintf("%s and %s both master for %v (from %s)", o.A, o.B, o.Length(), fmtMono(o.From))
}

// overlaps returns every pair of intervals from different nodes that
// intersect. Intervals are closed at neither end: one that ends at the
// very nanosecond the other starts is a clean hand-over.
func overlaps(n int, node func(int) string, label func(int) string, span func(int) (time.Duration, time.Duration)) []overlap {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, _ := span(a)
		sb, _ := span(b)
		return cmpDur(sa, sb)
	})
	var out []overlap
	for x, i := range idx {
		si, ei := span(i)
		for _, j := range idx[x+1:] {
			sj, ej := span(j)
			if sj >= ei {
				break
			}
			if node(i) == node(j) || ej <= sj || ei <= si {
				continue
			}
			out = append(out, overlap{A: label(i), B: label(j), From: sj, To: min(ei, ej)})
		}
	}
	return out
}

func cmpDur(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (h *history) tenureLabel(i int) string {
	t := h.Tenures[i]
	return fmt.Sprintf("%s (term %d)", t.Node, t.Term)
}

// Overlaps checks the contract's "no overlap in time" conservatively: each
// driver may act from the start of its promote to the end of its demote.
func (h *history) Overlaps() []overlap {
	return overlaps(len(h.Tenures), func(i int) string { return h.Tenures[i].Node }, h.tenureLabel,
		func(i int) (time.Duration, time.Duration) { return h.Tenures[i].mayAct() })
}

// StrictOverlaps is Overlaps on the intervals where the drivers surely
// act, from promote done to demote start. Any of these is also in
// Overlaps; it tells a gross violation from a close call.
func (h *history) StrictOverlaps() []overlap {
	return overlaps(len(h.Tenures), func(i int) string { return h.Tenures[i].Node }, h.tenureLabel,
		func(i int) (time.Duration, time.Duration) { return h.Tenures[i].acting() })
}

// ExecOverlaps checks that the exec driver's command ran as a singleton.
func (h *history) ExecOverlaps() []overlap {
	return overlaps(len(h.Exec), func(i int) string { return h.Exec[i].Node },
		func(i int) string {
			r := h.Exec[i]
			return fmt.Sprintf("%s's command (pid %d, term %d)", r.Node, r.PID, r.Term)
		},
		func(i int) (time.Duration, time.Duration) { return h.Exec[i].Start, h.Exec[i].End })
}

// ExecOrderViolations checks the probe's singleton as the shared file saw
// it: every probe appends its acts to it, so the order of its lines is the
// order in which the acts took effect, whatever the clocks say. A run of
// one node whose acts interleave with another node's run is a violation:
// the file, like any downstream system, saw both act in turn. This is
// what catches an act written late, after a freeze between its lease check
// and its write, if it landed after another node's first act; its check
// time alone would not.
func (h *history) ExecOrderViolations() []string {
	runs := slices.Clone(h.Exec)
	slices.SortFunc(runs, func(a, b execRun) int { return a.First - b.First })
	var out []string
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if b.First > a.Last {
				break
			}
			if a.Node != b.Node {
				out = append(out, fmt.Sprintf("%s's command (pid %d, term %d) wrote line %d of the shared file after %s's command (pid %d, term %d) had written line %d",
					a.Node, a.PID, a.Term, a.Last+1, b.Node, b.PID, b.Term, b.First+1))
			}
		}
	}
	return out
}

// TermViolations checks that terms strictly increase along the merged
// history of promotions: a promotion of another node must carry a higher
// term than every earlier promotion. The one exception is the same node
// promoted again in the same term, which is legitimate: its driver demoted
// itself when a lease ran out (a daemon paused near the deadline, or slow
// renewals) and the daemon then renewed its lease in that term, which needs
// a majority that would have refused anyone else. It also checks that the
// terms each node's driver saw never went back.
func (h *history) TermViolations(byNode map[string][]Record) []string {
	var out []string
	var last *tenure
	for i := range h.Tenures {
		t := &h.Tenures[i]
		if last != nil {
			switch {
			case t.Term < last.Term, t.Term == last.Term && t.Node != last.Node:
				out = append(out, fmt.Sprintf("%s promoted in term %d at %s, after %s was promoted in term %d at %s",
					t.Node, t.Term, fmtMono(t.Start), last.Node, last.Term, fmtMono(last.Start)))
			}
		}
		if last == nil || t.Term >= last.Term {
			last = t
		}
	}
	for _, node := range h.Nodes {
		var hi uint64
		var hiAt time.Duration
		for _, r := range byNode[node] {
			if r.Event == EvCandidate {
				// Dated by the daemon and delivered on a stream of its own:
				// its place in the file says nothing about order.
				continue
			}
			if r.Event == EvDemoteStart || r.Event == EvDemoteDone || r.Event == EvHeld || r.Event == EvLate {
				// These carry the term of the tenure that ends.
				continue
			}
			if r.Term < hi {
				out = append(out, fmt.Sprintf("%s's driver saw term %d at %s after term %d at %s", node, r.Term, fmtMono(r.At()), hi, fmtMono(hiAt)))
			}
			if r.Term > hi {
				hi, hiAt = r.Term, r.At()
			}
		}
	}
	return out
}

// Repromotions counts tenures that repeat the node and term of the one
// before them (see TermViolations).
func (h *history) Repromotions() int {
	n := 0
	for i := 1; i < len(h.Tenures); i++ {
		if h.Tenures[i].Node == h.Tenures[i-1].Node && h.Tenures[i].Term == h.Tenures[i-1].Term {
			n++
		}
	}
	return n
}

// MasterChanges counts promotions of a node other than the previous master.
func (h *history) MasterChanges() int {
	n := 0
	for i := 1; i < len(h.Tenures); i++ {
		if h.Tenures[i].Node != h.Tenures[i-1].Node {
			n++
		}
	}
	return n
}

// MasterAt returns the tenure acting (surely) at t, if any.
func (h *history) MasterAt(t time.Duration) (tenure, bool) {
	for _, x := range h.Tenures {
		if x.Done <= t && t < x.DemoteStart {
			return x, true
		}
	}
	return tenure{}, false
}

// NextMaster returns how long after t a driver first surely acts as
// master: 0 if one does at t.
func (h *history) NextMaster(t time.Duration) (time.Duration, bool) {
	if _, ok := h.MasterAt(t); ok {
		return 0, true
	}
	best, found := time.Duration(0), false
	for _, x := range h.Tenures {
		if x.Done >= t && x.DemoteStart > x.Done && (!found || x.Done-t < best) {
			best, found = x.Done-t, true
		}
	}
	return best, found
}

// Availability is the fraction of [from, to] during which a driver surely
// acted as master.
func (h *history) Availability(from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	type span struct{ s, e time.Duration }
	var spans []span
	for _, t := range h.Tenures {
		s, e := max(t.Done, from), min(t.DemoteStart, to)
		if e > s {
			spans = append(spans, span{s, e})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmpDur(a.s, b.s) })
	var covered, curS, curE time.Duration
	started := false
	for _, sp := range spans {
		if !started || sp.s > curE {
			if started {
				covered += curE - curS
			}
			curS, curE, started = sp.s, sp.e, true
			continue
		}
		curE = max(curE, sp.e)
	}
	if started {
		covered += curE - curS
	}
	return float64(covered) / float64(to-from)
}

// ClosestHandOver is the smallest gap between one node's driver ceasing to
// act (demote done) and another's starting (promote start), over every
// change of master: how close the run came to an overlap. It is negative
// when they overlapped.
func (h *history) ClosestHandOver() (time.Duration, bool) {
	best, found := time.Duration(0), false
	for i := 1; i < len(h.Tenures); i++ {
		prev, cur := h.Tenures[i-1], h.Tenures[i]
		if prev.Node == cur.Node {
			continue
		}
		// The latest end among all earlier tenures of other nodes counts,
		// not just the previous one.
		end := prev.End
		for _, t := range h.Tenures[:i] {
			if t.Node != cur.Node {
				end = max(end, t.End)
			}
		}
		gap := cur.Start - end
		if !found || gap < best {
			best, found = gap, true
		}
	}
	return best, found
}

// fmtMono shows a CLOCK_BOOTTIME instant as seconds since boot, the way
// the history files can be searched for it.
func fmtMono(d time.Duration) string {
	return fmt.Sprintf("%.6fs", d.Seconds())
}
