package driverproto

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

var nonce = strings.Repeat("ab", NonceLen)

func TestDecode(t *testing.T) {
	mac := HelloMAC([]byte("s"), nonce, nonce, "x-1", false, false)
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"challenge", `{"type":"challenge","version":1,"node":"a","nonce":"` + nonce + `"}`, true},
		{"hello", `{"type":"hello","version":1,"id":"x-1","name":"x","nonce":"` + nonce + `","mac":"` + mac + `"}`, true},
		{"state", `{"type":"state","seq":3,"state":{"node":"a","role":"master","is_master":true,"term":4,"master":"a","lease_ms":400,"lease_deadline_ns":5,"members":[]}}`, true},
		{"ack", `{"type":"ack","seq":3,"ok":true}`, true},
		{"ack failed", `{"type":"ack","seq":3,"ok":false,"error":"script failed"}`, true},
		{"health", `{"type":"health","ok":false,"reason":"disk full"}`, true},
		{"event", `{"type":"event","seq":9,"event":{"kind":"role","node":"a","term":4,"at_ns":1}}`, true},
		{"error", `{"type":"error","error":"duplicate id"}`, true},

		{"not json", `{"type":`, false},
		{"no type", `{}`, false},
		{"unknown type", `{"type":"reboot"}`, false},
		{"unknown field", `{"type":"ack","seq":1,"ok":true,"extra":1}`, false},
		{"two values", `{"type":"ack","seq":1,"ok":true}{"type":"ack","seq":2,"ok":true}`, false},
		{"ack without ok", `{"type":"ack","seq":1}`, false},
		{"ack without seq", `{"type":"ack","ok":true}`, false},
		{"health without ok", `{"type":"health"}`, false},
		{"state without state", `{"type":"state","seq":1}`, false},
		{"hello wrong version", `{"type":"hello","version":2,"id":"x-1","name":"x","nonce":"` + nonce + `","mac":"` + mac + `"}`, false},
		{"hello bad id", `{"type":"hello","version":1,"id":"x 1","name":"x","nonce":"` + nonce + `","mac":"` + mac + `"}`, false},
		{"hello short nonce", `{"type":"hello","version":1,"id":"x-1","name":"x","nonce":"abcd","mac":"` + mac + `"}`, false},
		{"hello no mac", `{"type":"hello","version":1,"id":"x-1","name":"x","nonce":"` + nonce + `"}`, false},
		{"oversized", `{"type":"error","error":"` + strings.Repeat("x", MaxMessage) + `"}`, false},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// The MACs bind every part, so a proof for one connection, id or flag set
// is worth nothing for another.
func TestMACsBindTheirInputs(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	n2 := strings.Repeat("cd", NonceLen)
	base := HelloMAC(secret, nonce, n2, "x-1", false, false)
	for name, other := range map[string]string{
		"secret":   HelloMAC([]byte("another secret, also 32 bytes!!!"), nonce, n2, "x-1", false, false),
		"nonces":   HelloMAC(secret, n2, nonce, "x-1", false, false),
		"id":       HelloMAC(secret, nonce, n2, "x-2", false, false),
		"required": HelloMAC(secret, nonce, n2, "x-1", true, false),
		"events":   HelloMAC(secret, nonce, n2, "x-1", false, true),
		"welcome":  WelcomeMAC(secret, nonce, n2, "x-1"),
	} {
		if CheckMAC(base, other) {
			t.Errorf("changing the %s leaves the MAC the same", name)
		}
	}
	if !CheckMAC(base, HelloMAC(secret, nonce, n2, "x-1", false, false)) {
		t.Error("the same inputs give a different MAC")
	}
	if b, err := hex.DecodeString(base); err != nil || len(b) != 32 {
		t.Errorf("MAC %q is not 32 bytes of hex", base)
	}
}

// FuzzDecode: no input panics, and whatever decodes is valid and survives a
// round trip through JSON.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"ack","seq":3,"ok":true}`))
	f.Add([]byte(`{"type":"state","seq":3,"state":{"node":"a","role":"master","is_master":true,"term":4,"members":[{"id":"b","reachable":true}]}}`))
	f.Add([]byte(`{"type":"hello","version":1,"id":"x-1","name":"x","nonce":"` + nonce + `","mac":"` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded but invalid: %v", err)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
	})
}
