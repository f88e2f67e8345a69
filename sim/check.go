package sim

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
)

// Violation is a broken invariant.
type Violation struct {
	At   time.Duration
	Node string
	What string
}

func (v Violation) String() string {
	if v.Node == "" {
		return fmt.Sprintf("t=%v: %s", v.At, v.What)
	}
	return fmt.Sprintf("t=%v: %s: %s", v.At, v.Node, v.What)
}

// checker holds the invariants checked after every event. It watches the
// cores' published states and the traffic, independently of each other, so
// that one bookkeeping mistake cannot hide another.
type checker struct {
	s          *Sim
	violations []Violation
	// termMaster: the one node allowed to be master of each term.
	termMaster map[uint64]string
	// heartbeater: the one node seen sending heartbeats in each term.
	heartbeater map[uint64]string
	claiming    bool
	// liveness
	awaiting   bool
	awaitSince time.Duration
	awaitGen   uint64
}

func (c *checker) init(s *Sim) {
	c.s = s
	c.termMaster = map[uint64]string{}
	c.heartbeater = map[uint64]string{}
}

func (c *checker) violate(node int, what string) {
	v := Violation{At: c.s.now, What: what}
	if node >= 0 {
		v.Node = c.s.nodes[node].id
	}
	c.violations = append(c.violations, v)
	c.s.stopped = true
	if c.s.opts.Verbose != nil {
		fmt.Fprintf(c.s.opts.Verbose, "VIOLATION %s\n", v)
	}
}

// afterEvent checks the instant-wise invariants. Two master intervals that
// overlap contain the later one's start, which is an event, so checking at
// every event finds every overlap.
func (c *checker) afterEvent() {
	s := c.s
	var who, drivers [2]int
	count, acting := 0, 0
	for i, n := range s.nodes {
		if s.claimsCore(i) {
			if count < 2 {
				who[count] = i
			}
			count++
		}
		if s.driversAct(n) {
			if acting < 2 {
				drivers[acting] = i
			}
			acting++
		}
	}
	c.claiming = count > 0 || acting > 0
	if count > 1 {
		c.violate(-1, fmt.Sprintf("two masters at once: %s and %s", s.describeClaim(s.nodes[who[0]]), s.describeClaim(s.nodes[who[1]])))
		return
	}
	if acting > 1 {
		c.violate(-1, fmt.Sprintf("two masters at once: the drivers of %s and of %s", s.describeDrivers(s.nodes[drivers[0]]), s.describeDrivers(s.nodes[drivers[1]])))
		return
	}
	if count == 1 {
		// The lease's own promise, whatever the stop budget adds: no
		// master while another node's drivers hold a lease that has not
		// run out and have not confirmed that they stopped.
		for _, n := range s.nodes {
			if n.idx != who[0] && s.leaseHeld(n) {
				c.violate(-1, fmt.Sprintf("two masters at once: %s and %s", s.describeClaim(s.nodes[who[0]]), s.describeLease(n)))
				return
			}
		}
	}
	if c.awaiting && count == 1 {
		for _, n := range s.nodes {
			if n.up && !n.paused && n.core.IsMaster(s.local(n, s.now)) {
				s.stats.masterSurvived(n.idx, n.state.Term)
				c.awaiting = false
				s.stats.Recoveries = append(s.stats.Recoveries, s.now-c.awaitSince)
				break
			}
		}
	}
}

// elapse accounts for the time between two events.
func (c *checker) elapse(to time.Duration) {
	d := to - c.s.now
	c.s.stats.Elapsed += d
	if c.claiming {
		c.s.stats.MasterTime += d
	}
}

func (c *checker) becameMaster(n *node, st election.State) {
	if prev, ok := c.termMaster[st.Term]; ok && prev != n.id {
		c.violate(n.idx, fmt.Sprintf("became master of term %d, which %s already won", st.Term, prev))
	}
	c.termMaster[st.Term] = n.id
}

// sent watches the traffic: only one node may send heartbeats in a term.
func (c *checker) sent(n *node, m election.Message) {
	if m.Type != election.MsgHeartbeat {
		return
	}
	if prev, ok := c.heartbeater[m.Term]; ok {
		if prev != n.id {
			c.violate(n.idx, fmt.Sprintf("sent heartbeats for term %d, as %s did", m.Term, prev))
		}
		return
	}
	c.heartbeater[m.Term] = n.id
}

