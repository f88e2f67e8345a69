//go:build !linux

package common

import (
	"errors"
	"os/exec"
	"syscall"
)

// KillWithParent does nothing here: only Linux can kill a child when its
// parent dies.
func KillWithParent(*exec.Cmd) {}

// groupAlive reports whether process group pgid has any member left.
// Without /proc a zombie member counts as alive.
func groupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}
