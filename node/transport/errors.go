package transport

import (
	"errors"
	"fmt"
)

// ErrAuth means the peer failed to prove that it knows the cluster secret,
// which in practice means the two daemons are configured with different
// secrets (or the peer is not a clustd daemon of this cluster).
var ErrAuth = errors.New("transport: authentication failed")

// ErrUnknownPeer means the node at the other end is not the one wanted: on
// the server the client's node id is not allowed, on the client the server
// names itself differently from the node that was dialled, or the server
// reported that it does not allow the client's node id.
var ErrUnknownPeer = errors.New("transport: unknown peer")

// ErrDuplicate means the server already has a live session from another
// instance of the client's node id: two daemons were started with the same
// configuration, and the newcomer is refused.
var ErrDuplicate = errors.New("transport: another instance of this node is already connected")

// ErrHelloRefused means the server closed the connection on the client's
// hello without answering. An older daemon does that to a handshake
// version it does not speak (a client may then try V1); a busy one sheds
// connections the same way.
var ErrHelloRefused = errors.New("transport: the peer hung up on our hello")

// ErrProtocol means the peer sent handshake bytes that do not follow the
// protocol: wrong magic or version, a bad length, a truncated message.
var ErrProtocol = errors.New("transport: protocol error")

// ErrPeerClosed means the peer closed the connection during the handshake
// without a verdict. A server does that when the client's proof is wrong,
// so a client that sees this right after proving should suspect that the
// two daemons have different secrets.
var ErrPeerClosed = errors.New("transport: peer closed the connection during the handshake")

// ErrFrameTooLarge means a frame's payload exceeds MaxFrame: either Send was
// given too much or the peer announced a frame longer than allowed.
var ErrFrameTooLarge = errors.New("transport: frame too large")

// ErrBadFrame means a received frame did not authenticate or was cut short.
// Tampering, replay, reordering and loss all end here, because each of them
// changes the bytes or the counter a frame is opened with.
var ErrBadFrame = errors.New("transport: bad frame")

// ClusterMismatchError reports that both daemons proved the secret but were
// started with different cluster configurations. Letting them talk could
// break the election's majority arithmetic, so the session is refused.
type ClusterMismatchError struct {
	// Local is this daemon's node id.
	Local string
	// Peer is the node id the other daemon authenticated with.
	Peer string
}

// Error names both nodes so that an operator reading either daemon's log
// knows which two configurations to compare.
func (e *ClusterMismatchError) Error() string {
	return fmt.Sprintf("transport: node %q and node %q have different cluster configurations (member lists or timing differ); refusing to talk", e.Local, e.Peer)
}
