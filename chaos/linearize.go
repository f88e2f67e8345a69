package chaos

import (
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/clustd/clustd/internal/leadership"
)

// The leadership history as porcupine checks it: a register holding
// (term, master), written by promotions and read by masters acting.
//
// A promotion of node n in term T is a write of (T, n). It returns at the
// start of the promote (promote_start), the first instant n's driver may
// act: by then the election that made n master is certainly over. Its call
// is the earliest sign of that campaign the recorder saw — the daemon's
// "became candidate for T" event, or the first state of term T the driver
// saw — and promote_start itself when there is none.
//
// Each tenure ends with a read of (T, n) at the end of its demote
// (demote_done), the last instant the driver may have acted: an operation
// of zero length, which porcupine must place exactly there. A tenure still
// open when the run stops is read when the run stopped its driver.
//
// Why this gives no false alarm on a correct system, whatever the call:
// in a correct run every tenure of a lower term has ended (demote_done)
// before a higher term's driver starts (promote_start), so ordering every
// write at its return and every read at its instant is a linearization —
// terms rise, and each read sees the write of its own tenure. A call only
// widens the window in which porcupine may place a write, so an early one
// cannot create an alarm; it is there so that the visualisation shows the
// campaign. This is why a real history needs no guess at when an election
// was decided, unlike the simulator's, which records the wins themselves:
// a win that never turns into a promotion (its lease was never
// acknowledged) is not in this history at all.
//
// Why a stale master is caught: if the driver of (T, n) still acts after
// the driver of (T', m), T' > T, started, then the read of (T, n) at its
// demote_done comes after the write of (T', m) returned; the write must be
// placed before the read, and terms only rise, so the read sees (T', m) or
// later — not linearizable. A lower term promoted after a higher one, and
// two nodes promoted in one term, fail the same way. A node promoted again
// in the term it already holds (its driver demoted itself when a lease ran
// out, and the daemon renewed it in that term) writes the value already
// there, which the model allows.

// leadershipModel is the shared register (internal/leadership) with
// re-promotion allowed, for the reason above.
var leadershipModel = leadership.Model(leadership.Options{Repromote: true, WriteVerb: "promote", ReadVerb: "still master"})

// Operations returns the porcupine history of the tenures. Client ids are
// node indexes in h.Nodes, so the visualisation has one row per node.
func (h *history) Operations() []porcupine.Operation {
	ops := make([]porcupine.Operation, 0, 2*len(h.Tenures))
	for _, t := range h.Tenures {
		c := slices.Index(h.Nodes, t.Node)
		ops = append(ops,
			porcupine.Operation{ClientId: c, Input: leadership.Op{Write: true, Term: t.Term, Master: t.Node},
				Call: int64(min(t.Campaign, t.Start)), Return: int64(t.Start)},
			porcupine.Operation{ClientId: c, Input: leadership.Op{Term: t.Term, Master: t.Node},
				Call: int64(t.End), Return: int64(t.End)})
	}
	return ops
}

// vizNote is a fault or other event of the run, shown on the visualisation.
type vizNote struct {
	// Node is the index of the node it concerns, or -1 for the cluster.
	Node     int
	From, To time.Duration
	Text     string
}

// Linearizable checks the leadership history with porcupine. When it is
// not linearizable, or the check timed out (Unknown), and htmlPath is not
// empty, the visualisation of what porcupine got through is written there
// with notes as annotations.
func (h *history) Linearizable(timeout time.Duration, htmlPath string, notes []vizNote) (porcupine.CheckResult, error) {
	var ann []porcupine.Annotation
	for _, n := range notes {
		a := porcupine.Annotation{Start: int64(n.From), End: int64(max(n.To, n.From)), Description: n.Text, BackgroundColor: "#fde2c4"}
		if n.Node >= 0 {
			a.ClientId = n.Node
		} else {
			a.Tag = "faults"
		}
		ann = append(ann, a)
	}
	return leadership.Check(leadershipModel, h.Operations(), timeout, htmlPath, ann)
}
