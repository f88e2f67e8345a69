// Package drainlog reads the activity logs of drainsvc, the test service
// that takes time to stop, and finds the instants at which it ran on two
// nodes at once. It also builds drainsvc for tests.
package drainlog

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Run is one run of drainsvc, one process, as its log shows it.
type Run struct {
	Node string // whose log it is in
	PID  int
	Term string // CLUSTD_TERM at its start, "-" if none
	// Start is its first line; Last its last; Term its stop signal (zero
	// if none came). All are CLOCK_BOOTTIME instants.
	Start, Last, Stopped time.Duration
	// Exited says it exited by itself after its drain; otherwise it was
	// killed (or still runs), and was active until some moment before
	// Last plus one tick.
	Exited bool
}

// End returns the latest instant the run may have been active: Last for a
// run that exited, else Last plus tick, the gap after which it would have
// written again had it still run.
func (r Run) End(tick time.Duration) time.Duration {
	if r.Exited {
		return r.Last
	}
	return r.Last + tick
}

// String describes the run for test failures.
func (r Run) String() string {
	how := "killed"
	if r.Exited {
		how = "exited"
	}
	return fmt.Sprintf("%s pid %d term %s [%v, %v] %s", r.Node, r.PID, r.Term, r.Start, r.Last, how)
}

// Read reads the log of node at path. A missing file is no runs.
func Read(node, path string) ([]Run, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []*Run
	cur := map[int]*Run{} // by pid, the latest run
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			return nil, fmt.Errorf("%s:%d: %q: want KIND PID NS", path, n, sc.Text())
		}
		pid, err1 := strconv.Atoi(fs[1])
		ns, err2 := strconv.ParseInt(fs[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: %q: bad pid or time", path, n, sc.Text())
		}
		at := time.Duration(ns)
		r := cur[pid]
		// A start line begins a run, even of a pid seen before: pids are
		// reused.
		if r == nil || fs[0] == "start" {
			r = &Run{Node: node, PID: pid, Term: "-", Start: at}
			cur[pid] = r
			runs = append(runs, r)
		}
		r.Last = at
		switch fs[0] {
		case "start":
			if len(fs) > 3 {
				r.Term = fs[3]
			}
		case "term":
			r.Stopped = at
		case "exit":
			r.Exited = true
		case "alive":
		default:
			return nil, fmt.Errorf("%s:%d: unknown record %q", path, n, fs[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]Run, len(runs))
	for i, r := range runs {
		out[i] = *r
	}
	return out, nil
}

// Overlap is a time when runs on two nodes were both active.
type Overlap struct {
	A, B     Run
	From, To time.Duration
}

// Len returns how long the overlap lasted.
func (o Overlap) Len() time.Duration { return o.To - o.From }

// String describes the overlap.
func (o Overlap) String() string {
	return fmt.Sprintf("%v on two nodes: %s and %s", o.Len(), o.A, o.B)
}

// Overlaps returns every pair of runs on different nodes that were active
// at the same instant, counting a killed run as active for one tick after
// its last line.
func Overlaps(runs []Run, tick time.Duration) []Overlap {
	var out []Overlap
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.Node == b.Node {
				continue
			}
			from, to := max(a.Start, b.Start), min(a.End(tick), b.End(tick))
			if from < to {
				out = append(out, Overlap{A: a, B: b, From: from, To: to})
			}
		}
	}
	slices.SortFunc(out, func(x, y Overlap) int { return int(x.From - y.From) })
	return out
}

// Now reads CLOCK_BOOTTIME, the clock of the logs.
func Now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Build builds drainsvc once per test binary and returns its path. It is
// removed when the process exits only if the caller removes BuildDir; tests
// call Cleanup from TestMain or leave it to the temp directory's cleaning.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "drainsvc-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "drainsvc"), "github.com/clustd/clustd/internal/drainsvc").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building drainsvc: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "drainsvc")
}

// Cleanup removes what Build made.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}
