package driverproto

import "time"

// EventFailover is the kind of an event that carries a failover record.
const EventFailover = "failover"

// Causes of a failover, the values of Failover.Cause.
const (
	// CauseMasterLost: the master stopped answering (crashed, killed, its
	// machine or link down) and its lease ran out.
	CauseMasterLost = "master_lost"
	// CauseIsolated: the master was running but cut off from a majority,
	// so its lease ran out.
	CauseIsolated = "isolated"
	// CausePaused: the master's process or machine stopped running (a
	// stopped process, a frozen VM) past the end of its lease.
	CausePaused = "paused"
	// CauseTransfer: an operator or a stopping daemon handed the role over.
	CauseTransfer = "transfer"
	// CauseMaintenance: the master was put in maintenance and handed over.
	CauseMaintenance = "maintenance"
	// CauseCheckFailed: a required driver of the master reported it
	// unhealthy, or went away, and the master handed over.
	CauseCheckFailed = "check_failed"
	// CausePreempted: a node of higher priority took the role back.
	CausePreempted = "preempted"
)

// Causes lists every cause, in the order of the documentation.
var Causes = []string{CauseMasterLost, CauseIsolated, CausePaused, CauseTransfer, CauseMaintenance, CauseCheckFailed, CausePreempted}

// Failover is the record of one change of master, made by the new master
// and passed to every member. The term is the event's (the new master's);
// times are wall-clock instants, measured on the node that knew them.
type Failover struct {
	// From is the previous master and To the new one.
	From string `json:"from"`
	To   string `json:"to"`
	// PrevTerm is the term in which From was master.
	PrevTerm uint64 `json:"prev_term,omitempty"`
	// Cause is one of Causes.
	Cause string `json:"cause"`
	// NoMasterMS is how long no node was master: from the end of the old
	// master's lease (or its stepping down, on a hand-over) until To was
	// elected.
	NoMasterMS int64 `json:"no_master_ms"`
	// LastContact is when To last heard from From.
	LastContact *time.Time `json:"last_contact,omitempty"`
	// LeaseExpired is when From's lease ran out, or when it stepped down on
	// a hand-over.
	LeaseExpired *time.Time `json:"lease_expired,omitempty"`
	// Elected is when To became master.
	Elected time.Time `json:"elected"`
	// Promoted is when every driver connected to To had acknowledged that
	// it is master; absent when no driver was connected.
	Promoted *time.Time `json:"promoted,omitempty"`
	// Rev counts revisions: the new master revises its record when the old
	// one later reports why it lost the role. The highest wins.
	Rev int `json:"rev,omitempty"`
}
