package journal

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

func open(t *testing.T, dir string, maxBytes int64) *Journal {
	t.Helper()
	j, err := Open(Options{Dir: dir, MaxBytes: maxBytes, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func readAll(t *testing.T, j *Journal) []Event {
	t.Helper()
	evs, err := j.Read(Query{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// checkContiguous asserts the events are numbered first, first+1, ….
func checkContiguous(t *testing.T, evs []Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Fatalf("event %d has seq %d after %d", i, evs[i].Seq, evs[i-1].Seq)
		}
	}
}

func TestAppendReopenRead(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 0)
	elected := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		if _, err := j.Append(Event{Kind: KindRole, Node: "a", Term: uint64(i + 1), Role: "follower"}); err != nil {
			t.Fatal(err)
		}
	}
	fo := Event{Kind: KindFailover, Node: "b", Term: 6, Failover: &driverproto.Failover{From: "a", To: "b", Cause: driverproto.CauseMasterLost, NoMasterMS: 812, Elected: elected}}
	if _, err := j.Append(fo); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, dir, 0)
	defer j.Close()
	evs := readAll(t, j)
	if len(evs) != 6 || evs[0].Seq != 1 || evs[5].Seq != 6 {
		t.Fatalf("after reopening: %d events, %+v", len(evs), evs)
	}
	got := evs[5]
	if !got.IsFailover() || got.From != "a" || got.To != "b" || got.NoMasterMS != 812 || !got.Elected.Equal(elected) {
		t.Fatalf("failover record read back as %+v", got)
	}
	ev, err := j.Append(Event{Kind: KindStart, Node: "a"})
	if err != nil || ev.Seq != 7 {
		t.Fatalf("append after reopening: seq %d, %v", ev.Seq, err)
	}
	page, _ := j.Read(Query{AfterSeq: 2, Limit: 3})
	if len(page) != 3 || page[0].Seq != 3 || page[2].Seq != 5 {
		t.Fatalf("page after 2: %+v", page)
	}
	newest, _ := j.Read(Query{Limit: 2})
	if len(newest) != 2 || newest[1].Seq != 7 {
		t.Fatalf("newest two: %+v", newest)
	}
	fos, _ := j.Read(Query{Failovers: true})
	if len(fos) != 1 || fos[0].Seq != 6 {
		t.Fatalf("failovers only: %+v", fos)
	}
}

// A crash can cut the last record anywhere: at every cut, reopening keeps
// every earlier record and appends after them.
func TestTornTailEveryOffset(t *testing.T) {
	src := t.TempDir()
	j := open(t, src, 0)
	for i := range 3 {
		j.Append(Event{Kind: KindElection, Node: "a", Term: uint64(i + 1), Detail: "campaigning"})
	}
	j.Close()
	seg := filepath.Join(src, segName(1))
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	starts := recordStarts(t, full)
	if len(starts) != 3 {
		t.Fatalf("found %d records, want 3", len(starts))
	}
	for cut := starts[2]; cut < len(full); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), full[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		j := open(t, dir, 0)
		evs := readAll(t, j)
		if len(evs) != 2 || evs[1].Term != 2 {
			t.Fatalf("cut at %d: read %d events", cut, len(evs))
		}
		ev, err := j.Append(Event{Kind: KindStart, Node: "a"})
		if err != nil || ev.Seq != 3 {
			t.Fatalf("cut at %d: append gave seq %d, %v", cut, ev.Seq, err)
		}
		if evs := readAll(t, j); len(evs) != 3 || evs[2].Kind != KindStart {
			t.Fatalf("cut at %d: after append, %+v", cut, evs)
		}
		j.Close()
	}
	// Garbage instead of a torn record: a flipped byte in the last one.
	dir := t.TempDir()
	bad := bytes.Clone(full)
	bad[len(bad)-3] ^= 0xff
	os.WriteFile(filepath.Join(dir, segName(1)), bad, 0o640)
	j = open(t, dir, 0)
	if evs := readAll(t, j); len(evs) != 2 {
		t.Fatalf("corrupt last record: read %d events, want 2", len(evs))
	}
	j.Close()
}

func recordStarts(t *testing.T, b []byte) []int {
	t.Helper()
	var starts []int
	for off := headerLen; off+8 <= len(b); {
		starts = append(starts, off)
		n := int(uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3]))
		off += 8 + n
	}
	return starts
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		n += fi.Size()
	}
	return n
}

// A flood of events keeps the directory within its bound, keeps the
// newest events, and numbers them without gaps.
func TestSizeBoundUnderFlood(t *testing.T) {
	dir := t.TempDir()
	const bound = MinMaxBytes
	j := open(t, dir, bound)
	detail := strings.Repeat("x", 200)
	for i := range 5000 {
		if _, err := j.Append(Event{Kind: KindDriverHealth, Node: "a", Driver: "d", Detail: detail}); err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 {
			if n := dirSize(t, dir); n > bound {
				t.Fatalf("after %d events the journal takes %d bytes, over its bound of %d", i+1, n, bound)
			}
		}
	}
	// And through the queue, faster than the writer.
	for range 20000 {
		j.Record(Event{Kind: KindMemberLost, Node: "a", Peer: "b", Detail: detail})
	}
	dropped := j.Dropped()
	j.Close()
	if n := dirSize(t, dir); n > bound {
		t.Fatalf("the journal takes %d bytes, over its bound of %d", n, bound)
	}
	j = open(t, dir, bound)
	defer j.Close()
	evs := readAll(t, j)
	if len(evs) == 0 {
		t.Fatal("the bound left no events")
	}
	checkContiguous(t, evs)
	last := evs[len(evs)-1].Seq
	if want := 5000 + 20000 - dropped; last != want {
		t.Fatalf("last seq %d, want %d (%d dropped by Record)", last, want, dropped)
	}
	if evs[len(evs)-1].Kind != KindMemberLost {
		t.Fatalf("the newest event is %q, want the flood's", evs[len(evs)-1].Kind)
	}
	if evs[0].Seq < 100 {
		t.Fatalf("the oldest event kept is %d: nothing was deleted?", evs[0].Seq)
	}
}

