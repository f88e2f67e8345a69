package vipnet

import (
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// pollEvery is how often the watchers look.
const pollEvery = 2 * time.Millisecond

// Change is a watched value changing, as polled.
type Change struct {
	At time.Time
	// Node is the node index for address changes; Value is "held" or ""
	// for addresses, the MAC (or "" for none) for the neighbour entry.
	Node  int
	Value string
}

// Overlap is a moment the address was on two nodes at once.
type Overlap struct {
	At   time.Time
	A, B int
}

// watcher polls which nodes hold the address and which MAC the client's
// neighbour entry for it names.
type watcher struct {
	vip    net.IP
	nodes  []*netlink.Handle
	links  []int // eth0's index in each node namespace
	client *netlink.Handle
	clLink int

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	held     []bool
	addr     []Change
	mac      string
	neigh    []Change
	overlaps []Overlap
	// ignore marks nodes left out of the overlap check: a dead node's
	// namespace keeps the address its killed driver left, but with its
	// link down it holds nothing anyone can reach.
	ignore []bool
}

func (w *watcher) start() {
	w.held = make([]bool, len(w.nodes))
	w.ignore = make([]bool, len(w.nodes))
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			w.poll()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (w *watcher) close() {
	close(w.stop)
	<-w.done
}

func (w *watcher) has(i int) bool {
	addrs, err := w.nodes[i].AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: w.links[i]}}, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.Equal(w.vip) {
			return true
		}
	}
	return false
}

// poll reads every node twice, in the same order: a node that held the
// address at both its reads held it in between (the driver does not flap
// faster than a poll), so another node seen holding it at a read in
// between is a real overlap, not an artefact of reading one namespace
// after another.
func (w *watcher) poll() {
	n := len(w.nodes)
	r1, r2 := make([]bool, n), make([]bool, n)
	for i := range n {
		r1[i] = w.has(i)
	}
	for i := range n {
		r2[i] = w.has(i)
	}
	now := time.Now()
	mac := w.clientMAC()

	w.mu.Lock()
	defer w.mu.Unlock()
	for x := range n {
		if !r1[x] || !r2[x] || w.ignore[x] {
			continue
		}
		for y := range n {
			if y == x || w.ignore[y] {
				continue
			}
			if (y > x && r1[y]) || (y < x && r2[y]) {
				w.overlaps = append(w.overlaps, Overlap{At: now, A: x, B: y})
			}
		}
	}
	for i := range n {
		if r2[i] != w.held[i] {
			w.held[i] = r2[i]
			v := ""
			if r2[i] {
				v = "held"
			}
			w.addr = append(w.addr, Change{At: now, Node: i, Value: v})
		}
	}
	if mac != w.mac {
		w.mac = mac
		w.neigh = append(w.neigh, Change{At: now, Node: -1, Value: mac})
	}
}

// clientMAC is the MAC of the client's neighbour entry for the address,
// if it has a usable one.
func (w *watcher) clientMAC() string {
	ns, err := w.client.NeighList(w.clLink, netlink.FAMILY_V4)
	if err != nil {
		return ""
	}
	for _, e := range ns {
		if e.IP.Equal(w.vip) && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0 {
			return e.HardwareAddr.String()
		}
	}
	return ""
}

// holders returns the nodes holding the address at the last poll.
func (w *watcher) holders() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var h []int
	for i, ok := range w.held {
		if ok && !w.ignore[i] {
			h = append(h, i)
		}
	}
	return h
}

func (w *watcher) setIgnore(i int, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ignore[i] = on
}

// firstHeld returns when node i was first seen holding the address at or
// after t.
func (w *watcher) firstHeld(i int, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.addr {
		if c.Node == i && c.Value != "" && !c.At.Before(t) {
			return c.At, true
		}
	}
	return time.Time{}, false
}

// macSince returns when the client's entry first named mac at or after t.
func (w *watcher) macSince(mac string, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.neigh {
		if c.Value == mac && !c.At.Before(t) {
			return c.At, true
		}
	}
	return time.Time{}, false
}

// overlapsSince returns the overlaps seen at or after t.
func (w *watcher) overlapsSince(t time.Time) []Overlap {
	w.mu.Lock()
	defer w.mu.Unlock()
	var o []Overlap
	for _, x := range w.overlaps {
		if !x.At.Before(t) {
			o = append(o, x)
		}
	}
	return o
}

// heldNow says whether node i held the address at the last poll, ignored
// or not.
func (w *watcher) heldNow(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held[i]
}

// firstGone returns when node i was first seen without the address at or
// after t.
func (w *watcher) firstGone(i int, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.addr {
		if c.Node == i && c.Value == "" && !c.At.Before(t) {
			return c.At, true
		}
	}
	return time.Time{}, false
}
