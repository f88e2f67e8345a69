package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for
// user space whatever its internal HZ).
const clockTicks = 100

// procSample is one reading of a process's counters from /proc.
type procSample struct {
	// CPUTicks is user plus system time, in clock ticks (1/100 s), of
	// every thread the process has had.
	CPUTicks int64
	// RSSKB and HWMKB are the resident set now and at its peak;
	// AnonKB and FileKB split RSSKB into private memory and pages of
	// mapped files (the executable, shared by every daemon started from
	// it); PSSKB is the proportional set size, shared pages divided
	// among their users (0 if smaps_rollup is unreadable).
	RSSKB, HWMKB   int64
	AnonKB, FileKB int64
	PSSKB          int64
	Threads        int64
	// ReadBytes and WriteBytes are rchar and wchar of /proc/PID/io: bytes
	// passed to read-like and write-like system calls, sockets and files
	// alike.
	ReadBytes, WriteBytes int64
	// CtxSwitches sums voluntary and involuntary context switches over the
	// threads alive now: close to the number of times the process woke up.
	CtxSwitches int64
}

// readProc reads pid's counters.
func readProc(pid int) (procSample, error) {
	var s procSample
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, err
	}
	if s.CPUTicks, err = parseStatCPU(stat); err != nil {
		return s, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	f := parseKeyValues(status, ':')
	s.RSSKB, s.HWMKB, s.Threads = f["VmRSS"], f["VmHWM"], f["Threads"]
	s.AnonKB, s.FileKB = f["RssAnon"], f["RssFile"]
	if b, err := os.ReadFile(filepath.Join(dir, "smaps_rollup")); err == nil {
		s.PSSKB = parseKeyValues(b, ':')["Pss"]
	}
	io, err := os.ReadFile(filepath.Join(dir, "io"))
	if err != nil {
		return s, err
	}
	f = parseKeyValues(io, ':')
	s.ReadBytes, s.WriteBytes = f["rchar"], f["wchar"]
	tasks, err := filepath.Glob(filepath.Join(dir, "task", "*", "status"))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread is gone
		}
		f := parseKeyValues(b, ':')
		s.CtxSwitches += f["voluntary_ctxt_switches"] + f["nonvoluntary_ctxt_switches"]
	}
	return s, nil
}

// parseStatCPU returns utime + stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces, so the
// fields are counted from the last closing parenthesis.
func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields", len(fields)+2)
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	s, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime or stime")
	}
	return u + s, nil
}

// parseKeyValues reads "key: number [unit]" lines; other lines are skipped.
func parseKeyValues(b []byte, sep byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), string(sep))
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
			out[strings.TrimSpace(k)] = n
		}
	}
	return out
}
