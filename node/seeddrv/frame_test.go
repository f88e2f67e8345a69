package seeddrv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
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
