// Package common holds what the built-in clustd drivers share: the
// environment they give to commands, process groups that are stopped as a
// whole, line-by-line logging of a command's output, and health reports
// that reach the daemon only when they change.
package common

import (
	"strconv"
	"sync"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

// Environment variables the drivers set for the commands they run.
const (
	// EnvRole is master, follower or candidate.
	EnvRole = "CLUSTD_ROLE"
	// EnvTerm is the term, the fencing token downstream systems may check.
	EnvTerm = "CLUSTD_TERM"
	// EnvMaster is the id of the master as this node knows it, or empty.
	EnvMaster = "CLUSTD_MASTER"
	// EnvNode is the id of this node.
	EnvNode = "CLUSTD_NODE"
	// EnvReason says why the state changed, for the command's logs.
	EnvReason = "CLUSTD_REASON"
	// EnvRoleName names the role the state is of (roles[].name; "master"
	// in a cluster without roles:).
	EnvRoleName = "CLUSTD_ROLE_NAME"
	// EnvLeaseFile is the file where `clustd driver exec` keeps the
	// command's lease (driverclient.ReadLeaseFile reads it): a command that
	// must never act beside another master checks it before each action.
	EnvLeaseFile = "CLUSTD_LEASE_FILE"
)

// Role is the role a command is told about: master exactly when s.IsMaster,
// whatever s.Role says. A demote the library made up itself when the lease
// ran out may still carry the daemon's last role, and a command must never
// be told it is master when it must stop acting as one.
func Role(s driverclient.State) string {
	if s.IsMaster {
		return driverproto.RoleMaster
	}
	if s.Role == driverproto.RoleCandidate {
		return driverproto.RoleCandidate
	}
	return driverproto.RoleFollower
}

// Env returns base followed by the CLUSTD_* variables for s. Later entries
// win in os/exec, so an inherited CLUSTD_ROLE cannot mislead the command.
func Env(base []string, s driverclient.State) []string {
	env := make([]string, 0, len(base)+6)
	env = append(env, base...)
	env = append(env,
		EnvRole+"="+Role(s),
		EnvTerm+"="+strconv.FormatUint(s.Term, 10),
		EnvMaster+"="+s.Master,
		EnvNode+"="+s.Node,
		EnvReason+"="+s.Reason,
	)
	if s.RoleName != "" {
		env = append(env, EnvRoleName+"="+s.RoleName)
	}
	return env
}

// Health forwards health reports to a setter, such as
// driverclient.Client.SetHealth, only when they change, so that a driver
// may report after every action without flooding the daemon's log.
type Health struct {
	mu     sync.Mutex
	set    func(ok bool, reason string)
	ok     bool
	reason string
}

// NewHealth returns a Health that starts out healthy, as the daemon counts
// a driver that has not reported yet. A nil set makes reports no-ops.
func NewHealth(set func(ok bool, reason string)) *Health {
	return &Health{set: set, ok: true}
}

// Set reports ok and reason if they differ from the last report. The
// reason of a healthy report is dropped: only a failure needs explaining.
func (h *Health) Set(ok bool, reason string) {
	if ok {
		reason = ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ok == ok && h.reason == reason {
		return
	}
	h.ok, h.reason = ok, reason
	// Forwarded under the lock so that reports arrive in the order made.
	if h.set != nil {
		h.set(ok, reason)
	}
}

// Get returns the last report.
func (h *Health) Get() (ok bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.reason
}
