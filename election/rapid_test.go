package election_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/clustd/clustd/election"
)

// TestRapidSafety lets rapid draw the schedule of a 3–5 node cluster: which
// node's timers fire, which message is delivered, dropped or duplicated, who
// crashes and restarts, and the operator's commands. After every action it
// checks the contract of docs/design.md:
//
//   - at most one master per term, judged both by the states the cores
//     publish and by who sends heartbeats;
//   - no node's term ever goes back, also across a restart;
//   - a vote, once persisted for a term, never changes within that term;
//   - every hard-state change is handed out by Ready before the messages
//     that depend on it;
//   - at no real instant do two nodes act as master, counting a crashed
//     master's drivers until the lease they were given runs out.
//
// A restart may come with a new clock offset, as after a machine reboot.
// Once the schedule is over, the cluster is healed and a master must appear
// within a few election timeouts.
//
// All clocks run at the rate of real time with a fixed offset each, so the
// lease checks of different nodes can be compared at one real instant.
// Failures shrink to a short schedule and replay with -rapid.seed; raise
// -rapid.checks and -rapid.steps for a deeper search.
func TestRapidSafety(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newRapidModel(rt)
		rt.Repeat(m.actions())
		m.liveness()
	})
}

// liveness is docs/design.md's third promise, checked once the schedule is over:
// with every node up, eligible and connected, a master appears within a few
// election timeouts, whatever happened before.
func (m *rapidModel) liveness() {
	c := m.c
	c.heal()
	for _, id := range m.down() {
		c.restart(id)
	}
	for _, id := range c.ids {
		n := c.node(id)
		n.SetMaintenance(c.local(id), false)
		n.SetHealthy(c.local(id), true)
		c.collect(c.peers[id])
	}
	m.note("liveness phase: all up, eligible and connected")
	// Restarted nodes hold off for ElectionMin; a stale lease or stickiness
	// lasts as long; then ranked candidates need a few steps, and a split
	// vote a random timeout or two.
	limit := 2*m.timing.ElectionMin + 4*m.timing.ElectionMax
	start := c.now
	ok := c.runUntil(limit, func() bool {
		m.check(m.t)
		return c.hasMaster()
	})
	if !ok {
		var b strings.Builder
		for _, id := range c.ids {
			fmt.Fprintf(&b, "\n  %s: %+v", id, c.node(id).State())
		}
		m.fail("no master %v after the cluster healed at %v:%s", limit, start, b.String())
	}
}

type voteKey struct {
	node string
	term uint64
}

// rapidModel is a cluster plus the bookkeeping the invariants need.
type rapidModel struct {
	t          *rapid.T
	c          *cluster
	timing     election.Timing
	termMaster map[uint64]string
	beater     map[uint64]string
	votes      map[voteKey]string
	diskTerm   map[string]uint64
	maxTerm    map[string]uint64
	history    []string
}

func newRapidModel(t *rapid.T) *rapidModel {
	n := rapid.IntRange(3, 5).Draw(t, "nodes")
	profile := rapid.SampledFrom([]string{election.ProfileDefault, election.ProfileFast}).Draw(t, "profile")
	witness := rapid.IntRange(-1, n-1).Draw(t, "witness")
	ms := make([]election.Member, n)
	offsets := map[string]time.Duration{}
	for i := range ms {
		ms[i] = election.Member{
			ID:       string(rune('a' + i)),
			Witness:  i == witness,
			Priority: rapid.IntRange(0, 2).Draw(t, "priority"),
		}
		offsets[ms[i].ID] = time.Duration(rapid.IntRange(0, 10000).Draw(t, "offset_ms")) * time.Millisecond
	}
	timing := election.MustProfile(profile)
	m := &rapidModel{
		t:          t,
		timing:     timing,
		termMaster: map[uint64]string{},
		beater:     map[uint64]string{},
		votes:      map[voteKey]string{},
		diskTerm:   map[string]uint64{},
		maxTerm:    map[string]uint64{},
	}
	opts := clusterOpts{
		members:  ms,
		timing:   timing,
		preempt:  rapid.Bool().Draw(t, "preempt"),
		holdDown: time.Duration(rapid.IntRange(0, 5).Draw(t, "hold_down")) * timing.ElectionMin,
		offsets:  offsets,
		seed:     rapid.Uint64Range(1, 1<<40).Draw(t, "seed"),
		observe:  m.observe,
	}
	m.c = newCluster(t, opts)
	// Most schedules are more interesting once a master exists, so start
	// from there unless rapid says otherwise.
	if rapid.Bool().Draw(t, "warm") {
		m.c.runUntil(time.Minute, m.c.hasMaster)
		m.note("warm start: master %v", m.c.masters())
	}
	return m
}

