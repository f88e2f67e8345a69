package seeddrv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame layout: IV, then the GCM tag, then the ciphertext. The tag comes
// before the ciphertext, not after it as Go's AEAD puts it.
const (
	ivLen  = 12
	tagLen = 16
	// Overhead is what encryption adds to a message.
	Overhead = ivLen + tagLen
)

// ErrFrame is returned for a frame that does not decrypt: a wrong secret, a
// truncated or altered frame, or one replayed under another counter.
var ErrFrame = errors.New("the frame does not decrypt: wrong secret, or a damaged or replayed frame")

// Key derives the AES-128 key of one message: the first 16 bytes of
// SHA-256(secret || counter) before the handshake completes, and of
// SHA-256(secret || counter || ticket) after, both numbers big-endian.
func Key(secret []byte, counter uint32, ticket uint32, withTicket bool) [16]byte {
	h := sha256.New()
	h.Write(secret)
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], counter)
	n := 4
	if withTicket {
		binary.BigEndian.PutUint32(b[4:], ticket)
		n = 8
	}
	h.Write(b[:n])
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

func gcm(key [16]byte) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // unreachable: the key is 16 bytes
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err) // unreachable: AES has a 16-byte block
	}
	return a
}

// Seal encrypts msg under key, with a random IV.
func Seal(key [16]byte, msg []byte) []byte {
	out := make([]byte, Overhead, Overhead+len(msg))
	rand.Read(out[:ivLen])
	sealed := gcm(key).Seal(nil, out[:ivLen], msg, nil)
	ct, tag := sealed[:len(msg)], sealed[len(msg):]
	copy(out[ivLen:], tag)
	return append(out, ct...)
}

// Open decrypts a frame under key.
func Open(key [16]byte, frame []byte) ([]byte, error) {
	if len(frame) < Overhead {
		return nil, fmt.Errorf("%w (%d bytes, shorter than the %d of IV and tag)", ErrFrame, len(frame), Overhead)
	}
	iv, tag, ct := frame[:ivLen], frame[ivLen:Overhead], frame[Overhead:]
	buf := make([]byte, 0, len(ct)+tagLen)
	buf = append(append(buf, ct...), tag...)
	msg, err := gcm(key).Open(buf[:0], iv, buf, nil)
	if err != nil {
		return nil, ErrFrame
	}
	return msg, nil
}

// counters hold one connection's message counters and ticket: each side
// numbers its messages from 1, and keys include the ticket once that side
// considers the handshake complete.
type counters struct {
	secret              []byte
	in, out             uint32
	ticket              uint32
	inTicket, outTicket bool
}

func (c *counters) seal(msg []byte) []byte {
	c.out++
	return Seal(Key(c.secret, c.out, c.ticket, c.outTicket), msg)
}

func (c *counters) open(frame []byte) ([]byte, error) {
	c.in++
	return Open(Key(c.secret, c.in, c.ticket, c.inTicket), frame)
}
