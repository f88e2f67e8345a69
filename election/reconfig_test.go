package election_test

import (
	"errors"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// TestLiveReconfig turns preemption on, then raises a priority, on running
// nodes, as a reload does: the master role follows each change.
func TestLiveReconfig(t *testing.T) {
	c := preemptCluster(t, false, 0)
	c.run(5 * time.Second)
	if m := c.soleMaster(); m != "a" {
		t.Fatalf("master %s, want a", m)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := c.node(id).SetPreempt(c.local(id), true, time.Second); err != nil {
			t.Fatal(err)
		}
		c.collect(c.peers[id])
	}
	if !c.runUntil(10*time.Second, func() bool { return c.hasMaster() && c.soleMaster() == "c" }) {
		t.Fatalf("preemption turned on live: master %v, want c (priority 10)", c.masters())
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := c.node(id).SetPriorities(c.local(id), map[string]int{"b": 20}); err != nil {
			t.Fatal(err)
		}
		c.collect(c.peers[id])
	}
	if !c.runUntil(10*time.Second, func() bool { return c.hasMaster() && c.soleMaster() == "b" }) {
		t.Fatalf("b raised to 20 live: master %v, want b", c.masters())
	}
	c.run(5 * time.Second)
	if m := c.soleMaster(); m != "b" {
		t.Fatalf("master moved on to %s, want b to stay", m)
	}

	// Bad input changes nothing: had b's own core taken priority 1, below
	// c's 10, preemption would hand the role to c.
	n := c.node("b")
	if err := n.SetPriorities(c.local("b"), map[string]int{"b": 1, "zz": 3}); !errors.Is(err, election.ErrUnknownNode) {
		t.Errorf("unknown id: %v", err)
	}
	if err := n.SetPriorities(c.local("b"), map[string]int{"b": -1}); err == nil {
		t.Error("negative priority accepted")
	}
	if err := n.SetPreempt(c.local("b"), true, -time.Second); err == nil {
		t.Error("negative hold-down accepted")
	}
	c.collect(c.peers["b"])
	c.run(5 * time.Second)
	if m := c.soleMaster(); m != "b" {
		t.Fatalf("master %s after refused changes, want b to stay", m)
	}
}