func TestOpenRejectsTinyBound(t *testing.T) {
	if _, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1000}); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Fatalf("a 1000-byte bound: %v", err)
	}
}

// TestSubscribeAfter: a subscriber gets what was there and then every new
// event, once.
func TestSubscribeAfter(t *testing.T) {
	j := open(t, t.TempDir(), 0)
	defer j.Close()
	for range 3 {
		j.Append(Event{Kind: KindRole, Node: "a"})
	}
	past, sub, err := j.SubscribeAfter(Query{AfterSeq: 1}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if len(past) != 2 || past[0].Seq != 2 {
		t.Fatalf("past: %+v", past)
	}
	j.Record(Event{Kind: KindStop, Node: "a"})
	select {
	case ev := <-sub.C():
		if ev.Seq != 4 || ev.Kind != KindStop {
			t.Fatalf("live event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no live event")
	}
}

// The writer subprocess of TestKillWhileWriting: it appends until killed.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("CLUSTD_JOURNAL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestKillWhileWriting")
	}
	j, err := Open(Options{Dir: dir, MaxBytes: 256 << 10, NoSync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	detail := strings.Repeat("y", 300)
	for i := 0; ; i++ {
		if i%2 == 0 {
			j.Record(Event{Kind: KindMemberBack, Node: "a", Peer: "b", Detail: detail})
		} else if ev, err := j.Append(Event{Kind: KindMemberLost, Node: "a", Peer: "b", Detail: detail}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		} else if ev.Seq%100 == 0 {
			// Progress, so the test kills it once it has written more.
			fmt.Println(ev.Seq)
		}
	}
}

// kill -9 while writing leaves a readable journal that takes appends.
func TestKillWhileWriting(t *testing.T) {
	dir := t.TempDir()
	var prev uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CLUSTD_JOURNAL_HELPER_DIR="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		progress, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it has written a good deal more than the last
		// round left (its progress lines say how far it got): over 1000
		// records of 300 bytes, rotation and deletion are under way.
		guard := time.AfterFunc(60*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		lines := bufio.NewScanner(progress)
		for lines.Scan() {
			if n, err := strconv.ParseUint(strings.TrimSpace(lines.Text()), 10, 64); err == nil && n >= prev+1000 {
				break
			}
		}
		guard.Stop()
		cmd.Process.Signal(syscall.SIGKILL)
		io.Copy(io.Discard, progress) // to EOF: the writer is dead
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: the writer was not killed: %v; %s", round, err, stderr.String())
		}
		j := open(t, dir, 256<<10)
		evs := readAll(t, j)
		if len(evs) == 0 {
			t.Fatalf("round %d: nothing readable after kill -9", round)
		}
		checkContiguous(t, evs)
		last := evs[len(evs)-1].Seq
		if last <= prev {
			t.Fatalf("round %d: last seq %d, not after the previous round's %d", round, last, prev)
		}
		ev, err := j.Append(Event{Kind: KindStart, Node: "a", Detail: "round " + strconv.Itoa(round)})
		if err != nil || ev.Seq != last+1 {
			t.Fatalf("round %d: append after recovery: seq %d (want %d), %v", round, ev.Seq, last+1, err)
		}
		prev = ev.Seq
		j.Close()
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, MinMaxBytes)
	for i := range 2000 {
		kind := KindRole
		if i%100 == 0 {
			kind = KindFailover
		}
		ev := Event{Kind: kind, Node: "a", Term: uint64(i + 1)}
		if kind == KindFailover {
			ev.Failover = &driverproto.Failover{From: "a", To: "b", Cause: driverproto.CauseTransfer}
		}
		j.Append(ev)
	}
	want, _ := j.Read(Query{Failovers: true})
	got, err := ReadDir(dir, Query{Failovers: true})
	if err != nil || len(got) != len(want) || len(got) == 0 || got[len(got)-1].Seq != want[len(want)-1].Seq {
		t.Fatalf("ReadDir: %d events (%v), the journal reads %d", len(got), err, len(want))
	}
	j.Close()
}

// BenchmarkAppend is the cost of one durable append (with fsync), the
// path a failover record takes.
func BenchmarkAppend(b *testing.B) {
	j, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ev := Event{Kind: KindRole, Node: "a", Term: 7, Role: "master", Master: "a", Detail: "became master: majority acknowledged"}
	for b.Loop() {
		if _, err := j.Append(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord is the cost to the caller of queuing an event: what the
// daemon pays under its lock.
func BenchmarkRecord(b *testing.B) {
	j, err := Open(Options{Dir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ev := Event{Kind: KindMemberLost, Node: "a", Peer: "b"}
	for b.Loop() {
		j.Record(ev)
	}
}
