package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/internal/localcluster"
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

// testCluster is a localcluster.Cluster that fails its test instead of
// returning errors, with the addresses copied out for the tests to read.
type testCluster struct {
	t        *testing.T
	lc       *localcluster.Cluster
	dir      string
	ids      []string
	peerAddr []string
	httpAddr []string
	cfgPath  []string
}

// proc is one run of one process started by a test.
type proc = localcluster.Proc

// newCluster writes the configuration of an n-node cluster with clustd init
// and returns it without starting any node. Nodes are named a, b, c, …
func newCluster(t *testing.T, n int, profile string) *testCluster {
	t.Helper()
	if n < 1 || n > 26 {
		t.Fatalf("newCluster: %d nodes", n)
	}
	var ids []string
	for i := range n {
		ids = append(ids, string(rune('a'+i)))
	}
	lc, err := localcluster.New(t.Context(), localcluster.Options{Bin: clustdBin, Dir: t.TempDir(), IDs: ids, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	return adopt(t, lc)
}

// adopt binds lc to t. Its cleanup is registered after lc's directory was
// made with t.TempDir, so it runs before the directory is removed: the
// logs are still there to be dumped.
func adopt(t *testing.T, lc *localcluster.Cluster) *testCluster {
	c := &testCluster{t: t, lc: lc, dir: lc.Dir, ids: lc.IDs, peerAddr: lc.Peer, httpAddr: lc.HTTP, cfgPath: lc.Configs}
	t.Cleanup(c.cleanup)
	return c
}

// freePorts returns n consecutive free ports for a test that writes its
// own configuration.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := localcluster.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// cleanup kills every node still running and, if the test failed, logs what
// each node wrote.
func (c *testCluster) cleanup() {
	c.lc.Close()
	if c.t.Failed() {
		for i, id := range c.ids {
			c.t.Logf("----- log of node %s (%s) -----\n%s", id, c.logPath(i), c.logText(i))
		}
	}
}

func (c *testCluster) logPath(i int) string { return c.lc.LogPath(i) }

func (c *testCluster) dataDir(i int) string { return filepath.Join(c.dir, c.ids[i]+".data") }

// index returns the position of the node named id, or -1.
func (c *testCluster) index(id string) int { return c.lc.Index(id) }

// start starts node i with its configuration file, appending its output to
// its log file, so that a restarted node's log tells the whole story.
func (c *testCluster) start(i int) {
	c.t.Helper()
	if err := c.lc.Start(i); err != nil {
		c.t.Fatal(err)
	}
}

// startCommand starts cmd as node i's daemon.
func (c *testCluster) startCommand(i int, cmd *exec.Cmd) {
	c.t.Helper()
	if err := c.lc.StartCommand(i, cmd); err != nil {
		c.t.Fatal(err)
	}
}

// spawn starts the clustd binary with args, its output appended to logPath.
func (c *testCluster) spawn(logPath string, args ...string) *proc {
	c.t.Helper()
	p, err := localcluster.Start(exec.Command(clustdBin, args...), localcluster.StartOptions{Log: logPath})
	if err != nil {
		c.t.Fatalf("starting clustd %s: %v", strings.Join(args, " "), err)
	}
	return p
}

// startAll starts every node.
func (c *testCluster) startAll() {
	c.t.Helper()
	for i := range c.ids {
		c.start(i)
	}
}

// running reports whether node i was started and has not exited.
func (c *testCluster) running(i int) bool { return c.lc.Running(i) }

// proc is node i's current process, or nil.
func (c *testCluster) proc(i int) *proc { return c.lc.Proc(i) }

// signal sends sig to node i.
func (c *testCluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	if err := c.lc.Signal(i, sig); err != nil {
		c.t.Fatal(err)
	}
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *testCluster) kill(i int) {
	c.t.Helper()
	if _, err := c.lc.Kill(i); err != nil {
		c.t.Fatal(err)
	}
}

// waitExit waits up to timeout for node i to exit and returns how it ended.
func (c *testCluster) waitExit(i int, timeout time.Duration) *os.ProcessState {
	c.t.Helper()
	p := c.lc.Proc(i)
	if !p.Wait(timeout) {
		c.t.Fatalf("node %s did not exit within %v", c.ids[i], timeout)
	}
	return p.State()
}

// status fetches GET /v1/status from node i. It touches no mutable state of
// the cluster, so pollers may call it from their own goroutines.
func (c *testCluster) status(i int) (api.Status, error) {
	return c.statusCtx(context.Background(), i)
}

func (c *testCluster) statusCtx(ctx context.Context, i int) (api.Status, error) {
	st, err := c.lc.Status(ctx, i)
	if err != nil {
		return api.Status{}, err
	}
	return *st, nil
}

// get fetches path from node i's local listener.
func (c *testCluster) get(ctx context.Context, i int, path string) ([]byte, error) {
	return c.lc.Get(ctx, i, path)
}

// metric returns the sum of every series of the metric name on node i whose
// labels include the given ones (name=value pairs).
func (c *testCluster) metric(i int, name string, labels ...string) (float64, error) {
	var pairs []string
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return 0, fmt.Errorf("metric label %q: want name=value", l)
		}
		pairs = append(pairs, k, v)
	}
	samples, err := c.lc.Metrics(context.Background(), i)
	if err != nil {
		return 0, err
	}
	sum, ok := localcluster.Sum(samples, name, pairs...)
	if !ok {
		return 0, fmt.Errorf("no series %s%v in /metrics", name, labels)
	}
	return sum, nil
}

// mustMetric is metric for the test goroutine.
func (c *testCluster) mustMetric(i int, name string, labels ...string) float64 {
	c.t.Helper()
	v, err := c.metric(i, name, labels...)
	if err != nil {
		c.t.Fatalf("node %s: %v", c.ids[i], err)
	}
	return v
}

// logText returns everything node i has written so far.
func (c *testCluster) logText(i int) string {
	b, err := os.ReadFile(c.logPath(i))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	return string(b)
}

// logSize is the current length of node i's log, a mark to read from later.
func (c *testCluster) logSize(i int) int64 {
	fi, err := os.Stat(c.logPath(i))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logLines returns node i's log lines written after offset from that
// contain every one of the substrings.
func (c *testCluster) logLines(i int, from int64, substrings ...string) []string {
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
func (c *testCluster) waitFor(timeout time.Duration, what string, cond func() bool) time.Duration {
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
func (c *testCluster) master() (i int, st api.Status, ok bool) {
	return c.masterAmong()
}

// masterAmong is master restricted to the given nodes (all live ones when
// none are given).
func (c *testCluster) masterAmong(nodes ...int) (int, api.Status, bool) {
	m, st, ok := c.lc.Master(context.Background(), nodes...)
	if !ok {
		return -1, api.Status{}, false
	}
	return m, *st, true
}

// waitMaster waits for a master that the given nodes (all live ones when
// none are given) agree on, and returns it with the time that took.
func (c *testCluster) waitMaster(timeout time.Duration, nodes ...int) (int, api.Status, time.Duration) {
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
func (c *testCluster) others(except ...int) []int {
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
	c    *testCluster
	stop chan struct{}
	done sync.WaitGroup
	mu   sync.Mutex
	all  []sample
}

func (c *testCluster) startPoller() *poller {
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
func (c *testCluster) editConfig(i int, old, new string) {
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
