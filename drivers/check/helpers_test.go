package check

import (
	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

func masterState(master bool) driverclient.State {
	s := driverclient.State{Node: "a", IsMaster: master, Role: driverproto.RoleFollower, Term: 1}
	if master {
		s.Role = driverproto.RoleMaster
	}
	return s
}
