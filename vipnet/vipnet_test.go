package vipnet

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var clustdBin string

func TestMain(m *testing.M) {
	MaybeResponder()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("VIPNET") == "" {
		fmt.Println("vipnet: SKIPPED: the floating-address rig runs with VIPNET=1 (make vip-test), as root")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "vip-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	clustdBin = filepath.Join(dir, "clustd")
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", clustdBin, "./cmd/clustd")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building clustd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func needRig(t *testing.T) {
	t.Helper()
	if os.Getenv("VIPNET") == "" {
		t.Skip("SKIPPED: set VIPNET=1 (make vip-test) to run the floating-address rig")
	}
	if err := Available(); err != nil {
		t.Skipf("SKIPPED: the floating-address rig cannot run here: %v", err)
	}
}

// Bounds of the assertions: generous, since the machine is shared. The
// figures themselves are logged, and measured properly by vip-bench.
const (
	neighBound  = time.Second
	outageBound = 15 * time.Second
)

func TestFaults(t *testing.T) {
	needRig(t)
	dir := t.TempDir()
	r, err := New(Config{Clustd: clustdBin, Profile: "fast", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Log(r.Describe())
	for _, f := range []Fault{Transfer, Kill, Stop, Isolate} {
		res, err := r.Apply(f)
		if err != nil {
			t.Fatalf("%s: %v (logs in %s)", f, err, dir)
		}
		t.Log(res)
		if res.Overlaps > 0 {
			t.Errorf("%s: the address was on two nodes at once (%d polls)", f, res.Overlaps)
		}
		if res.Interleaved > 0 {
			t.Errorf("%s: %d answers from the old master %s came after the first from %s", f, res.Interleaved, res.From, res.To)
		}
		if res.Outage <= 0 || res.Outage > outageBound {
			t.Errorf("%s: client-observed outage %v; want it measured and below %v", f, res.Outage, outageBound)
		}
		if res.Neigh < 0 || res.Neigh > neighBound {
			t.Errorf("%s: the client's neighbour entry named the new master %v after the promote; want within %v", f, res.Neigh, neighBound)
		}
	}
	if o := r.watch.overlapsSince(time.Time{}); len(o) > 0 {
		t.Errorf("over the whole run the address was on two nodes at once: %v", o)
	}
}

// TestRequiredCheckHandsOver makes the master's required --http check
// fail: the master must hand over within fall x interval and the hand-over
// gap, and stand again as a candidate once rise checks pass.
func TestRequiredCheckHandsOver(t *testing.T) {
	needRig(t)
	dir := t.TempDir()
	// The check's endpoint lives on the host side of each namespace's
	// loopback: a listener in every node namespace, all answering from
	// one switch per node.
	var failing [3]atomic.Bool
	const interval, fall, rise = 200 * time.Millisecond, 3, 2
	r, err := newWithChecks(t, dir, &failing, []string{"--interval", interval.String(), "--timeout", "150ms",
		"--fall", fmt.Sprint(fall), "--rise", fmt.Sprint(rise), "--flap-window", "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old, err := r.WaitMaster(-1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	failing[old].Store(true)
	nu, err := r.WaitMaster(old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	// The hand-over gap: the old master's drivers stop, then the target
	// is elected; a generous second on a shared machine.
	bound := fall*interval + interval + 2*time.Second
	t.Logf("failing check on %s: the address moved to %s after %v (bound %v)", r.ID(old), r.ID(nu), took, bound)
	if took > bound {
		t.Errorf("hand-over took %v; want within fall x interval + gap = %v", took, bound)
	}
	if o := r.watch.overlapsSince(t0); len(o) > 0 {
		t.Errorf("the address was on two nodes at once: %v", o)
	}
	st, err := r.status(old)
	if err != nil {
		t.Fatal(err)
	}
	if st["eligible"] != false {
		t.Errorf("%s while its required check fails: eligible=%v, want false", r.ID(old), st["eligible"])
	}
	failing[old].Store(false)
	deadline := time.Now().Add(rise*interval + 10*time.Second)
	for {
		st, err := r.status(old)
		if err == nil && st["eligible"] == true {
			t.Logf("%s eligible again %v after its check recovered", r.ID(old), time.Since(deadline.Add(-rise*interval-10*time.Second)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not eligible again within %v of its check passing: %v", r.ID(old), rise*interval+10*time.Second, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newWithChecks starts a rig whose nodes each have a required check
// against a listener of their own on 127.0.0.1:8080 in their namespace.
func newWithChecks(t *testing.T, dir string, failing *[3]atomic.Bool, args []string) (*Rig, error) {
	r := &checkRig{failing: failing}
	t.Cleanup(r.close)
	return newRigWithHook(Config{Clustd: clustdBin, Profile: "fast", Dir: dir, CheckURL: "http://127.0.0.1:8080/healthz", CheckArgs: args}, r.listen)
}

type checkRig struct {
	failing *[3]atomic.Bool
	servers []*http.Server
}

func (c *checkRig) listen(r *Rig) error {
	for i, n := range r.nodes {
		var ln net.Listener
		if err := inNetns(n.ns, func() error {
			var err error
			ln, err = net.Listen("tcp", "127.0.0.1:8080")
			return err
		}); err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if c.failing[i].Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})}
		c.servers = append(c.servers, srv)
		go srv.Serve(ln)
	}
	return nil
}

func (c *checkRig) close() {
	for _, s := range c.servers {
		s.Close()
	}
}

// TestLeftoverRemovedOnRestart gives a follower the address, as a driver
// killed while it held it would leave it, and restarts the follower's
// driver: the address must go.
func TestLeftoverRemovedOnRestart(t *testing.T) {
	needRig(t)
	dir := t.TempDir()
	r, err := New(Config{Clustd: clustdBin, Profile: "fast", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.WaitMaster(-1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := r.nodes[(m+1)%len(r.nodes)]
	f.vip.Process.Kill()
	f.vip.Process.Wait()
	// Leave the follower's link down while it holds the address, so that
	// the clients are not misled meanwhile; the overlap check ignores it.
	if err := r.linkDown(f); err != nil {
		t.Fatal(err)
	}
	r.watch.setIgnore(f.idx, true)
	if err := run("ip", "-n", f.ns, "addr", "add", VIP+"/24", "dev", ifName); err != nil {
		t.Fatal(err)
	}
	if !waitCond(5*time.Second, func() bool { return r.watch.heldNow(f.idx) }) {
		t.Fatal("the planted address never showed")
	}
	t0 := time.Now()
	if f.vip, err = r.start(f, "vip", r.cfg.Clustd, "driver", "vip", "--config", f.config,
		"--address", VIP+"/24", "--interface", ifName, "--log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	if err := r.waitGone(f, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("the restarted driver on follower %s removed the leftover address %v after its start", f.id, time.Since(t0))
	r.watch.setIgnore(f.idx, false)
	if err := r.linkUp(f); err != nil {
		t.Fatal(err)
	}
	if got := r.Master(); got != m {
		t.Errorf("the master changed from %d to %d", m, got)
	}
	log, _ := os.ReadFile(filepath.Join(dir, f.id+".vip.log"))
	if !strings.Contains(string(log), "removed leftover addresses") {
		t.Errorf("the driver's log does not say it removed the leftover address:\n%s", log)
	}
}

func waitCond(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
