package node

import (
	"errors"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

func TestMessageRoundTrip(t *testing.T) {
	cases := []election.Message{
		{Type: election.MsgHeartbeat, From: "a", To: "b", Term: 7, Sent: 123 * time.Millisecond, Skip: 0b101},
		{Type: election.MsgPreVoteResp, From: "node-1", To: "node.2", Term: 1<<63 + 5, Reject: true, RetryAfter: 17 * time.Millisecond, Sent: -1},
		{Type: election.MsgVote, From: "x", To: "y", Term: 1, Force: true},
		{Type: election.MsgHeartbeatResp, From: "x", To: "y", Term: 1, Eligible: true, Sent: 1 << 62},
		{Type: election.MsgTimeoutNow, From: "x", To: "y", Term: 3, Confirmed: true},
	}
	for _, m := range cases {
		b := encodeMessage(nil, m)
		if b[0] != frameMessage {
			t.Fatalf("kind byte %d", b[0])
		}
		got, err := decodeMessage(b[1:])
		if err != nil {
			t.Fatalf("%s: %v", election.Describe(m), err)
		}
		if got != m {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	good := encodeMessage(nil, election.Message{Type: election.MsgVote, From: "a", To: "b", Term: 3})[1:]
	cases := map[string][]byte{
		"empty":          {},
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"unknown type":   append([]byte{99}, good[1:]...),
		"zero type":      append([]byte{0}, good[1:]...),
		"unknown flags":  append([]byte{good[0], 0x80}, good[2:]...),
		"empty id":       encodeMessage(nil, election.Message{Type: election.MsgVote, From: "", To: "b"})[1:],
		"long id length": append(good[:len(good)-2], 200, 'b'),
	}
	for name, b := range cases {
		if _, err := decodeMessage(b); !errors.Is(err, errFrame) {
			t.Errorf("%s: got %v, want a malformed-frame error", name, err)
		}
	}
}

func TestPingRoundTrip(t *testing.T) {
	b := encodePing(nil, framePing, 42*time.Second)
	got, err := decodePing(b[1:])
	if err != nil || got != 42*time.Second {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := decodePing(b[1:5]); err == nil {
		t.Fatal("short ping accepted")
	}
}

// FuzzDecodeMessage: no input panics, and whatever decodes survives an
// encode and decode unchanged.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(nil, election.Message{Type: election.MsgHeartbeat, From: "a", To: "b", Term: 7, Sent: time.Second, Skip: 3})[1:])
	f.Add(encodeMessage(nil, election.Message{Type: election.MsgPreVoteResp, From: "n1", To: "n2", Reject: true, RetryAfter: time.Millisecond})[1:])
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		again := encodeMessage(nil, m)[1:]
		m2, err := decodeMessage(again)
		if err != nil || m2 != m {
			t.Fatalf("re-decode: %+v %v", m2, err)
		}
	})
}
