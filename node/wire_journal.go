package node

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/journal"
)

// Frames of the failover journal. They ride on the peer sessions beside
// the election's messages but never reach the election core.
const (
	// frameFailover carries one failover record as JSON (journal.Event).
	frameFailover byte = 4
	// frameFailoverSync asks for the failover records the sender lacks: a
	// uvarint count, then that many uvarint terms it has, ascending.
	frameFailoverSync byte = 5
	// frameStepDown carries a former master's account of why it lost the
	// role, as JSON (stepDown).
	frameStepDown byte = 6
)

// maxRecordFrame bounds a failover or step-down frame; real ones are a few
// hundred bytes.
const maxRecordFrame = 4 << 10

// syncTerms bounds how many known terms a sync request lists.
const syncTerms = 256

// stepDown is a former master's account of how it lost the role: the
// new master's record takes the cause from it.
type stepDown struct {
	Node  string    `json:"node"`
	Term  uint64    `json:"term"`
	Cause string    `json:"cause"`
	At    time.Time `json:"at"`
}

func encodeJSONFrame(kind byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return append([]byte{kind}, b...)
}

// decodeFailoverFrame parses and checks the body of a frameFailover.
// members is the cluster's member list.
func decodeFailoverFrame(body []byte, isMember func(string) bool) (journal.Event, error) {
	if len(body) > maxRecordFrame {
		return journal.Event{}, fmt.Errorf("%w: failover record of %d bytes", errFrame, len(body))
	}
	var ev journal.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return journal.Event{}, fmt.Errorf("%w: failover record: %v", errFrame, err)
	}
	f := ev.Failover
	switch {
	case ev.Kind != journal.KindFailover || f == nil:
		return journal.Event{}, fmt.Errorf("%w: not a failover record", errFrame)
	case ev.Term == 0 || f.PrevTerm >= ev.Term:
		return journal.Event{}, fmt.Errorf("%w: failover record with term %d after %d", errFrame, ev.Term, f.PrevTerm)
	case !isMember(f.To) || ev.Node != f.To || !isMember(f.From):
		return journal.Event{}, fmt.Errorf("%w: failover record names a node that is not a member", errFrame)
	case !slices.Contains(driverproto.Causes, f.Cause):
		return journal.Event{}, fmt.Errorf("%w: failover record with unknown cause %q", errFrame, f.Cause)
	case f.NoMasterMS < 0 || f.Rev < 0:
		return journal.Event{}, fmt.Errorf("%w: failover record with negative figures", errFrame)
	}
	return ev, nil
}

func encodeSync(b []byte, terms []uint64) []byte {
	b = append(b, frameFailoverSync)
	b = binary.AppendUvarint(b, uint64(len(terms)))
	for _, t := range terms {
		b = binary.AppendUvarint(b, t)
	}
	return b
}

func decodeSync(body []byte) ([]uint64, error) {
	d := decoder{b: body}
	n := d.uvarint("count")
	if d.err == nil && n > syncTerms {
		return nil, fmt.Errorf("%w: sync lists %d terms, more than %d", errFrame, n, syncTerms)
	}
	terms := make([]uint64, 0, n)
	for range n {
		t := d.uvarint("term")
		if d.err == nil && len(terms) > 0 && t <= terms[len(terms)-1] {
			d.fail("terms not ascending")
		}
		terms = append(terms, t)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	return terms, nil
}

func decodeStepDown(body []byte, from string) (stepDown, error) {
	var s stepDown
	if len(body) > maxRecordFrame {
		return s, fmt.Errorf("%w: step-down of %d bytes", errFrame, len(body))
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return stepDown{}, fmt.Errorf("%w: step-down: %v", errFrame, err)
	}
	if s.Node != from || s.Term == 0 || !slices.Contains(driverproto.Causes, s.Cause) {
		return stepDown{}, fmt.Errorf("%w: step-down from %q naming %q, term %d, cause %q", errFrame, from, s.Node, s.Term, s.Cause)
	}
	return s, nil
}