// fail stops the run with the recent actions, which rapid's own log of draws
// does not spell out.
func (m *rapidModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\nat real time %v; last actions:\n  %s", fmt.Sprintf(format, args...), m.c.now, strings.Join(m.history, "\n  "))
}

// note records an action for fail's account.
func (m *rapidModel) note(format string, args ...any) {
	m.history = append(m.history, fmt.Sprintf("t=%v ", m.c.now)+fmt.Sprintf(format, args...))
	if len(m.history) > 40 {
		m.history = m.history[1:]
	}
}

// observe sees every Ready after its hard state reached disk: it checks what
// was persisted and records who claimed each term.
func (m *rapidModel) observe(c *cluster, p *peer, rd election.Ready) {
	m.t.Helper()
	m.c = c // the first Ready comes before newCluster returns
	if hs := rd.HardState; hs != nil {
		if hs.Term < m.diskTerm[p.id] {
			m.fail("%s persisted term %d after term %d", p.id, hs.Term, m.diskTerm[p.id])
		}
		m.diskTerm[p.id] = hs.Term
		k := voteKey{p.id, hs.Term}
		if old, ok := m.votes[k]; ok && old != hs.Vote {
			m.fail("%s changed its persisted vote in term %d from %q to %q", p.id, hs.Term, old, hs.Vote)
		}
		if hs.Vote != "" {
			m.votes[k] = hs.Vote
		}
	}
	for _, msg := range rd.Messages {
		if msg.From != p.id {
			m.fail("%s sent a message claiming to be from %q", p.id, msg.From)
		}
		if msg.Type == election.MsgHeartbeat {
			if who, ok := m.beater[msg.Term]; ok && who != p.id {
				m.fail("both %s and %s sent heartbeats in term %d", who, p.id, msg.Term)
			}
			m.beater[msg.Term] = p.id
		}
	}
	for _, s := range rd.States {
		if s.Role != election.Master {
			continue
		}
		if who, ok := m.termMaster[s.Term]; ok && who != p.id {
			m.fail("both %s and %s became master of term %d", who, p.id, s.Term)
		}
		m.termMaster[s.Term] = p.id
		if s.Master != p.id || s.LeaseUntil <= s.At {
			m.fail("%s published master state %+v", p.id, s)
		}
	}
}

// check is the invariant run after every action.
func (m *rapidModel) check(*rapid.T) {
	c := m.c
	var acting []string
	for _, id := range c.ids {
		p := c.peers[id]
		if p.node != nil {
			term := p.node.Term()
			if term < m.maxTerm[id] {
				m.fail("%s went back from term %d to %d", id, m.maxTerm[id], term)
			}
			m.maxTerm[id] = term
			if hs := p.node.HardState(); hs != p.disk {
				m.fail("%s holds hard state %+v that Ready never handed out (disk %+v)", id, hs, p.disk)
			}
		}
		live := p.node != nil && p.node.IsMaster(c.local(id))
		if live || p.leaseEnd > c.now {
			acting = append(acting, id)
		}
	}
	if len(acting) > 1 {
		var b strings.Builder
		for _, id := range acting {
			p := c.peers[id]
			if p.node != nil && p.node.IsMaster(c.local(id)) {
				s := p.node.State()
				fmt.Fprintf(&b, " %s(term %d, lease to real %v)", id, s.Term, s.LeaseUntil-p.offset)
			} else {
				fmt.Fprintf(&b, " %s(crashed as master; its drivers' lease runs to real %v)", id, p.leaseEnd)
			}
		}
		m.fail("more than one master at once:%s", b.String())
	}
}

