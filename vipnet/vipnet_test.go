package vipnet

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/clustd/clustd/internal/netnsutil"
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
		if err := netnsutil.Run(n.ns, func() error {
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

// TestIPv6NeighbourFollows checks the unsolicited neighbour advertisements:
// a client talking to the IPv6 address has a neighbour entry for it, and
// after a transfer that entry must name the new master's MAC at once,
// not after the seconds of unreachability detection it would take alone.
func TestIPv6NeighbourFollows(t *testing.T) {
	needRig(t)
	dir := t.TempDir()
	r, err := New(Config{Clustd: clustdBin, Profile: "fast", Dir: dir, IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.WaitMaster(-1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var conn net.PacketConn
	if err := netnsutil.Run(r.cl, func() error {
		var err error
		conn, err = net.ListenPacket("udp6", "[::]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(VIP6), Port: ProbePort}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			conn.WriteTo([]byte("12345678"), dst)
			select {
			case <-stop:
				return
			case <-time.After(ProbeEvery):
			}
		}
	}()
	// A handle of our own: a netlink handle is not safe for concurrent
	// use, and the rig's watcher polls with its own.
	h, err := handleAt(r.cl)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mac6 := func() string {
		ns, err := h.NeighList(r.watch.clLink, netlink.FAMILY_V6)
		if err != nil {
			return ""
		}
		for _, e := range ns {
			if e.IP.Equal(net.ParseIP(VIP6)) && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 {
				return e.HardwareAddr.String()
			}
		}
		return ""
	}
	if !waitCond(10*time.Second, func() bool { return mac6() == r.nodes[m].mac }) {
		t.Fatalf("the client never resolved %s to the master %s's MAC (has %q)", VIP6, r.ID(m), mac6())
	}
	// Watch the entry from before the transfer.
	type change struct {
		at  time.Time
		mac string
	}
	var mu sync.Mutex
	var changes []change
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		last := ""
		for {
			if v := mac6(); v != last {
				last = v
				mu.Lock()
				changes = append(changes, change{time.Now(), v})
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(pollEvery):
			}
		}
	}()
	res, err := r.Apply(Transfer)
	if err != nil {
		t.Fatal(err)
	}
	nu := -1
	for i, n := range r.nodes {
		if n.id == res.To {
			nu = i
		}
	}
	promote := res.At.Add(res.Promote)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		var at time.Time
		for _, c := range changes {
			if c.mac == r.nodes[nu].mac {
				at = c.at
			}
		}
		mu.Unlock()
		if !at.IsZero() {
			d := at.Sub(promote)
			t.Logf("IPv6: the client's entry for %s named the new master %s %v after the promote", VIP6, res.To, d)
			if d > neighBound {
				log, _ := os.ReadFile(filepath.Join(dir, res.To+".vip.log"))
				t.Errorf("IPv6 neighbour entry followed %v after the promote; want within %v; %s's driver log:\n%s", d, neighBound, res.To, log)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client's entry for %s never named the new master %s: %q", VIP6, res.To, mac6())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMissingCapabilityIsNamed runs clustd driver vip without
// CAP_NET_ADMIN, then without CAP_NET_RAW: each time it must refuse to
// start and name what is missing.
func TestMissingCapabilityIsNamed(t *testing.T) {
	needRig(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("SKIPPED: setpriv is not installed (apt-get install util-linux)")
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ drop, want, not string }{
		{"-net_admin", "CAP_NET_ADMIN", "CAP_NET_RAW"},
		{"-net_raw", "CAP_NET_RAW", "CAP_NET_ADMIN"},
	} {
		cmd := exec.Command(setpriv, "--bounding-set", c.drop, "--inh-caps", "-all", "--",
			clustdBin, "driver", "vip", "--secret-file", secret, "--addr", "127.0.0.1:1", "--address", "10.78.0.100/24", "--interface", "lo")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("without %s: the driver started:\n%s", c.want, out)
			continue
		}
		if !strings.Contains(string(out), "missing "+c.want) || strings.Contains(string(out), "missing "+c.not) {
			t.Errorf("without %s: %s; want it to name %s only", c.want, out, c.want)
		}
	}
}

// TestFlapDampingAndMaintenanceOff makes a node lose the master role to
// its own check twice: it must stay ineligible although the check passes
// again, until `clustd maintenance off` clears the damping.
func TestFlapDampingAndMaintenanceOff(t *testing.T) {
	needRig(t)
	dir := t.TempDir()
	var failing [3]atomic.Bool
	const interval = 100 * time.Millisecond
	r, err := newWithChecks(t, dir, &failing, []string{"--interval", interval.String(), "--timeout", "80ms",
		"--fall", "2", "--rise", "2", "--flap-window", "10m"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := r.WaitMaster(-1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	eligible := func(i int) bool {
		st, err := r.status(i)
		return err == nil && st["eligible"] == true
	}
	admin := func(on int, args ...string) {
		t.Helper()
		n := r.nodes[on]
		full := append([]string{"netns", "exec", n.ns, r.cfg.Clustd}, args...)
		full = append(full[:5], append([]string{"--config", n.config}, full[5:]...)...)
		if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
			t.Fatalf("clustd %v: %v: %s", args, err, out)
		}
	}
	for loss := 1; loss <= 2; loss++ {
		failing[a].Store(true)
		b, err := r.WaitMaster(a, 30*time.Second)
		if err != nil {
			t.Fatalf("loss %d: %v", loss, err)
		}
		failing[a].Store(false)
		if loss == 2 {
			break
		}
		if !waitCond(10*time.Second, func() bool { return eligible(a) }) {
			t.Fatalf("after one loss, %s not eligible again once its check passed", r.ID(a))
		}
		admin(b, "transfer", "--to", r.ID(a))
		if _, err := r.WaitMaster(b, 30*time.Second); err != nil || r.Master() != a {
			t.Fatalf("transfer back to %s: master %d, %v", r.ID(a), r.Master(), err)
		}
	}
	// The check passes again: rise x interval, and a generous margin more,
	// and the node must still be out.
	time.Sleep(2*interval + 2*time.Second)
	if eligible(a) {
		t.Fatalf("%s eligible again after losing the master role to its check twice within the flap window", r.ID(a))
	}
	log, _ := os.ReadFile(filepath.Join(dir, r.ID(a)+".check.log"))
	if !strings.Contains(string(log), "flap damping") {
		t.Errorf("the check's log does not say why the node stays out:\n%s", log)
	}
	admin(a, "maintenance", "off")
	if !waitCond(10*time.Second, func() bool { return eligible(a) }) {
		t.Fatalf("%s still ineligible 10s after clustd maintenance off", r.ID(a))
	}
}
