package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
)

func FuzzDecodeRecord(f *testing.F) {
	fo := Event{Seq: 9, Kind: KindFailover, Node: "b", Term: 4, Time: time.Unix(1, 0).UTC(),
		Failover: &driverproto.Failover{From: "a", To: "b", Cause: "paused", NoMasterMS: 3}}
	for _, ev := range []Event{fo, {Seq: 1, Kind: KindRole, Node: "a", Role: "master"}} {
		rec, _ := encodeRecord(ev)
		f.Add(rec[8:])
	}
	f.Add([]byte(`{"seq":1,"kind":"failover"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if ev.Seq == 0 || ev.Kind == "" || (ev.Kind == KindFailover && ev.Failover == nil) {
			t.Fatalf("accepted an invalid record: %+v", ev)
		}
		// What decodes encodes again and decodes to the same.
		rec, err := encodeRecord(ev)
		if err != nil {
			return // re-encoding may grow past MaxRecord (escaping)
		}
		ev2, err := DecodeRecord(rec[8:])
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if ev2.Seq != ev.Seq || ev2.Kind != ev.Kind || ev2.IsFailover() != ev.IsFailover() {
			t.Fatalf("round trip changed %+v into %+v", ev, ev2)
		}
	})
}

// FuzzSegment opens a journal whose only segment holds arbitrary bytes
// after a good record: it never panics, keeps a prefix, and appends.
func FuzzSegment(f *testing.F) {
	good, _ := encodeRecord(Event{Seq: 1, Kind: KindStart, Node: "a"})
	f.Add([]byte{})
	f.Add(good)
	f.Add(append(bytes.Clone(good), 0, 0, 0, 5, 1, 2, 3, 4, 'x'))
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		b := append(append(bytes.Clone(magic[:headerLen]), good...), tail...)
		if err := os.WriteFile(filepath.Join(dir, segName(1)), b, 0o640); err != nil {
			t.Fatal(err)
		}
		j, err := Open(Options{Dir: dir, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		evs, err := j.Read(Query{})
		if err != nil || len(evs) == 0 || evs[0].Seq != 1 {
			t.Fatalf("the good first record was lost: %v %+v", err, evs)
		}
		ev, err := j.Append(Event{Kind: KindStop, Node: "a"})
		if err != nil || ev.Seq != evs[len(evs)-1].Seq+1 {
			t.Fatalf("append after recovery: %+v %v", ev, err)
		}
	})
}
