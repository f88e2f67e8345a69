package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
)

// clustdBin is the clustd executable that TestMain builds once for every test.
var clustdBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests is TestMain's body, separate so that its deferred cleanup runs
// before os.Exit.
func runTests(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "clustd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	clustdBin = filepath.Join(dir, "clustd")
	build := exec.Command("go", "build", "-o", clustdBin, "./cmd/clustd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building clustd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot asks the go command where go.mod is, so that the tests work
// from any working directory inside the module.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// Timing profiles accepted by clustd init. The fast one keeps tests short;
// the default one leaves more slack on a loaded machine, so tests whose
// assertions depend on nobody timing out by accident use it.
const (
	profileFast    = "fast"
	profileDefault = "default"
)

// pollEvery is how often waitFor and the pollers look again.
const pollEvery = 20 * time.Millisecond

// The tests reserve ports between portLow and portHigh: below Linux's
// ephemeral range (32768 and up by default), so that the kernel does not
// hand one of them to some outgoing connection between the reservation and
// the daemon's bind.
const (
	portLow  = 20000
	portHigh = 32000
)

// cluster is a set of clustd processes sharing one configuration written by
// clustd init, all on 127.0.0.1.
type cluster struct {
	t        *testing.T
	dir      string
	ids      []string
	peerAddr []string
	httpAddr []string
	cfgPath  []string
	client   *http.Client

	reserved []net.Listener // held until the first node starts
	nodes    []*proc        // nil for a node never started
}

// proc is one run of one node.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process has exited
	state  *os.ProcessState
	paused atomic.Bool // SIGSTOPped and not yet continued
}

// newCluster writes the configuration of an n-node cluster with clustd init
// and returns it without starting any node. Nodes are named a, b, c, …
func newCluster(t *testing.T, n int, profile string) *cluster {
	t.Helper()
	if n < 1 || n > 26 {
		t.Fatalf("newCluster: %d nodes", n)
	}
	c := &cluster{
		t:      t,
		dir:    t.TempDir(),
		client: &http.Client{Timeout: time.Second},
	}
	// Registered after t.TempDir, so it runs before the directory is
	// removed: the logs are still there to be dumped.
	t.Cleanup(c.cleanup)

	peerPorts, httpBase, lns := reservePorts(t, n)
	c.reserved = lns
	var members []string
	for i := range n {
		id := string(rune('a' + i))
		c.ids = append(c.ids, id)
		c.peerAddr = append(c.peerAddr, fmt.Sprintf("127.0.0.1:%d", peerPorts[i]))
		c.httpAddr = append(c.httpAddr, fmt.Sprintf("127.0.0.1:%d", httpBase+i))
		c.cfgPath = append(c.cfgPath, filepath.Join(c.dir, id+".yml"))
		members = append(members, id+"="+c.peerAddr[i])
	}
	c.nodes = make([]*proc, n)
	out, err := exec.Command(clustdBin, "init", "--dir", c.dir, "--members", strings.Join(members, ","),
		"--http-port", strconv.Itoa(httpBase), "--profile", profile).CombinedOutput()
	if err != nil {
		t.Fatalf("clustd init: %v\n%s", err, out)
	}
	return c
}

// reservePorts finds n free peer ports and a run of n consecutive free HTTP
// ports (clustd init numbers the local listeners up from one port). It keeps
// them bound, so that parallel tests cannot pick the same ones, until the
// cluster's first node starts.
func reservePorts(t *testing.T, n int) (peer []int, httpBase int, held []net.Listener) {
	t.Helper()
	listen := func(port int) net.Listener {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil
		}
		return ln
	}
	for try := 0; httpBase == 0; try++ {
		if try == 1000 {
			t.Fatal("reservePorts: no run of free ports found")
		}
		base := portLow + rand.IntN(portHigh-portLow-n)
		var run []net.Listener
		for k := range n {
			ln := listen(base + k)
			if ln == nil {
				break
			}
			run = append(run, ln)
		}
		if len(run) == n {
			httpBase, held = base, run
			break
		}
		for _, ln := range run {
			ln.Close()
		}
	}
	for try := 0; len(peer) < n; try++ {
		if try == 1000 {
			t.Fatal("reservePorts: no free peer port found")
		}
		port := portLow + rand.IntN(portHigh-portLow)
		if ln := listen(port); ln != nil {
			peer = append(peer, port)
			held = append(held, ln)
		}
	}
	return peer, httpBase, held
}

// releasePorts gives the reserved ports to the daemons. It frees all of them
// at once, before the first node starts: a reserved port still bound by the
// test would accept the other nodes' connections and never answer, stalling
// their handshakes until the handshake timeout.
func (c *cluster) releasePorts() {
	for _, ln := range c.reserved {
		ln.Close()
	}
	c.reserved = nil
}

