package election

import (
	"fmt"
	"time"
)

// SetPriorities changes the priorities of the members named in prio;
// the others keep theirs. Priorities only rank candidates and pick
// hand-over and preemption targets, and nodes that briefly disagree about
// them stay safe, so they may change while the node runs (a reload). An
// unknown id or a negative priority changes nothing and is an error.
func (n *Node) SetPriorities(now time.Duration, prio map[string]int) error {
	for id, p := range prio {
		if _, ok := n.index[id]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownNode, id)
		}
		if p < 0 {
			return fmt.Errorf("election: priority %d of %q: must not be negative", p, id)
		}
	}
	n.advance(now)
	for id, p := range prio {
		n.members[n.index[id]].Priority = p
	}
	n.advance(now) // a master may now be outranked: preemption is decided here
	n.publish()
	return nil
}

// SetPreempt turns preemption on or off and sets its hold-down.
func (n *Node) SetPreempt(now time.Duration, on bool, holdDown time.Duration) error {
	if holdDown < 0 || holdDown > 365*24*time.Hour {
		return fmt.Errorf("election: preemption hold-down %v: must be between 0 and a year", holdDown)
	}
	n.advance(now)
	n.preempt, n.holdDown = on, holdDown
	n.advance(now)
	n.publish()
	return nil
}
