package leadership

import (
	"os"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, o Op, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: o, Call: call, Return: ret}
}

func TestModel(t *testing.T) {
	win := func(term uint64, m string) Op { return Op{Write: true, Term: term, Master: m} }
	see := func(term uint64, m string) Op { return Op{Term: term, Master: m} }
	cases := []struct {
		name      string
		ops       []porcupine.Operation
		repromote bool
		want      porcupine.CheckResult
	}{
		{"terms rise", []porcupine.Operation{op(0, win(1, "a"), 0, 1), op(0, see(1, "a"), 2, 2), op(1, win(2, "b"), 3, 4), op(1, see(2, "b"), 5, 5)}, false, porcupine.Ok},
		{"stale master acts after a newer won", []porcupine.Operation{op(0, win(1, "a"), 0, 1), op(1, win(2, "b"), 2, 3), op(0, see(1, "a"), 4, 4)}, false, porcupine.Illegal},
		{"lower term after a higher", []porcupine.Operation{op(1, win(2, "b"), 0, 1), op(0, win(1, "a"), 2, 3)}, false, porcupine.Illegal},
		{"two masters in one term", []porcupine.Operation{op(0, win(1, "a"), 0, 1), op(1, win(1, "b"), 2, 3)}, true, porcupine.Illegal},
		{"promoted again in its term, strict", []porcupine.Operation{op(0, win(1, "a"), 0, 1), op(0, win(1, "a"), 2, 3)}, false, porcupine.Illegal},
		{"promoted again in its term, repromote", []porcupine.Operation{op(0, win(1, "a"), 0, 1), op(0, win(1, "a"), 2, 3), op(0, see(1, "a"), 4, 4)}, true, porcupine.Ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Model(Options{Repromote: c.repromote})
			if got := porcupine.CheckOperations(m, c.ops); got != (c.want == porcupine.Ok) {
				t.Fatalf("linearizable = %v, want %v", got, c.want == porcupine.Ok)
			}
		})
	}
}

func TestCheckWritesVisualisationOnlyForBadHistory(t *testing.T) {
	m := Model(Options{WriteVerb: "won", ReadVerb: "sees"})
	dir := t.TempDir()
	good := dir + "/good.html"
	if res, err := Check(m, []porcupine.Operation{op(0, Op{Write: true, Term: 1, Master: "a"}, 0, 1)}, 0, good, nil); err != nil || res != porcupine.Ok {
		t.Fatalf("good history: %v, %v", res, err)
	}
	bad := dir + "/bad.html"
	ops := []porcupine.Operation{op(0, Op{Write: true, Term: 2, Master: "a"}, 0, 1), op(1, Op{Write: true, Term: 1, Master: "b"}, 2, 3)}
	notes := []porcupine.Annotation{{ClientId: 1, Start: 2, Description: "crash"}}
	if res, err := Check(m, ops, 0, bad, notes); err != nil || res != porcupine.Illegal {
		t.Fatalf("bad history: %v, %v", res, err)
	}
	assertFile(t, bad, true)
	assertFile(t, good, false)
}

func assertFile(t *testing.T, path string, exists bool) {
	t.Helper()
	_, err := os.Stat(path)
	if (err == nil) != exists {
		t.Fatalf("%s exists = %v, want %v (%v)", path, err == nil, exists, err)
	}
}
