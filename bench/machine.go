package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// MachineWatch describes the machine a run measures on and watches how
// busy it is while the run lasts: other work on a shared machine delays
// the daemons, and the results say how much there was.
type MachineWatch struct {
	start time.Time
	cpu   cpuTimes
	psi   pressureWatch
}

// WatchMachine describes this machine as the run that started at start
// finds it, and starts watching it.
func WatchMachine(start time.Time) (Machine, *MachineWatch) {
	m := Machine{
		Cores:     runtime.NumCPU(),
		CPUModel:  cpuModel(),
		Kernel:    kernelRelease(),
		GoVersion: runtime.Version(),
		Date:      start.Format(time.RFC3339),
		LoadStart: loadAvg(),
	}
	return m, &MachineWatch{start: start, cpu: readCPUTimes(), psi: startPressure()}
}

// Finish adds to m how busy the machine was since WatchMachine, the load
// now and how long the run took.
func (w *MachineWatch) Finish(m *Machine) {
	m.BusyPct, m.StealPct = busyPct(w.cpu, readCPUTimes())
	m.PressurePct = w.psi.percent()
	m.LoadEnd = loadAvg()
	m.WallS = time.Since(w.start).Round(time.Second).Seconds()
}

// loadAvg returns the 1-, 5- and 15-minute load averages.
func loadAvg() [3]float64 {
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

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
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

// kernelRelease returns the running kernel's release.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// cpuTimes is the first line of /proc/stat: time every CPU of the machine
// spent in each state, in clock ticks.
type cpuTimes struct {
	Total, Idle, Steal int64
}

// readCPUTimes reads the machine's CPU times.
func readCPUTimes() cpuTimes {
	var t cpuTimes
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

// busyPct returns how busy the machine was between a and b, in percent of
// all its cores, and how much of the time the hypervisor gave to others
// (steal).
func busyPct(a, b cpuTimes) (busy, steal float64) {
	total := float64(b.Total - a.Total)
	if total <= 0 {
		return 0, 0
	}
	return round3(100 * (total - float64(b.Idle-a.Idle)) / total), round3(100 * float64(b.Steal-a.Steal) / total)
}

// readCPUPressure reads the "some" total of /proc/pressure/cpu: microseconds
// during which at least one runnable task on the machine waited for a CPU.
// ok is false where the kernel has no pressure stall information.
func readCPUPressure() (total time.Duration, ok bool) {
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

// pressureWatch measures CPU pressure over an interval.
type pressureWatch struct {
	start time.Duration
	at    time.Time
	ok    bool
}

// startPressure starts measuring.
func startPressure() pressureWatch {
	t, ok := readCPUPressure()
	return pressureWatch{start: t, at: time.Now(), ok: ok}
}

// percent returns the share of the time since startPressure during which some
// task waited for a CPU, in percent, or nil without pressure information.
func (p pressureWatch) percent() *float64 {
	t, ok := readCPUPressure()
	el := time.Since(p.at)
	if !p.ok || !ok || el <= 0 {
		return nil
	}
	v := round3(min(100, 100*float64(t-p.start)/float64(el)))
	return &v
}
