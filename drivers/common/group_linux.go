package common

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// KillWithParent makes the kernel send SIGKILL to cmd's process when the
// driver dies, however it dies. Only that process gets it, not the rest of
// its group, and only on Linux; the kernel ties it to the thread that
// started the child, which the Go runtime keeps alive unless a goroutine
// exits while locked to it, which the drivers never do.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// groupAlive reports whether process group pgid has a member that is not a
// zombie. A zombie has stopped running and holds nothing but its process
// table entry; counting it would make a demote wait for ever wherever
// orphans are reparented to an init that does not reap them, as in many
// containers.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	d, err := os.Open("/proc")
	if err != nil {
		return true // cannot tell: assume the worst
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		state, pg, ok := procStat(name)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// procStat reads the state and process group of process pid from
// /proc/PID/stat. The command name in parentheses may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false // it exited meanwhile
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After ") ": state ppid pgrp …
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// intoCgroup makes the process start in the cgroup whose directory fd is
// open.
func intoCgroup(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD = true
	attr.CgroupFD = fd
}
