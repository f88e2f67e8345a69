package api

import "time"

// Status is the body of GET /v1/status. The JSON keys are a stable interface:
// scripts are written against them.
type Status struct {
	Node string `json:"node"`
	// Role is driverproto.RoleMaster, RoleFollower or RoleCandidate: the
	// status API and the driver protocol name roles alike.
	Role string `json:"role"`
	Term uint64 `json:"term"`
	// Master is the master's id as this node knows it, or empty.
	Master string `json:"master"`
	// LeaseMS is the lease remaining, in milliseconds, on the master; 0
	// elsewhere.
	LeaseMS     int64 `json:"lease_ms"`
	Eligible    bool  `json:"eligible"`
	Maintenance bool  `json:"maintenance"`
	// MaintenanceReason and MaintenanceUntil (RFC 3339) describe the
	// maintenance in force; maintenance ends by itself at MaintenanceUntil.
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
	MaintenanceUntil  string `json:"maintenance_until,omitempty"`
	Healthy           bool   `json:"healthy"`
	Witness           bool   `json:"witness"`
	// Reason is why the role last changed.
	Reason string `json:"reason"`
	// SinceMS is how long ago, in milliseconds, the role last changed.
	SinceMS int64          `json:"since_ms"`
	Members []MemberStatus `json:"members"`
	// MissingDrivers names the required drivers (drivers.required) that
	// are not connected: while one is missing the node is not eligible.
	MissingDrivers []string `json:"missing_drivers,omitempty"`
	// Duplicates lists member ids that two live daemons claimed at once,
	// as this node saw it; absent when none.
	Duplicates []Duplicate `json:"duplicates,omitempty"`
	// SeedDrivers lists the connected 2018 (clustd-lib) drivers, which are
	// legacy (see SeedDriversWarning); the key is absent while there are
	// none.
	SeedDrivers []SeedDriverStatus `json:"seed_drivers,omitempty"`
	// ElectionTimeoutMS and StopBudgetMS are the cluster's
	// timing.election_timeout_min and timing.stop_budget; a new master's
	// drivers act about their sum, ExpectedFailoverMS, after the old
	// master went silent.
	ElectionTimeoutMS  int64 `json:"election_timeout_ms"`
	StopBudgetMS       int64 `json:"stop_budget_ms"`
	ExpectedFailoverMS int64 `json:"expected_failover_ms"`
	// DriversActing says this node's drivers were told to act as master:
	// false on a new master until the stop budget has passed.
	DriversActing bool `json:"drivers_acting"`
}

// Duplicate is a member id claimed by two live daemons at once: one was
// kept and the other refused. Two daemons started with one configuration
// could otherwise vote twice in one term.
type Duplicate struct {
	Member string `json:"member"`
	// Live is the address of the daemon kept; Refused that of the one
	// refused. On the refused daemon itself Live is empty (it does not
	// know) and Peer names the member that refused it.
	Live    string `json:"live,omitempty"`
	Refused string `json:"refused"`
	Peer    string `json:"peer,omitempty"`
	// Refusals counts the refused attempts; AgoMS is how long ago, in
	// milliseconds, the last one was.
	Refusals int   `json:"refusals"`
	AgoMS    int64 `json:"ago_ms"`
}

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Witness  bool   `json:"witness"`
	Priority int    `json:"priority"`
	// Self marks the node answering.
	Self bool `json:"self"`
	// Reachable: an authenticated session to it is up and it was heard from
	// within the election timeout.
	Reachable bool `json:"reachable"`
	// LastSeenMS is how long ago it was last heard from, -1 if never.
	LastSeenMS int64 `json:"last_seen_ms"`
	// RTTMS is the last measured round trip, in milliseconds, 0 if unknown.
	RTTMS float64 `json:"rtt_ms"`
}

// TransferRequest is the body of POST /v1/transfer.
type TransferRequest struct {
	// To names the target; empty picks the best eligible node.
	To string `json:"to,omitempty"`
}

// MaintenanceRequest is the body of POST /v1/maintenance.
type MaintenanceRequest struct {
	On bool `json:"on"`
	// For is how long maintenance lasts before it ends by itself, as a
	// duration such as "2h" (at most MaxMaintenance); empty means
	// DefaultMaintenance. Only with on.
	For string `json:"for,omitempty"`
	// Reason says why, for the status, the page and the log.
	Reason string `json:"reason,omitempty"`
}

// Bounds of a maintenance window. Maintenance always ends by itself: a
// node left in maintenance leaves the cluster one failure closer to having
// no master.
const (
	DefaultMaintenance = time.Hour
	MaxMaintenance     = 7 * 24 * time.Hour
	// MaxMaintenanceReason bounds the reason, in bytes.
	MaxMaintenanceReason = 200
)

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}
