package node

import (
	"slices"
	"testing"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/journal"
)

func member(id string) bool { return id == "a" || id == "b" || id == "c" }

func TestFailoverFrameRoundTrip(t *testing.T) {
	ev := journal.Event{Kind: journal.KindFailover, Node: "b", Term: 5, Time: time.Unix(10, 0).UTC(),
		Failover: &driverproto.Failover{From: "a", To: "b", PrevTerm: 4, Cause: driverproto.CausePaused, NoMasterMS: 900, Elected: time.Unix(11, 0).UTC()}}
	frame := encodeJSONFrame(frameFailover, ev)
	got, err := decodeFailoverFrame(frame[1:], member)
	if err != nil || got.From != "a" || got.To != "b" || got.Cause != driverproto.CausePaused || got.NoMasterMS != 900 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for name, bad := range map[string]func(*journal.Event){
		"stranger":   func(e *journal.Event) { e.From = "z" },
		"not to":     func(e *journal.Event) { e.Node = "a" },
		"cause":      func(e *journal.Event) { e.Cause = "gremlins" },
		"term order": func(e *journal.Event) { e.PrevTerm = 5 },
		"kind":       func(e *journal.Event) { e.Kind = journal.KindRole },
	} {
		e := ev
		f := *ev.Failover
		e.Failover = &f
		bad(&e)
		if _, err := decodeFailoverFrame(encodeJSONFrame(frameFailover, e)[1:], member); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	terms := []uint64{1, 4, 300}
	dec, err := decodeSync(encodeSync(nil, terms)[1:])
	if err != nil || !slices.Equal(dec, terms) {
		t.Fatalf("sync round trip: %v %v", dec, err)
	}
	if _, err := decodeSync(encodeSync(nil, []uint64{4, 1})[1:]); err == nil {
		t.Fatal("sync with terms out of order accepted")
	}
}

func FuzzJournalFrames(f *testing.F) {
	ev := journal.Event{Kind: journal.KindFailover, Node: "b", Term: 5,
		Failover: &driverproto.Failover{From: "a", To: "b", PrevTerm: 4, Cause: driverproto.CauseTransfer}}
	f.Add(encodeJSONFrame(frameFailover, ev)[1:])
	f.Add(encodeSync(nil, []uint64{1, 2, 3})[1:])
	f.Add(encodeJSONFrame(frameStepDown, stepDown{Node: "a", Term: 3, Cause: driverproto.CauseIsolated})[1:])
	f.Fuzz(func(t *testing.T, b []byte) {
		if ev, err := decodeFailoverFrame(b, member); err == nil {
			if !member(ev.From) || ev.Node != ev.To || !slices.Contains(driverproto.Causes, ev.Cause) || ev.Term <= ev.PrevTerm {
				t.Fatalf("accepted %+v", ev)
			}
		}
		if terms, err := decodeSync(b); err == nil {
			if len(terms) > syncTerms || !slices.IsSorted(terms) {
				t.Fatalf("accepted %v", terms)
			}
		}
		if s, err := decodeStepDown(b, "a"); err == nil && (s.Node != "a" || s.Term == 0) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
