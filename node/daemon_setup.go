package node

import (
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/store"
)

// This file holds the steps of New.

// newCore makes the election core for cfg, resuming from the persisted
// hard state hs.
func newCore(cfg *config.Config, hs store.HardState, now time.Duration) (*election.Node, error) {
	members := make([]election.Member, len(cfg.Members))
	for i, m := range cfg.Members {
		members[i] = election.Member{ID: m.ID, Witness: m.Witness, Priority: m.Priority}
	}
	return election.New(election.Config{
		ID:              cfg.ID,
		Members:         members,
		Timing:          cfg.Timing,
		Preempt:         cfg.Preempt,
		PreemptHoldDown: cfg.PreemptHoldDown,
		DemoteTimeout:   cfg.DemoteTimeout,
		Rand:            rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		Unsafe:          unsafeCore,
	}, election.HardState{Term: hs.Term, Vote: hs.Vote}, now)
}

// addPeers makes a peer for every other member, in member order.
func (d *Daemon) addPeers() {
	for _, m := range d.cfg.Members {
		if m.ID == d.cfg.ID {
			continue
		}
		p := &peer{id: m.ID, addr: m.Address, out: make(chan []byte, outQueue), kick: make(chan struct{}, 1), count: d.metrics.Peer(m.ID)}
		d.metrics.AddPeer(m.ID)
		d.peers[m.ID] = p
		d.order = append(d.order, p)
	}
}

// listen binds the peer and local HTTP listeners, or neither.
func (d *Daemon) listen() error {
	var err error
	if d.peerLn, err = net.Listen("tcp", d.cfg.Listen); err != nil {
		return fmt.Errorf("peer listener: %w", err)
	}
	if d.httpLn, err = net.Listen("tcp", d.cfg.HTTPListen); err != nil {
		d.peerLn.Close()
		return fmt.Errorf("local HTTP listener (http.listen): %w", err)
	}
	return nil
}
