package node

import (
	"errors"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

func TestRolesFrameRoundTrip(t *testing.T) {
	ms := []roleMessage{
		{0, election.Message{Type: election.MsgHeartbeat, From: "a", To: "b", Term: 7, Sent: 123 * time.Millisecond, Skip: 0b101}},
		{2, election.Message{Type: election.MsgPreVoteResp, From: "a", To: "b", Term: 1<<63 + 5, Reject: true, RetryAfter: 17 * time.Millisecond}},
		{200, election.Message{Type: election.MsgTimeoutNow, From: "a", To: "b", Term: 3, Confirmed: true}},
	}
	var b []byte
	for _, rm := range ms {
		b = appendRoleMessage(b, rm.role, rm.m)
	}
	if b[0] != frameRoles {
		t.Fatalf("kind byte %d", b[0])
	}
	got, err := decodeRoles(b[1:], 201, "a", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ms) {
		t.Fatalf("%d messages back, want %d", len(got), len(ms))
	}
	for i := range ms {
		if got[i] != ms[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], ms[i])
		}
	}
	// Each entry is the message's own encoding: kind 1 less its byte.
	one := appendRoleMessage(nil, 1, ms[0].m)
	if want := append([]byte{frameRoles, 1, byte(len(encodeMessage(nil, ms[0].m)) - 1)}, encodeMessage(nil, ms[0].m)[1:]...); string(one) != string(want) {
		t.Errorf("entry layout %x, want %x", one, want)
	}
}

func TestRolesFrameRejects(t *testing.T) {
	m := election.Message{Type: election.MsgVote, From: "a", To: "b", Term: 3}
	good := appendRoleMessage(nil, 1, m)[1:]
	two := appendRoleMessage(appendRoleMessage(nil, 0, m), 1, m)[1:]
	cases := map[string][]byte{
		"empty":             {},
		"role out of range": appendRoleMessage(nil, 2, m)[1:],
		"truncated":         good[:len(good)-1],
		"long length":       append([]byte{1, byte(len(good) + 5)}, good[2:]...),
		"short length":      append([]byte{1, byte(len(good) - 3)}, good[2:]...),
		"trailing byte":     append(append([]byte{}, two...), 1),
		"bad message":       append([]byte{0, 3}, 99, 0, 1),
	}
	for name, body := range cases {
		if _, err := decodeRoles(body, 2, "a", "b", nil); !errors.Is(err, errFrame) {
			t.Errorf("%s: err = %v, want errFrame", name, err)
		}
	}
	var many []byte
	for range maxRoleEntries + 1 {
		many = appendRoleMessage(many, 0, m)
	}
	if _, err := decodeRoles(many[1:], 1, "a", "b", nil); !errors.Is(err, errFrame) {
		t.Errorf("%d entries: err = %v", maxRoleEntries+1, err)
	}
}

func FuzzDecodeRoles(f *testing.F) {
	m := election.Message{Type: election.MsgHeartbeat, From: "a", To: "b", Term: 9}
	f.Add(appendRoleMessage(appendRoleMessage(nil, 0, m), 3, m)[1:])
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, err := decodeRoles(body, 4, "a", "", nil)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		var b []byte
		for _, rm := range ms {
			if rm.role < 0 || rm.role >= 4 {
				t.Fatalf("role %d decoded", rm.role)
			}
			b = appendRoleMessage(b, rm.role, rm.m)
		}
		if string(b[1:]) != string(body) {
			// Varints have one canonical form each here except for
			// padded ones, which decode the same: re-decode to compare.
			again, err := decodeRoles(b[1:], 4, "", "b", nil)
			if err != nil || len(again) != len(ms) {
				t.Fatalf("re-encoding %x gave %x, which decodes to %v, %v", body, b, again, err)
			}
		}
	})
}
