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
	At time.Duration
	// Role names the role whose invariant broke in a multi-role run; it
	// is empty when there is one role, or when the machine itself failed.
	Role string
	Node string
	What string
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%v: ", v.At)
	if v.Role != "" {
		b.WriteString("role " + v.Role + ": ")
	}
	if v.Node != "" {
		b.WriteString(v.Node + ": ")
	}
	b.WriteString(v.What)
	return b.String()
}

// checker holds the invariants checked after every event. It watches the
// cores' published states and the traffic, independently of each other, so
// that one bookkeeping mistake cannot hide another.
//
// Every role is checked on its own (roleCheck): roles are independent
// elections, and one role's master says nothing about another's.
type checker struct {
	s          *Sim
	violations []Violation
	// awaiting says some role is waiting for a master (see roleCheck).
	awaiting bool
}

// roleCheck is one role's share of the checker.
type roleCheck struct {
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
	for _, rl := range s.roles {
		rl.check.termMaster = map[uint64]string{}
		rl.check.heartbeater = map[uint64]string{}
	}
}

// violate records a broken invariant of node (none if negative), of no
// role in particular.
func (c *checker) violate(node int, what string) {
	c.violateRole(nil, node, what)
}

// violateIn records a broken invariant of replica n: its node and role.
func (c *checker) violateIn(n *node, what string) {
	c.violateRole(c.s.roles[n.role], n.idx, what)
}

// violateRole records a broken invariant of role rl (none if nil) and node
// (none if negative).
func (c *checker) violateRole(rl *role, node int, what string) {
	v := Violation{At: c.s.now, What: what}
	if rl != nil {
		v.Role = rl.name
	}
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
	awaiting := false
	for _, rl := range c.s.roles {
		if !c.afterEventRole(rl) {
			return
		}
		awaiting = awaiting || rl.check.awaiting
	}
	c.awaiting = awaiting
}

// afterEventRole checks one role's instant-wise invariants; it reports
// false when it found a violation.
func (c *checker) afterEventRole(rl *role) bool {
	s := c.s
	rc := &rl.check
	var who, drivers [2]int
	count, acting := 0, 0
	for i, n := range rl.nodes {
		if s.claims(n) {
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
	rc.claiming = count > 0 || acting > 0
	if count > 1 {
		c.violateRole(rl, -1, fmt.Sprintf("two masters at once: %s and %s", s.describeClaim(rl.nodes[who[0]]), s.describeClaim(rl.nodes[who[1]])))
		return false
	}
	if acting > 1 {
		c.violateRole(rl, -1, fmt.Sprintf("two masters at once: the drivers of %s and of %s", s.describeDrivers(rl.nodes[drivers[0]]), s.describeDrivers(rl.nodes[drivers[1]])))
		return false
	}
	if count == 1 {
		// The lease's own promise, whatever the stop budget adds: no
		// master while another node's drivers hold a lease that has not
		// run out and have not confirmed that they stopped.
		for _, n := range rl.nodes {
			if n.idx != who[0] && s.leaseHeld(n) {
				c.violateRole(rl, -1, fmt.Sprintf("two masters at once: %s and %s", s.describeClaim(rl.nodes[who[0]]), s.describeLease(n)))
				return false
			}
		}
	}
	if rc.awaiting && count == 1 {
		for _, n := range rl.nodes {
			if n.up && !n.paused && n.core.IsMaster(s.local(n, s.now)) {
				rl.stats.masterSurvived(n.idx, n.state.Term)
				rc.awaiting = false
				rl.stats.Recoveries = append(rl.stats.Recoveries, s.now-rc.awaitSince)
				break
			}
		}
	}
	return true
}

// elapse accounts for the time between two events.
func (c *checker) elapse(to time.Duration) {
	d := to - c.s.now
	for _, rl := range c.s.roles {
		rl.stats.Elapsed += d
		if rl.check.claiming {
			rl.stats.MasterTime += d
		}
	}
}

func (c *checker) becameMaster(n *node, st election.State) {
	rc := &c.s.roles[n.role].check
	if prev, ok := rc.termMaster[st.Term]; ok && prev != n.id {
		c.violateIn(n, fmt.Sprintf("became master of term %d, which %s already won", st.Term, prev))
	}
	rc.termMaster[st.Term] = n.id
}

// sent watches the traffic: only one node may send heartbeats in a term.
func (c *checker) sent(n *node, m election.Message) {
	if m.Type != election.MsgHeartbeat {
		return
	}
	rc := &c.s.roles[n.role].check
	if prev, ok := rc.heartbeater[m.Term]; ok {
		if prev != n.id {
			c.violateIn(n, fmt.Sprintf("sent heartbeats for term %d, as %s did", m.Term, prev))
		}
		return
	}
	rc.heartbeater[m.Term] = n.id
}

// expectMaster starts the liveness clock: a master must appear within the
// bound from now.
//
// Messages still in flight when the faults heal may arrive late and keep
// followers loyal to a master that is gone, so the bound grows by the
// longest delay the network could have given them.
func (c *checker) expectMaster(inFlight time.Duration) {
	s := c.s
	bound := s.opts.LivenessBound + inFlight
	for _, rl := range s.roles {
		rc := &rl.check
		rc.awaiting = true
		rc.awaitSince = s.now
		rc.awaitGen++
		gen := rc.awaitGen
		s.At(s.now+bound, func() {
			if rc.awaiting && rc.awaitGen == gen {
				c.violateRole(rl, -1, fmt.Sprintf("no master within %v of the cluster healing", bound))
			}
		})
	}
	c.awaiting = true
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
		fmt.Fprintln(s.opts.Verbose, formatEntry(entryLabel(n, e), e))
	}
}

// entryLabel names the node an entry is about: a fault hits the machine,
// every role of it, and is recorded once.
func entryLabel(n *node, e tlEntry) string {
	if e.kind == tlFault {
		return n.id
	}
	return n.label
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
	for _, n := range s.allReplicas() {
		for _, e := range n.timeline.entries() {
			rows = append(rows, row{entryLabel(n, e), e, n.idx})
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
