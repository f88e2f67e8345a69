// Package leadership is the porcupine model of clustd's leadership, shared
// by the simulator (sim) and the chaos run (chaos): a register holding
// (term, master). Becoming master writes it; a master acting, or a node
// learning of one, reads it. Terms must rise along the linearization and
// every read must see the latest write, so a stale master acting after a
// newer one took over, a lower term promoted after a higher one, and two
// masters in one term all make a history that is not linearizable.
//
// The two suites place the operations differently (sim records the wins
// themselves; chaos records what the drivers did), which each explains
// where it builds its history; the register and its rules are one.
//
// The package imports only porcupine, so chaos can check its histories
// without pulling the daemon in.
package leadership

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
)

// State is the register: the latest term won and who won it.
type State struct {
	Term   uint64
	Master string
}

// Op is one operation on the register: a write (becoming master) or a
// read (acting as, or seeing, the master of Term).
type Op struct {
	Write  bool
	Term   uint64
	Master string
}

// Options vary the model between its users.
type Options struct {
	// Repromote allows a write of the value the register already holds:
	// a node promoted again in the term it holds. A real driver demotes
	// itself when its lease runs out and the daemon may renew it in the
	// same term, which is one tenure of that term, not two masters.
	Repromote bool
	// WriteVerb and ReadVerb name the operations in the visualisation,
	// e.g. "won" and "sees"; empty means "write" and "read".
	WriteVerb, ReadVerb string
}

// Model returns the porcupine model of the register under o.
func Model(o Options) porcupine.Model {
	write, read := o.WriteVerb, o.ReadVerb
	if write == "" {
		write = "write"
	}
	if read == "" {
		read = "read"
	}
	return porcupine.Model{
		Init: func() any { return State{} },
		Step: func(state, input, _ any) (bool, any) {
			st, op := state.(State), input.(Op)
			if !op.Write {
				return st == State{Term: op.Term, Master: op.Master}, st
			}
			if o.Repromote && op.Term == st.Term && op.Master == st.Master {
				return true, st
			}
			if op.Term <= st.Term {
				return false, st
			}
			return true, State{Term: op.Term, Master: op.Master}
		},
		DescribeOperation: func(input, _ any) string {
			op := input.(Op)
			verb := read
			if op.Write {
				verb = write
			}
			return fmt.Sprintf("%s(%d, %s)", verb, op.Term, op.Master)
		},
		DescribeState: func(state any) string {
			st := state.(State)
			if st.Master == "" {
				return "no master yet"
			}
			return fmt.Sprintf("term %d: %s", st.Term, st.Master)
		},
	}
}

// Check runs porcupine on ops with m. When the history is not
// linearizable, or the check timed out (Unknown: the history was not
// checked), and htmlPath is not empty, the visualisation of what porcupine
// got through is written there with notes, so the history is kept either
// way.
func Check(m porcupine.Model, ops []porcupine.Operation, timeout time.Duration, htmlPath string, notes []porcupine.Annotation) (porcupine.CheckResult, error) {
	res := porcupine.CheckOperationsTimeout(m, ops, timeout)
	if res == porcupine.Ok || htmlPath == "" {
		return res, nil
	}
	// The verbose check, which keeps what the visualisation needs, is many
	// times slower: run it only on a history already known to be bad.
	_, info := porcupine.CheckOperationsVerbose(m, ops, timeout)
	info.AddAnnotations(notes)
	if err := porcupine.VisualizePath(m, info, htmlPath); err != nil {
		return res, fmt.Errorf("writing %s: %w", htmlPath, err)
	}
	return res, nil
}
