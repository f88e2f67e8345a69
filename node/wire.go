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

	// frameRoles carries election messages of several roles: one or more
	// entries, each a role's index in the configuration's roles: list
	// (uvarint), the length of the message (uvarint) and the message as
	// frameMessage encodes it after its kind byte. Only a cluster with more
	// than one role sends it; roles are part of the cluster hash, so every
	// peer such a node talks to understands it.
	frameRoles byte = 7
)

// maxRoleEntries bounds the entries of one frameRoles: a heartbeat and an
// answer per role at most, with room to spare.
const maxRoleEntries = 4 * 256

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

// named reads an id, but returns known, without allocating,
// when the id is known: a frame from a peer names that peer and this
// node, and a frame of many roles names them once per message.
func (d *decoder) named(what, known string) string {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated " + what + " length")
		return ""
	}
	n := int(d.b[0])
	d.b = d.b[1:]
	if n == 0 || n > maxIDLen || len(d.b) < n {
		d.fail("bad " + what)
		return ""
	}
	var s string
	if known != "" && string(d.b[:n]) == known { // compared without a copy
		s = known
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

// maxRetryAfter bounds the RetryAfter a peer may send.
const maxRetryAfter = time.Minute

// decodeMessage parses the body of a frameMessage (after the kind byte).
func decodeMessage(body []byte) (election.Message, error) {
	return decodeMessageAs(body, "", "")
}

// decodeMessageAs is decodeMessage for a message that should come from
// from to to: ids equal to those are not copied.
func decodeMessageAs(body []byte, from, to string) (election.Message, error) {
	d := decoder{b: body}
	var m election.Message
	m.Type = election.MsgType(d.byte("type"))
	flags := d.byte("flags")
	m.Term = d.uvarint("term")
	m.Sent = time.Duration(d.varint("sent"))
	m.RetryAfter = time.Duration(d.varint("retry"))
	m.Skip = d.uvarint("skip")
	m.From = d.named("from", from)
	m.To = d.named("to", to)
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
	// A voter's hold-off is at most a lease and an election timeout; a
	// larger figure is a bug or a lie, and added to the clock it could
	// overflow into the past and start an election at once.
	m.RetryAfter = min(m.RetryAfter, maxRetryAfter)
	m.Reject = flags&flagReject != 0
	m.Force = flags&flagForce != 0
	m.Eligible = flags&flagEligible != 0
	m.Confirmed = flags&flagConfirmed != 0
	return m, nil
}

// appendRoleMessage appends m of role idx to b, the frameRoles being
// built for one peer; an empty b starts one.
func appendRoleMessage(b []byte, idx int, m election.Message) []byte {
	if len(b) == 0 {
		b = append(b, frameRoles)
	}
	b = binary.AppendUvarint(b, uint64(idx))
	// The message is appended after room for its length, then moved into
	// place: its encoding is at most a few hundred bytes, whose length
	// fits two bytes of uvarint.
	start := len(b)
	b = encodeMessage(b, m)
	body := b[start+1:] // without the kind byte
	n := len(body)
	var lb [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(lb[:], uint64(n))
	b = append(b[:start], lb[:ln]...)
	return append(b, body...)
}

// roleMessage is one entry of a frameRoles.
type roleMessage struct {
	role int
	m    election.Message
}

// decodeRoles parses the body of a frameRoles (after the kind byte) of a
// cluster of roles roles, appending its messages to out. Any bad entry
// drops the whole frame. Ids equal to from and to are not copied.
func decodeRoles(body []byte, roles int, from, to string, out []roleMessage) ([]roleMessage, error) {
	d := decoder{b: body}
	if len(body) == 0 {
		return out, fmt.Errorf("%w: no messages", errFrame)
	}
	for len(d.b) > 0 {
		if len(out) >= maxRoleEntries {
			return out, fmt.Errorf("%w: more than %d messages", errFrame, maxRoleEntries)
		}
		role := d.uvarint("role")
		n := d.uvarint("length")
		if d.err != nil {
			return out, d.err
		}
		if role >= uint64(roles) {
			return out, fmt.Errorf("%w: role %d of %d", errFrame, role, roles)
		}
		if n > uint64(len(d.b)) {
			return out, fmt.Errorf("%w: truncated message", errFrame)
		}
		m, err := decodeMessageAs(d.b[:n], from, to)
		if err != nil {
			return out, err
		}
		d.b = d.b[n:]
		out = append(out, roleMessage{role: int(role), m: m})
	}
	return out, nil
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
