package sim

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/clustd/clustd/internal/leadership"
)

// The leadership history, checked by porcupine as a second, independent
// checker: a register holding (term, master). Winning an election writes it;
// the write is invoked when the winner became candidate for that term, since
// a correct election may finish a lower term after a higher one started, and
// returns when the winner became master: when a majority acknowledged its
// first heartbeat round, not when it won the vote. A winner that never gets
// there (a higher term won meanwhile) leaves its write pending: it may or may
// not have taken effect, and followers that heard its first round may have
// seen it. A master renewing its lease reads the register (invoked when the
// renewing round was sent), and so does a follower learning of a master
// (invoked when that master's heartbeat left), but only from a round sent
// once its sender was master: a winner's first round comes from a
// candidate. The register and its rules are internal/leadership's.

// leadershipModel is the shared register (internal/leadership) without
// re-promotion: a core wins each term at most once.
var leadershipModel = leadership.Model(leadership.Options{WriteVerb: "won", ReadVerb: "sees"})

// history collects operations; a nil history records nothing.
type history struct {
	ops []porcupine.Operation
}

func newHistory() *history { return &history{} }

// pending is the return time of an operation that has not returned.
const pending = math.MaxInt64

// write records a write invoked at call and returns its index, for
// complete; until then it is pending.
func (h *history) write(client int, term uint64, master string, call time.Duration) int {
	if h == nil {
		return -1
	}
	h.ops = append(h.ops, porcupine.Operation{
		ClientId: client, Input: leadership.Op{Write: true, Term: term, Master: master},
		Call: int64(call), Return: pending,
	})
	return len(h.ops) - 1
}

// complete records that write i returned at ret.
func (h *history) complete(i int, ret time.Duration) {
	if h == nil || i < 0 {
		return
	}
	h.ops[i].Return = int64(ret)
}

// closed returns the operations with those still pending ending after
// everything else: porcupine then may order them anywhere after their call,
// or leave their effect out, and the visualisation stays readable.
func (h *history) closed() []porcupine.Operation {
	ops := slices.Clone(h.ops)
	var end int64
	for _, o := range ops {
		end = max(end, o.Call)
		if o.Return != pending {
			end = max(end, o.Return)
		}
	}
	for i := range ops {
		if ops[i].Return == pending {
			ops[i].Return = end + 1
		}
	}
	return ops
}

func (h *history) read(client int, term uint64, master string, call, ret time.Duration) {
	if h == nil {
		return
	}
	h.ops = append(h.ops, porcupine.Operation{
		ClientId: client, Input: leadership.Op{Term: term, Master: master},
		Call: int64(call), Return: int64(ret),
	})
}

// Linearizable checks the leadership history with porcupine. When it is not
// linearizable, or the check timed out (Unknown: the history was not
// checked), and htmlPath is not empty, the visualisation of what porcupine
// got through is written there, so the history is kept either way. It
// checks the first role's history; LinearizableRole checks another's.
func (s *Sim) Linearizable(timeout time.Duration, htmlPath string) (porcupine.CheckResult, error) {
	return s.LinearizableRole(0, timeout, htmlPath)
}

// LinearizableRole is Linearizable for role r's history. Faults hit every
// role, and the visualisation shows them all.
func (s *Sim) LinearizableRole(r int, timeout time.Duration, htmlPath string) (porcupine.CheckResult, error) {
	h := s.roles[r].hist
	if h == nil {
		return porcupine.Unknown, fmt.Errorf("linearizability history was not recorded")
	}
	var notes []porcupine.Annotation
	for _, n := range s.nodes {
		for _, e := range n.timeline.entries() {
			if e.kind == tlFault {
				notes = append(notes, porcupine.Annotation{ClientId: n.idx, Start: int64(e.at), Description: e.text})
			}
		}
	}
	return leadership.Check(leadershipModel, h.closed(), timeout, htmlPath, notes)
}

// HistoryLen is the number of operations recorded.
func (s *Sim) HistoryLen() int {
	if s.hist == nil {
		return 0
	}
	return len(s.hist.ops)
}