// expectMaster starts the liveness clock: a master must appear within the
// bound from now.
//
// Messages still in flight when the faults heal may arrive late and keep
// followers loyal to a master that is gone, so the bound grows by the
// longest delay the network could have given them.
func (c *checker) expectMaster(inFlight time.Duration) {
	s := c.s
	c.awaiting = true
	c.awaitSince = s.now
	c.awaitGen++
	gen := c.awaitGen
	bound := s.opts.LivenessBound + inFlight
	s.At(s.now+bound, func() {
		if c.awaiting && c.awaitGen == gen {
			c.violate(-1, fmt.Sprintf("no master within %v of the cluster healing", bound))
		}
	})
	c.afterEvent()
}

// Timeline.

type tlKind uint8

const (
	tlStart tlKind = iota + 1
	tlState
	tlRecv
	tlFault
)

type tlEntry struct {
	at, local time.Duration
	kind      tlKind
	term      uint64
	text      string
	state     election.State
}

// ring keeps the last events of a node for the report of a violation.
type ring struct {
	buf  [24]tlEntry
	next int
	full bool
}

func (r *ring) add(e tlEntry) {
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) entries() []tlEntry {
	if !r.full {
		return slices.Clone(r.buf[:r.next])
	}
	return append(slices.Clone(r.buf[r.next:]), r.buf[:r.next]...)
}

func (s *Sim) record(n *node, kind tlKind, text string, term uint64) {
	e := tlEntry{at: s.now, local: s.local(n, s.now), kind: kind, text: text, term: term, state: n.state}
	n.timeline.add(e)
	if s.opts.Verbose != nil {
		fmt.Fprintln(s.opts.Verbose, formatEntry(n.id, e))
	}
}

func formatEntry(id string, e tlEntry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%12.6fs %-4s ", e.at.Seconds(), id)
	switch e.kind {
	case tlStart:
		fmt.Fprintf(&b, "start term=%d", e.term)
	case tlState:
		st := e.state
		fmt.Fprintf(&b, "%s term=%d", st.Role, st.Term)
		if st.Master != "" {
			fmt.Fprintf(&b, " master=%s", st.Master)
		}
		if st.LeaseUntil > 0 {
			fmt.Fprintf(&b, " lease=+%v", st.LeaseUntil-e.local)
		}
		fmt.Fprintf(&b, " (%s)", e.text)
	case tlRecv:
		b.WriteString("recv " + e.text)
	case tlFault:
		b.WriteString("FAULT " + e.text)
	}
	return b.String()
}

// WriteTimeline writes the last events of every node, merged in time order.
func (s *Sim) WriteTimeline(w io.Writer) {
	type row struct {
		id string
		e  tlEntry
		n  int
	}
	var rows []row
	for _, n := range s.nodes {
		for _, e := range n.timeline.entries() {
			rows = append(rows, row{n.id, e, n.idx})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if c := cmp.Compare(a.e.at, b.e.at); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	for _, r := range rows {
		fmt.Fprintln(w, formatEntry(r.id, r.e))
	}
}

// describeClaim says why node n counts as master now.
func (s *Sim) describeClaim(n *node) string {
	l := s.local(n, s.now)
	return fmt.Sprintf("%s (master of term %d, lease %v more)", n.id, n.state.Term, n.state.LeaseUntil-l)
}

// describeLease says why node n's drivers still hold a lease.
func (s *Sim) describeLease(n *node) string {
	l := s.local(n, s.now)
	return fmt.Sprintf("%s (demoted, drivers still hold its lease for %v, now at term %d)", n.id, n.driverLease-l, n.lastTerm)
}

// describeDrivers says why node n's drivers count as master now.
func (s *Sim) describeDrivers(n *node) string {
	l := s.local(n, s.now)
	if n.holdUntil > l {
		return fmt.Sprintf("%s (demoted, drivers still acting for %v, now at term %d)", n.id, n.holdUntil-l, n.lastTerm)
	}
	return fmt.Sprintf("%s (drivers acting as master of term %d, until %v more)", n.id, n.state.Term, s.stopBy(n, n.driverLease, l)-l)
}
