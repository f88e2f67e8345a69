//go:build !linux

package common

import (
	"errors"
	"syscall"
	"time"
)

// Cgroups is a cgroup v2 directory in which a driver would make a cgroup
// for every command; only Linux has them.
type Cgroups struct{}

// OpenCgroups fails: only Linux has cgroups.
func OpenCgroups(string) (*Cgroups, error) {
	return nil, errors.New("cgroups exist only on Linux")
}

// Dir returns "".
func (c *Cgroups) Dir() string { return "" }

// RemoveStale does nothing.
func (c *Cgroups) RemoveStale() ([]string, error) { return nil, nil }

func (c *Cgroups) create() (*cgroup, error) { return nil, errors.New("cgroups exist only on Linux") }

const cgroupPollMax = 10 * time.Millisecond

type cgroup struct{ dir string }

func (cg *cgroup) populated() (bool, error)    { return false, nil }
func (cg *cgroup) signal(syscall.Signal) error { return nil }
func (cg *cgroup) kill() error                 { return nil }
func (cg *cgroup) remove() error               { return nil }
func intoCgroup(*syscall.SysProcAttr, int)     {}
