package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/clustd/clustd/election"
)

// Peer frames carry one of these kinds in their first byte. The encoding is
// binary, versioned by the kind byte, and decoded strictly: a frame that
// does not parse exactly is dropped whole.
const (
	frameMessage byte = 1 // an election.Message
	framePing    byte = 2 // 8 bytes: the sender's monotonic clock
	framePong    byte = 3 // the ping's 8 bytes, echoed
	// 4 to 6: the failover journal's frames (wire_journal.go).
)

const maxIDLen = 64

// Message flag bits.
const (
	flagReject    = 1 << 0
	flagForce     = 1 << 1
	flagEligible  = 1 << 2
	flagConfirmed = 1 << 3
	flagsKnown    = flagReject | flagForce | flagEligible | flagConfirmed
)

var errFrame = errors.New("malformed peer frame")

// encodeMessage appends the frame for m to b.
func encodeMessage(b []byte, m election.Message) []byte {
	b = append(b, frameMessage, byte(m.Type))
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Force {
		flags |= flagForce
	}
	if m.Eligible {
		flags |= flagEligible
	}
	if m.Confirmed {
		flags |= flagConfirmed
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendVarint(b, int64(m.Sent))
	b = binary.AppendVarint(b, int64(m.RetryAfter))
	b = binary.AppendUvarint(b, m.Skip)
	b = appendString(b, m.From)
	b = appendString(b, m.To)
	return b
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// decoder reads a frame, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errFrame, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated " + what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	n := int(d.byte(what + " length"))
	if d.err != nil {
		return ""
	}
	if n == 0 || n > maxIDLen || len(d.b) < n {
		d.fail("bad " + what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// decodeMessage parses the body of a frameMessage (after the kind byte).
func decodeMessage(body []byte) (election.Message, error) {
	d := decoder{b: body}
	var m election.Message
	m.Type = election.MsgType(d.byte("type"))
	flags := d.byte("flags")
	m.Term = d.uvarint("term")
	m.Sent = time.Duration(d.varint("sent"))
	m.RetryAfter = time.Duration(d.varint("retry"))
	m.Skip = d.uvarint("skip")
	m.From = d.string("from")
	m.To = d.string("to")
	switch {
	case d.err != nil:
		return election.Message{}, d.err
	case !m.Type.Valid():
		return election.Message{}, fmt.Errorf("%w: unknown message type %d", errFrame, m.Type)
	case flags&^flagsKnown != 0:
		return election.Message{}, fmt.Errorf("%w: unknown flags %#x", errFrame, flags)
	case m.RetryAfter < 0:
		return election.Message{}, fmt.Errorf("%w: negative retry", errFrame)
	case len(d.b) != 0:
		return election.Message{}, fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	m.Reject = flags&flagReject != 0
	m.Force = flags&flagForce != 0
	m.Eligible = flags&flagEligible != 0
	m.Confirmed = flags&flagConfirmed != 0
	return m, nil
}

// encodePing appends a ping (or pong) frame carrying stamp.
func encodePing(b []byte, kind byte, stamp time.Duration) []byte {
	b = append(b, kind)
	return binary.BigEndian.AppendUint64(b, uint64(stamp))
}

func decodePing(body []byte) (time.Duration, error) {
	if len(body) != 8 {
		return 0, fmt.Errorf("%w: ping of %d bytes", errFrame, len(body))
	}
	return time.Duration(binary.BigEndian.Uint64(body)), nil
}
