package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// One live daemon per member id. Each daemon draws a random instance id
// when it starts and sends it in its handshake. A second daemon started
// with a copy of a member's configuration (its own data directory, so its
// own votes) carries another instance id; if its peers heard both, that
// member could vote twice in one term. So a peer that has a session from
// one instance refuses every other while the first is alive, and both ends
// say so at error level.

// noInstance is the instance id of a session in handshake version 1,
// which has none: it is never taken for a duplicate.
var noInstance [transport.InstanceSize]byte

// inboundSess is one session a member opened to us.
type inboundSess struct {
	inst [transport.InstanceSize]byte
	addr string
	conn net.Conn
}

// instanceQuiet is how long a member's kept instance must have been silent
// before another instance may take its place. A daemon that crashed or was
// restarted closes its sessions and is replaced at once; this only matters
// when its machine vanished without closing them. It is well above an
// election timeout, so that a daemon paused for a failover's length (a
// stalled VM, SIGSTOP) is not replaced by a copy meanwhile.
func (d *Daemon) instanceQuiet() time.Duration {
	return max(3*time.Second, 5*d.cfg.Timing.ElectionMax)
}

// admitPeer is the handshake's check of a client that proved the secret:
// a member, and no other live instance of it connected.
func (d *Daemon) admitPeer(remote string) func(transport.Hello) error {
	return func(h transport.Hello) error {
		if h.Node == ProbeNode {
			return nil // clustd check --peers: a session of its own, never a member
		}
		p := d.peers[h.Node]
		if p == nil {
			return fmt.Errorf("%w: node %q is not a member", transport.ErrUnknownPeer, h.Node)
		}
		now := Monotonic()
		p.mu.Lock()
		// A version 1 handshake (an older daemon) carries no instance
		// id: it is taken for another instance than any live one that
		// has an id, so that it cannot get around the check; sessions
		// without an id block nothing.
		var live *inboundSess
		for s := range p.ins {
			if s.inst != noInstance && (s.inst != h.Instance || h.Version == transport.V1) {
				live = s
				break
			}
		}
		if live == nil || p.lastSeen == 0 || now-p.lastSeen >= d.instanceQuiet() {
			p.mu.Unlock()
			return nil
		}
		if p.refusedInst != h.Instance {
			p.refusedInst, p.refusedSince = h.Instance, now
		}
		// A daemon restarted in a hurry can reach us before we have read
		// its predecessor's close. It is refused, but reported only once
		// the kept instance has been heard from since the first refusal:
		// then both are certainly alive.
		proven := p.lastSeen > p.refusedSince
		liveAddr := live.addr
		p.mu.Unlock()
		if proven {
			d.duplicateSeen(h.Node, liveAddr, remote, "")
			d.log.Error("refusing a second live daemon claiming a member's id: two daemons run with the same configuration; stop the one that should not run",
				"member", h.Node, "live", liveAddr, "refused", remote)
		}
		return fmt.Errorf("%w: member %q is already connected from %s (refusing %s)", transport.ErrDuplicate, h.Node, liveAddr, remote)
	}
}

// admitted records an inbound session of p and closes those of any other
// instance: the check let the new one in because they were silent.
func (p *peer) admitted(in *inboundSess) {
	p.mu.Lock()
	if p.ins == nil {
		p.ins = map[*inboundSess]struct{}{}
	}
	var stale []net.Conn
	for s := range p.ins {
		if s.inst != noInstance && in.inst != noInstance && s.inst != in.inst {
			stale = append(stale, s.conn)
			delete(p.ins, s)
		}
	}
	p.ins[in] = struct{}{}
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

func (p *peer) closed(in *inboundSess) {
	p.mu.Lock()
	delete(p.ins, in)
	p.mu.Unlock()
}

// dialRefusedDuplicate handles a peer's refusal of our session because
// another live daemon uses our member id. The first refusal may be our own
// predecessor's session, not yet closed on the peer; a second in a row is
// reported.
func (d *Daemon) dialRefusedDuplicate(p *peer, err error) {
	p.dupRefusals++
	if p.dupRefusals < 2 {
		return
	}
	self := d.peerLn.Addr().String()
	d.duplicateSeen(d.cfg.ID, "", self, p.id)
	if d.failLog.first("dial/duplicate/"+p.id, Monotonic()) {
		d.log.Error("a peer refuses us: another live daemon already is this member; two daemons run with the same configuration, stop the one that should not run",
			"member", d.cfg.ID, "self", self, "peer", p.id, "peer_addr", p.addr, "err", err)
	}
}

// maxDuplicates bounds the duplicates remembered for status.
const maxDuplicates = 64

// dupKey identifies a remembered duplicate: by host, since each attempt
// comes from a new port.
type dupKey struct{ member, refusedHost, peer string }

type dupRecord struct {
	api.Duplicate
	at time.Duration
}

// duplicates remembers what status shows of duplicate members.
type duplicates struct {
	mu   sync.Mutex
	seen map[dupKey]*dupRecord
}

func (d *Daemon) duplicateSeen(member, live, refused, peer string) {
	d.metrics.DuplicateMember()
	now := Monotonic()
	k := dupKey{member: member, refusedHost: hostOf(refused), peer: peer}
	d.dups.mu.Lock()
	defer d.dups.mu.Unlock()
	if d.dups.seen == nil {
		d.dups.seen = map[dupKey]*dupRecord{}
	}
	r := d.dups.seen[k]
	if r == nil {
		if len(d.dups.seen) >= maxDuplicates {
			var oldest dupKey
			first := true
			for k, r := range d.dups.seen {
				if first || r.at < d.dups.seen[oldest].at {
					oldest, first = k, false
				}
			}
			delete(d.dups.seen, oldest)
		}
		r = &dupRecord{Duplicate: api.Duplicate{Member: member, Peer: peer}}
		d.dups.seen[k] = r
	}
	if live != "" {
		r.Live = live
	}
	r.Refused = refused
	r.Refusals++
	r.at = now
}

// duplicateStatus lists the remembered duplicates for status.
func (d *Daemon) duplicateStatus(now time.Duration) []api.Duplicate {
	d.dups.mu.Lock()
	defer d.dups.mu.Unlock()
	var out []api.Duplicate
	for _, r := range d.dups.seen {
		dup := r.Duplicate
		dup.AgoMS = (now - r.at).Milliseconds()
		out = append(out, dup)
	}
	slices.SortFunc(out, func(a, b api.Duplicate) int {
		return cmp.Or(cmp.Compare(a.Member, b.Member), cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Refused, b.Refused))
	})
	return out
}

// isDuplicate reports whether err is a refusal for being a duplicate.
func isDuplicate(err error) bool { return errors.Is(err, transport.ErrDuplicate) }

// checkOwnAddress refuses a configuration whose member address for this
// node is not an address of this machine, unless listen was set
// explicitly (an address behind NAT, say). Such a file was most likely
// copied from another member, and running it would make a second daemon
// claim that member's id.
func checkOwnAddress(cfg *config.Config) error {
	if cfg.ListenSet {
		return nil
	}
	addr := cfg.Self().Address
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // the listener reports it
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("member address %s of this node (%q in %s) does not resolve (%v); set listen explicitly to start anyway", addr, cfg.ID, cfg.Path, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		return nil // cannot tell: the listener decides
	}
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return nil
		}
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return nil
			}
		}
	}
	return fmt.Errorf("member address %s of this node (%q in %s) is not an address of this machine: is this another member's configuration? "+
		"Two daemons with one member id could vote twice in a term. If the address is right (behind NAT, say), set listen explicitly", addr, cfg.ID, cfg.Path)
}