// live lists the running nodes, down the crashed ones.
func (m *rapidModel) live() []string {
	var ids []string
	for _, id := range m.c.ids {
		if m.c.peers[id].node != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (m *rapidModel) down() []string {
	var ids []string
	for _, id := range m.c.ids {
		if m.c.peers[id].node == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// pick draws one in-flight message index; the caller has checked there is
// one.
func (m *rapidModel) pick(t *rapid.T) int {
	return rapid.IntRange(0, len(m.c.inflight)-1).Draw(t, "msg")
}

// maxEvents bounds the timer events of one action; a core whose deadline
// does not move after a tick would otherwise hang the test.
const maxEvents = 100000

// commandErrors are the errors a local command may return.
var commandErrors = []error{election.ErrNotMaster, election.ErrNoTarget, election.ErrBadTarget, election.ErrUnknownNode}

// actions are what rapid draws from; each one is a fault, a command or a
// stretch of time, and "" is the invariant.
func (m *rapidModel) actions() map[string]func(*rapid.T) {
	c := m.c
	var links [][2]string
	for _, a := range c.ids {
		for _, b := range c.ids {
			if a != b {
				links = append(links, [2]string{a, b})
			}
		}
	}
	step := func(t *rapid.T) time.Duration {
		ms := int(m.timing.ElectionMin * 6 / 5 / time.Millisecond)
		return time.Duration(rapid.IntRange(1, ms).Draw(t, "ms")) * time.Millisecond
	}
	return map[string]func(*rapid.T){
		"": m.check,
		// advance lets real time pass, firing timers in order on every
		// running node except one drawn to be paused; nothing is delivered.
		"advance": func(t *rapid.T) {
			d := step(t)
			paused := rapid.IntRange(-1, len(c.ids)-1).Draw(t, "paused")
			m.note("advance %v paused=%d", d, paused)
			end := c.now + d
			for ev := 0; ; ev++ {
				if ev > maxEvents {
					m.fail("timers do not move on: a core keeps asking for a tick at %v", c.now)
				}
				next, found := time.Duration(0), false
				for i, id := range c.ids {
					p := c.peers[id]
					if i == paused || p.node == nil {
						continue
					}
					if dl := p.node.NextDeadline() - p.offset; !found || dl < next {
						next, found = dl, true
					}
				}
				if !found || next > end {
					break
				}
				c.now = max(c.now, next)
				for i, id := range c.ids {
					p := c.peers[id]
					if i != paused && p.node != nil && p.node.NextDeadline() <= c.local(id) {
						c.tick(id)
					}
				}
				// Check at every instant, since leases can overlap inside a
				// longer advance.
				m.check(t)
			}
			c.now = end
		},
		// run is a stretch of instant delivery, except on the links a drawn
		// partition cuts: none, all of one node's links, only its outgoing
		// or only its incoming ones, or a single link in one or both
		// directions. Messages on a cut link are dropped, or held in flight
		// for a later action to deliver, which is how long delays arise.
		"run": func(t *rapid.T) {
			d := step(t)
			kind := rapid.IntRange(0, 5).Draw(t, "partition")
			x := c.ids[rapid.IntRange(0, len(c.ids)-1).Draw(t, "x")]
			y := c.ids[rapid.IntRange(0, len(c.ids)-1).Draw(t, "y")]
			hold := rapid.Bool().Draw(t, "hold")
			var cuts []string
			for _, l := range links {
				from, to := l[0], l[1]
				var cut bool
				switch kind {
				case 1:
					cut = from == x || to == x
				case 2:
					cut = from == x
				case 3:
					cut = to == x
				case 4:
					cut = (from == x && to == y) || (from == y && to == x)
				case 5:
					cut = from == x && to == y
				}
				if cut {
					c.blocked[l] = true
					cuts = append(cuts, from+">"+to)
				}
			}
			c.hold = hold
			m.note("run %v cut=%v hold=%v", d, cuts, hold)
			end := c.now + d
			for ev := 0; c.now < end; ev++ {
				if ev > maxEvents {
					m.fail("timers do not move on: a core keeps asking for a tick at %v", c.now)
				}
				c.flush()
				m.check(t)
				next, ok := c.nextDeadline()
				if !ok || next > end {
					break
				}
				c.now = max(c.now, next)
				c.due()
				m.check(t)
			}
			c.now = end
			c.heal()
			c.hold = false
		},
		"deliver": func(t *rapid.T) {
			if len(c.inflight) == 0 {
				t.Skip("nothing in flight")
			}
			i := m.pick(t)
			msg := c.inflight[i]
			c.inflight = slices.Delete(c.inflight, i, i+1)
			m.note("deliver %s", election.Describe(msg))
			c.stepTo(msg.To, msg)
		},
		"drop": func(t *rapid.T) {
			if len(c.inflight) == 0 {
				t.Skip("nothing in flight")
			}
			i := m.pick(t)
			m.note("drop %s", election.Describe(c.inflight[i]))
			c.inflight = slices.Delete(c.inflight, i, i+1)
		},
		// duplicate delivers a copy and leaves the original in flight.
		"duplicate": func(t *rapid.T) {
			if len(c.inflight) == 0 {
				t.Skip("nothing in flight")
			}
			msg := c.inflight[m.pick(t)]
			m.note("duplicate %s", election.Describe(msg))
			c.stepTo(msg.To, msg)
		},
		"crash": func(t *rapid.T) {
			live := m.live()
			if len(live) == 0 {
				t.Skip("all down")
			}
			id := rapid.SampledFrom(live).Draw(t, "node")
			m.note("crash %s", id)
			c.crash(id)
		},
		"restart": func(t *rapid.T) {
			down := m.down()
			if len(down) == 0 {
				t.Skip("none down")
			}
			id := rapid.SampledFrom(down).Draw(t, "node")
			// A machine reboot also restarts the monotonic clock, so the
			// node's clock may come back with a different offset.
			if rapid.Bool().Draw(t, "reboot") {
				c.peers[id].offset = time.Duration(rapid.IntRange(0, 10000).Draw(t, "offset_ms")) * time.Millisecond
			}
			m.note("restart %s from %+v, clock offset %v", id, c.peers[id].disk, c.peers[id].offset)
			c.restart(id)
		},
		"transfer": func(t *rapid.T) {
			live := m.live()
			if len(live) == 0 {
				t.Skip("all down")
			}
			id := rapid.SampledFrom(live).Draw(t, "node")
			target := rapid.SampledFrom(append([]string{""}, c.ids...)).Draw(t, "target")
			err := c.node(id).Transfer(c.local(id), target)
			c.collect(c.peers[id])
			m.note("transfer %s -> %q: %v", id, target, err)
			if err != nil && !slices.ContainsFunc(commandErrors, func(e error) bool { return errors.Is(err, e) }) {
				m.fail("Transfer returned an undocumented error: %v", err)
			}
		},
		"maintenance": func(t *rapid.T) {
			live := m.live()
			if len(live) == 0 {
				t.Skip("all down")
			}
			id := rapid.SampledFrom(live).Draw(t, "node")
			on := rapid.Bool().Draw(t, "on")
			m.note("maintenance %s %v", id, on)
			c.node(id).SetMaintenance(c.local(id), on)
			c.collect(c.peers[id])
		},
		"health": func(t *rapid.T) {
			live := m.live()
			if len(live) == 0 {
				t.Skip("all down")
			}
			id := rapid.SampledFrom(live).Draw(t, "node")
			ok := rapid.Bool().Draw(t, "ok")
			m.note("healthy %s %v", id, ok)
			c.node(id).SetHealthy(c.local(id), ok)
			c.collect(c.peers[id])
		},
		"demoteDone": func(t *rapid.T) {
			live := m.live()
			if len(live) == 0 {
				t.Skip("all down")
			}
			id := rapid.SampledFrom(live).Draw(t, "node")
			m.note("demote done %s", id)
			c.node(id).DemoteDone(c.local(id))
			c.collect(c.peers[id])
		},
	}
}
