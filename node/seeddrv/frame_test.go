package seeddrv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
)

func TestKey(t *testing.T) {
	secret := []byte("s3cret")
	before := sha256.Sum256(append(append([]byte(nil), secret...), 0, 0, 0, 7))
	if k := Key(secret, 7, 99, false); !bytes.Equal(k[:], before[:16]) {
		t.Errorf("key before the handshake: %x, want %x", k, before[:16])
	}
	b := binary.BigEndian.AppendUint32(append([]byte(nil), secret...), 7)
	b = binary.BigEndian.AppendUint32(b, 0xdeadbeef)
	after := sha256.Sum256(b)
	if k := Key(secret, 7, 0xdeadbeef, true); !bytes.Equal(k[:], after[:16]) {
		t.Errorf("key after the handshake: %x, want %x", k, after[:16])
	}
}

func TestSealOpen(t *testing.T) {
	k := Key([]byte("s"), 1, 0, false)
	msg := []byte(`{"type":"driver"}`)
	f := Seal(k, msg)
	if len(f) != Overhead+len(msg) {
		t.Fatalf("frame of %d bytes for a %d-byte message", len(f), len(msg))
	}
	if g := Seal(k, msg); bytes.Equal(f[:ivLen], g[:ivLen]) {
		t.Fatal("two frames share an IV")
	}
	got, err := Open(k, f)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open: %q, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"truncated":   f[:Overhead-1],
		"no message":  f[:Overhead],
		"flipped tag": flip(f, ivLen),
		"flipped iv":  flip(f, 0),
		"flipped ct":  flip(f, len(f)-1),
	} {
		if _, err := Open(k, bad); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
	if _, err := Open(Key([]byte("s"), 2, 0, false), f); !errors.Is(err, ErrFrame) {
		t.Errorf("another counter's key opened the frame: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x80
	return c
}

func FuzzOpen(f *testing.F) {
	k := Key([]byte("fuzz"), 1, 0, false)
	f.Add(Seal(k, []byte(`{"type":"driver"}`)))
	f.Add([]byte{})
	f.Add(make([]byte, Overhead))
	f.Fuzz(func(t *testing.T, frame []byte) {
		msg, err := Open(k, frame)
		if err == nil && len(msg) != len(frame)-Overhead {
			t.Fatalf("opened %d bytes from a %d-byte frame", len(msg), len(frame))
		}
	})
}

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want message
		kind string
	}{
		{`{"res_id":3,"data":{}}`, message{id: 3}, ""},
		{`{"res_id":3,"error":"boom"}`, message{id: 3, failure: "boom"}, ""},
		{`{"res_id":3,"error":null,"data":{}}`, message{id: 3}, ""},
		{`{"res_id":3,"error":{"code":1}}`, message{id: 3, failure: `{"code":1}`}, ""},
		{`{"req_id":0,"method":"status","params":{}}`, message{request: true, method: "status"}, ""},
		{`{"hello_world":5,"id":"x"}`, message{}, "hello"},
		{`{"res_id":"3"}`, message{}, "malformed"},
		{`{"res_id":1.5}`, message{}, "malformed"},
		{`{"method":"x"}`, message{}, "malformed"},
		{`{"req_id":1,"method":7}`, message{}, "malformed"},
		{`{"data":{}}`, message{}, "malformed"},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatal(err)
		}
		got, rf := parseMessage(m)
		switch {
		case tc.kind == "" && (rf != nil || got != tc.want):
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, rf, tc.want)
		case tc.kind != "" && (rf == nil || rf.kind != tc.kind):
			t.Errorf("%s: %+v, %v; want a refusal of kind %q", tc.in, got, rf, tc.kind)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{`{"res_id":3,"data":{}}`, `{"req_id":0,"method":"m","params":{}}`, `{"hello_world":1}`, `{}`, `{"res_id":3,"error":"e"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return
		}
		msg, rf := parseMessage(m)
		if rf == nil && !msg.request && m["res_id"] == nil {
			t.Fatalf("%s accepted as a response without res_id", b)
		}
	})
}
