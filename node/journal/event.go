package journal

import (
	"time"

	"github.com/clustd/clustd/driverproto"
)

// Event kinds, the "kind" key of an event.
const (
	KindStart              = "start"
	KindStop               = "stop"
	KindRole               = "role"
	KindElection           = "election"
	KindMemberLost         = "member_lost"
	KindMemberBack         = "member_back"
	KindDriverConnected    = "driver_connected"
	KindDriverDisconnected = "driver_disconnected"
	KindDriverHealth       = "driver_health"
	KindMaintenance        = "maintenance"
	KindTransfer           = "transfer"
	KindReload             = "reload"
	KindDemoteOverrun      = "demote_overrun"
	KindFailover           = driverproto.EventFailover
)

// Event is one entry of the journal. The JSON keys are a stable interface:
// GET /v1/events and clustd events --json print them as they are.
type Event struct {
	// Seq numbers the events of one node's journal, from 1, without gaps
	// except where events were dropped (see Journal.Dropped). A failover
	// record received from a peer gets the next number here too.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Node is the node the event happened on; for a failover record, the
	// new master, which made it.
	Node string `json:"node"`
	Term uint64 `json:"term,omitempty"`
	// Role and Master: a role change's new role and the master it knows.
	Role   string `json:"role,omitempty"`
	Master string `json:"master,omitempty"`
	// RoleName is the role (roles[].name) an election, role change,
	// transfer or driver event concerns, in a cluster configured with
	// roles:; absent otherwise. A failover record is of the first role.
	RoleName string `json:"role_name,omitempty"`
	// Peer is the member lost or back; Driver the driver concerned.
	Peer   string `json:"peer,omitempty"`
	Driver string `json:"driver,omitempty"`
	// OK is a driver's health, or whether maintenance is on.
	OK *bool `json:"ok,omitempty"`
	// Detail says more, for people.
	Detail string `json:"detail,omitempty"`
	// The failover record's fields, for kind "failover".
	*driverproto.Failover
}

// IsFailover reports whether e is a failover record.
func (e *Event) IsFailover() bool { return e.Kind == KindFailover && e.Failover != nil }

// Bool returns a pointer to b, for Event.OK.
func Bool(b bool) *bool { return &b }
