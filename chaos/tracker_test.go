package chaos

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The tracker sees two masters at once only when both drivers acted
// lately: a frozen node's driver is master in its file until it thaws, but
// acts no more, and must not end an unsafe run's fault phase early.
func TestTrackerCountsOnlyDriversActingLately(t *testing.T) {
	dir := t.TempDir()
	var nodes []*node
	for i, id := range []string{"a", "b"} {
		n := &node{idx: i, id: id, dir: filepath.Join(dir, id)}
		if err := os.Mkdir(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	write := func(n *node, recs ...Record) {
		t.Helper()
		f, err := os.OpenFile(n.historyFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, r := range recs {
			if err := AppendRecord(f, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	tr := newTracker(nodes)
	frozen := Now() - time.Second
	write(nodes[0], Record{Node: "a", Event: EvPromoteStart, Term: 1, MonoNS: int64(frozen)},
		Record{Node: "a", Event: EvActing, Term: 1, MonoNS: int64(frozen + ActEvery)})
	now := Now()
	write(nodes[1], Record{Node: "b", Event: EvPromoteStart, Term: 2, MonoNS: int64(now)},
		Record{Node: "b", Event: EvPromoteDone, Term: 2, MonoNS: int64(now)})
	tr.poll()
	if tr.overlapSeen {
		t.Fatal("a frozen master (last act a second ago) and a new one were taken for two masters")
	}
	write(nodes[0], Record{Node: "a", Event: EvActing, Term: 1, MonoNS: int64(Now())})
	tr.poll()
	if !tr.overlapSeen {
		t.Fatal("two drivers acting lately were not seen")
	}
}