// cleanup kills every node still running and, if the test failed, logs what
// each node wrote.
func (c *cluster) cleanup() {
	c.releasePorts()
	for i, p := range c.nodes {
		if p != nil && c.running(i) {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if c.t.Failed() {
		for i, id := range c.ids {
			c.t.Logf("----- log of node %s (%s) -----\n%s", id, c.logPath(i), c.logText(i))
		}
	}
}

func (c *cluster) logPath(i int) string { return filepath.Join(c.dir, c.ids[i]+".log") }

func (c *cluster) dataDir(i int) string { return filepath.Join(c.dir, c.ids[i]+".data") }

// index returns the position of the node named id, or -1.
func (c *cluster) index(id string) int {
	for i, x := range c.ids {
		if x == id {
			return i
		}
	}
	return -1
}

// start starts node i with its configuration file, appending its output to
// its log file, so that a restarted node's log tells the whole story.
func (c *cluster) start(i int) {
	c.t.Helper()
	if c.running(i) {
		c.t.Fatalf("start: node %s is already running", c.ids[i])
	}
	c.releasePorts()
	c.nodes[i] = c.spawn(c.logPath(i), "run", "--config", c.cfgPath[i])
}

// spawn starts the clustd binary with args, its output appended to logPath.
func (c *cluster) spawn(logPath string, args ...string) *proc {
	c.t.Helper()
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	// The child writes to the file directly, so its output survives a
	// kill -9 of the child and needs no copying goroutine here.
	defer f.Close()
	cmd := exec.Command(clustdBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting clustd %s: %v", strings.Join(args, " "), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p
}

// startAll starts every node.
func (c *cluster) startAll() {
	c.t.Helper()
	for i := range c.ids {
		c.start(i)
	}
}

// running reports whether node i was started and has not exited.
func (c *cluster) running(i int) bool {
	p := c.nodes[i]
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// paused reports whether node i is stopped by SIGSTOP.
func (c *cluster) paused(i int) bool {
	return c.nodes[i] != nil && c.nodes[i].paused.Load()
}

// signal sends sig to node i.
func (c *cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	if !c.running(i) {
		c.t.Fatalf("signal %v: node %s is not running", sig, c.ids[i])
	}
	switch sig {
	case syscall.SIGSTOP:
		c.nodes[i].paused.Store(true)
	case syscall.SIGCONT:
		c.nodes[i].paused.Store(false)
	}
	if err := c.nodes[i].cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to node %s: %v", sig, c.ids[i], err)
	}
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *cluster) kill(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGKILL)
	<-c.nodes[i].done
}

// waitExit waits up to timeout for node i to exit and returns how it ended.
func (c *cluster) waitExit(i int, timeout time.Duration) *os.ProcessState {
	c.t.Helper()
	select {
	case <-c.nodes[i].done:
		return c.nodes[i].state
	case <-time.After(timeout):
		c.t.Fatalf("node %s did not exit within %v", c.ids[i], timeout)
		return nil
	}
}

// status fetches GET /v1/status from node i. It touches no mutable state of
// the cluster, so pollers may call it from their own goroutines.
func (c *cluster) status(i int) (api.Status, error) {
	return c.statusCtx(context.Background(), i)
}

func (c *cluster) statusCtx(ctx context.Context, i int) (api.Status, error) {
	var st api.Status
	body, err := c.get(ctx, i, "/v1/status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("node %s: /v1/status: %w", c.ids[i], err)
	}
	return st, nil
}

// get fetches path from node i's local listener.
func (c *cluster) get(ctx context.Context, i int, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.httpAddr[i]+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s: GET %s: %s: %s", c.ids[i], path, resp.Status, body)
	}
	return body, nil
}

// metric returns the sum of every series of the metric name on node i whose
// labels include the given ones (name=value pairs).
func (c *cluster) metric(i int, name string, labels ...string) (float64, error) {
	body, err := c.get(context.Background(), i, "/metrics")
	if err != nil {
		return 0, err
	}
	return sumMetric(string(body), name, labels...)
}

// sumMetric parses the Prometheus text format just enough for the clustd_*
// series: name{k="v",…} value, one per line.
func sumMetric(text, name string, labels ...string) (float64, error) {
	want := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return 0, fmt.Errorf("metric label %q: want name=value", l)
		}
		want[k] = v
	}
	var sum float64
	found := false
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, rest, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		have := map[string]string{}
		for kv := range strings.SplitSeq(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				have[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += f
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no series %s%v in /metrics", name, labels)
	}
	return sum, nil
}

// mustMetric is metric for the test goroutine.
func (c *cluster) mustMetric(i int, name string, labels ...string) float64 {
	c.t.Helper()
	v, err := c.metric(i, name, labels...)
	if err != nil {
		c.t.Fatalf("node %s: %v", c.ids[i], err)
	}
	return v
}

// logText returns everything node i has written so far.
func (c *cluster) logText(i int) string {
	b, err := os.ReadFile(c.logPath(i))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	return string(b)
}

