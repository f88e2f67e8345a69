package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for
// user space whatever its internal HZ).
const clockTicks = 100

// ProcSample is one reading of a process's counters from /proc.
type ProcSample struct {
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

// ReadProc reads pid's counters.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
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

// LoadAvg returns the 1-, 5- and 15-minute load averages.
func LoadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	fs := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(fs); i++ {
		l[i], _ = strconv.ParseFloat(fs[i], 64)
	}
	return l
}

// CPUModel returns the first "model name" of /proc/cpuinfo.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// KernelRelease returns the running kernel's release.
func KernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// CPUTimes is the first line of /proc/stat: time every CPU of the machine
// spent in each state, in clock ticks.
type CPUTimes struct {
	Total, Idle, Steal int64
}

// ReadCPUTimes reads the machine's CPU times.
func ReadCPUTimes() CPUTimes {
	var t CPUTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fs := strings.Fields(string(line))
	if len(fs) < 9 || fs[0] != "cpu" {
		return t
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i := 1; i <= 8; i++ {
		v, _ := strconv.ParseInt(fs[i], 10, 64)
		t.Total += v
		switch i {
		case 4, 5:
			t.Idle += v
		case 8:
			t.Steal = v
		}
	}
	return t
}

// BusyPct returns how busy the machine was between a and b, in percent of
// all its cores, and how much of the time the hypervisor gave to others
// (steal).
func BusyPct(a, b CPUTimes) (busy, steal float64) {
	total := float64(b.Total - a.Total)
	if total <= 0 {
		return 0, 0
	}
	return round3(100 * (total - float64(b.Idle-a.Idle)) / total), round3(100 * float64(b.Steal-a.Steal) / total)
}

// CPUPressure reads the "some" total of /proc/pressure/cpu: microseconds
// during which at least one runnable task on the machine waited for a CPU.
// ok is false where the kernel has no pressure stall information.
func CPUPressure() (total time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	return parsePressure(b)
}

func parsePressure(b []byte) (time.Duration, bool) {
	for line := range strings.Lines(string(b)) {
		fs := strings.Fields(line)
		if len(fs) == 0 || fs[0] != "some" {
			continue
		}
		for _, f := range fs[1:] {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err == nil
			}
		}
	}
	return 0, false
}

// Pressure measures CPU pressure over an interval.
type Pressure struct {
	start time.Duration
	at    time.Time
	ok    bool
}

// StartPressure starts measuring.
func StartPressure() Pressure {
	t, ok := CPUPressure()
	return Pressure{start: t, at: time.Now(), ok: ok}
}

// Pct returns the share of the time since StartPressure during which some
// task waited for a CPU, in percent, or nil without pressure information.
func (p Pressure) Pct() *float64 {
	t, ok := CPUPressure()
	el := time.Since(p.at)
	if !p.ok || !ok || el <= 0 {
		return nil
	}
	v := round3(min(100, 100*float64(t-p.start)/float64(el)))
	return &v
}
