// Package transport is the secure session layer between two clustd daemons.
//
// A session runs over any net.Conn. The side that dialled calls Client, the
// side that accepted calls Server. Both share a cluster secret that never
// crosses the wire. After the handshake each side holds a Session whose
// frames are encrypted, authenticated and protected against replay,
// reordering and loss. Payloads are opaque to this package.
//
// # Handshake
//
// The handshake is four messages, always in this order:
//
//	message 1, client → server, hello:   "clsd" | version | 1 | Nc | ClusterHash | Instance | len | Node
//	message 2, server → client, hello:   "clsd" | version | 2 | Ns | ClusterHash | Instance | len | Node
//	message 3, client → server, proof:   Pc
//	message 4, server → client, verdict: status | Ps
//
// The magic is the four bytes "clsd", version is one byte (currently 2),
// the next byte tells a client hello (1) from a server hello (2), Nc and Ns
// are fresh 32-byte random nonces, ClusterHash is the sender's 32-byte
// configuration hash, Instance is the 16 random bytes the sender drew when
// it started, and len is one byte giving the length (1 to 255) of
// the sender's node id. Pc and Ps are 32 bytes, status is one byte: 0 for
// accepted, 1 when the server does not allow the client's node id, 2 when
// the cluster hashes differ, 3 when another live instance of the client's
// node id is already connected.
//
// Version 1, spoken by older daemons, is the same without Instance. A
// server answers in the version of the client's hello, either one; a
// client speaks version 2, and a server that speaks only version 1 hangs
// up on that hello (ErrHelloRefused), after which a daemon dials again in
// version 1. A version 1 session carries no instance id, so a second
// daemon of such a member goes undetected until it is upgraded.
//
// Let T be the SHA-256 of the exact bytes of message 1 followed by message
// 2; T therefore covers both nonces and both hellos. Keys come from
// HKDF-SHA256 with the secret as input keying material and Nc‖Ns as salt:
//
//	PRK = HKDF-Extract(salt = Nc‖Ns, IKM = secret)
//	Kcp = HKDF-Expand(PRK, "clustd transport v1 client proof", 32)
//	Ksp = HKDF-Expand(PRK, "clustd transport v1 server proof", 32)
//	Kcs = HKDF-Expand(PRK, "clustd transport v1 client to server" ‖ T, 32)
//	Ksc = HKDF-Expand(PRK, "clustd transport v1 server to client" ‖ T, 32)
//
//	Pc = HMAC-SHA256(Kcp, "client" ‖ T)
//	Ps = HMAC-SHA256(Ksp, "server" ‖ T ‖ status)
//
// Each proof is bound to both nonces, both hellos and the prover's role, so
// a proof taken from one connection cannot be replayed on another (the
// other side's nonce differs), and a proof cannot be reflected back to the
// side that made it (the role differs, both in the key and in the label).
// Ps also covers the status byte, so nobody without the secret can turn an
// acceptance into a refusal or the other way round.
//
// The client proves first and the server answers only a client that
// proved the secret: a stranger connecting to a daemon's port receives a
// nonce and a hello, never anything computed from the secret, so it has
// nothing to test guesses of a weak secret against. A client refuses,
// before proving anything, a server whose hello names another node than
// the one it meant to dial, or whose nonce echoes its own.
//
// The server compares the cluster hashes and asks whether the client's
// node id is allowed only after Pc checked out, and reports the result in
// the status byte of message 4; the client trusts that byte only after
// checking Ps, and then compares the hashes itself. An unauthenticated
// peer thus learns nothing about the configuration or the member list.
// Whenever a side finds the peer's bytes malformed or its proof wrong, it
// closes the connection without sending anything more.
//
// # Frames
//
// After the handshake each direction is a sequence of frames:
//
//	length (4 bytes, big endian) | AES-256-GCM ciphertext and tag (length bytes)
//
// The client seals with Kcs and the server with Ksc. The 12-byte GCM nonce
// is four zero bytes followed by a 64-bit big-endian count of the frames
// already sent in that direction. The receiver opens each frame with the
// count it expects next, so a replayed, reordered, dropped or modified frame
// fails authentication. A length above MaxFrame plus the 16-byte tag is
// refused before anything is allocated.
//
// # Payloads
//
// The daemon's payloads (node/wire.go, docs/wire.md) start with a kind
// byte. One session carries every role of a cluster configured with
// roles:: kind 7 packs the election messages of several roles, each
// tagged with its role's index, so that one heartbeat round is one frame
// per peer and one answer, whatever the number of roles. A cluster without
// roles: never sends kind 7; its payloads are those of daemons from
// before roles.
package transport