// logSize is the current length of node i's log, a mark to read from later.
func (c *cluster) logSize(i int) int64 {
	fi, err := os.Stat(c.logPath(i))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logLines returns node i's log lines written after offset from that
// contain every one of the substrings.
func (c *cluster) logLines(i int, from int64, substrings ...string) []string {
	text := c.logText(i)
	if from > int64(len(text)) {
		from = int64(len(text))
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text[from:]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		match := true
		for _, s := range substrings {
			match = match && strings.Contains(line, s)
		}
		if match {
			lines = append(lines, line)
		}
	}
	return lines
}

// waitFor polls cond every pollEvery until it holds, and fails the test if
// it does not within timeout. It returns how long it waited.
func (c *cluster) waitFor(timeout time.Duration, what string, cond func() bool) time.Duration {
	c.t.Helper()
	d, ok := poll(timeout, cond)
	if !ok {
		c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return d
}

// poll calls cond every pollEvery until it holds or timeout passes, and
// reports how long that took and whether cond held.
func poll(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(pollEvery)
	}
}

// master returns the node that every running, unpaused node names as master
// in the same term, provided that node itself reports the role with some
// lease left. ok is false when they do not all agree or one does not answer.
func (c *cluster) master() (i int, st api.Status, ok bool) {
	var live []int
	for i := range c.ids {
		if c.running(i) && !c.paused(i) {
			live = append(live, i)
		}
	}
	return c.masterAmong(live...)
}

// masterAmong is master restricted to the given nodes.
func (c *cluster) masterAmong(nodes ...int) (int, api.Status, bool) {
	if len(nodes) == 0 {
		return -1, api.Status{}, false
	}
	sts := map[int]api.Status{}
	var first api.Status
	for k, i := range nodes {
		st, err := c.status(i)
		if err != nil || st.Master == "" {
			return -1, api.Status{}, false
		}
		if k == 0 {
			first = st
		} else if st.Master != first.Master || st.Term != first.Term {
			return -1, api.Status{}, false
		}
		sts[i] = st
	}
	m := c.index(first.Master)
	st, answered := sts[m]
	if !answered || st.Role != "master" || st.LeaseMS <= 0 {
		return -1, api.Status{}, false
	}
	return m, st, true
}

// waitMaster waits for a master that the given nodes (all live ones when
// none are given) agree on, and returns it with the time that took.
func (c *cluster) waitMaster(timeout time.Duration, nodes ...int) (int, api.Status, time.Duration) {
	c.t.Helper()
	var (
		m  int
		st api.Status
		ok bool
	)
	d := c.waitFor(timeout, "a master all nodes agree on", func() bool {
		if len(nodes) == 0 {
			m, st, ok = c.master()
		} else {
			m, st, ok = c.masterAmong(nodes...)
		}
		return ok
	})
	return m, st, d
}

// others returns every node index except the given ones.
func (c *cluster) others(except ...int) []int {
	var out []int
	for i := range c.ids {
		skip := false
		for _, e := range except {
			skip = skip || i == e
		}
		if !skip {
			out = append(out, i)
		}
	}
	return out
}

// sample is one status response with the interval, on the test's monotonic
// clock, during which the daemon produced it.
type sample struct {
	node     int
	sent     time.Time
	received time.Time
	st       api.Status
}

// poller asks every node for its status every pollEvery and keeps every
// answer. Each node is polled by its own goroutine, so that a node that
// does not answer (paused, killed) slows down nobody else's polls; it just
// leaves no samples while it is silent.
type poller struct {
	c    *cluster
	stop chan struct{}
	done sync.WaitGroup
	mu   sync.Mutex
	all  []sample
}

func (c *cluster) startPoller() *poller {
	p := &poller{c: c, stop: make(chan struct{})}
	for i := range c.ids {
		p.done.Go(func() { p.run(i) })
	}
	c.t.Cleanup(func() { p.close() })
	return p
}

func (p *poller) run(i int) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		// The timeout only bounds how long a paused node holds its own
		// goroutine; an answer that slow would be useless anyway (see
		// checkNoOverlap).
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		sent := time.Now()
		st, err := p.c.statusCtx(ctx, i)
		received := time.Now()
		cancel()
		if err == nil {
			p.mu.Lock()
			p.all = append(p.all, sample{node: i, sent: sent, received: received, st: st})
			p.mu.Unlock()
		}
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// close stops the poller and returns every sample taken.
func (p *poller) close() []sample {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all
}

// editConfig replaces the one occurrence of old in node i's configuration
// file with new, to give one node a configuration the others do not share.
func (c *cluster) editConfig(i int, old, new string) {
	c.t.Helper()
	b, err := os.ReadFile(c.cfgPath[i])
	if err != nil {
		c.t.Fatal(err)
	}
	if n := strings.Count(string(b), old); n != 1 {
		c.t.Fatalf("editConfig: %q occurs %d times in %s:\n%s", old, n, c.cfgPath[i], b)
	}
	b = []byte(strings.Replace(string(b), old, new, 1))
	if err := os.WriteFile(c.cfgPath[i], b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// count returns how many of the samples kept so far satisfy f.
func (p *poller) count(f func(sample) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.all {
		if f(s) {
			n++
		}
	}
	return n
}
