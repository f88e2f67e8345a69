package bench

import (
	"context"
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
	"syscall"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/boottime"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// Ports are chosen between portLow and portHigh: below Linux's ephemeral
// range (32768 and up by default), so that the kernel does not hand one to
// an outgoing connection between the check and the daemon's bind, and
// apart from the 20000-32000 band the end-to-end tests draw from.
const (
	portLow  = 10000
	portHigh = 20000
)

// Cluster is a set of clustd daemons on 127.0.0.1, configured by
// `clustd init` and run as separate processes.
type Cluster struct {
	// Bin is the clustd executable; RunBin, when set, runs the daemons
	// instead (a profiling build), with RunArgs added.
	Bin     string
	RunBin  string
	RunArgs func(i int) []string
	// Env is added to the daemons' environment (for experiments such as
	// GOMAXPROCS=1); LogLevel, if set, is passed to clustd run.
	Env      []string
	LogLevel string
	Dir      string
	Profile  string
	Timing   election.Timing
	IDs      []string
	Peer     []string // peer addresses
	HTTP     []string // local listener addresses
	Configs  []string
	// DriversSecret authenticates drivers; Token authorises admin requests.
	DriversSecret []byte
	Token         string

	client *http.Client
	mu     sync.Mutex
	procs  []*Proc
}

// Proc is one run of one daemon.
type Proc struct {
	Cmd     *exec.Cmd
	Started time.Duration // boottime.Now()
	done    chan struct{}
	log     *os.File
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// NewCluster writes the configuration of an n-node cluster into dir with
// `clustd init` (nodes named n1, n2, …) and loads it back. No daemon runs
// yet. Each of timing, KEY=VALUE such as heartbeat=100ms, is added to the
// files' timing section, overriding the profile (for experiments).
func NewCluster(ctx context.Context, bin, dir string, n int, profile string, timing ...string) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	peerPorts, httpBase, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Bin: bin, Dir: dir, Profile: profile,
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}},
		procs:  make([]*Proc, n),
	}
	var members []string
	for i := range n {
		id := "n" + strconv.Itoa(i+1)
		c.IDs = append(c.IDs, id)
		c.Peer = append(c.Peer, fmt.Sprintf("127.0.0.1:%d", peerPorts[i]))
		c.HTTP = append(c.HTTP, fmt.Sprintf("127.0.0.1:%d", httpBase+i))
		c.Configs = append(c.Configs, filepath.Join(dir, id+".yml"))
		members = append(members, id+"="+c.Peer[i])
	}
	out, err := exec.CommandContext(ctx, bin, "init", "--dir", dir, "--members", strings.Join(members, ","),
		"--http-port", strconv.Itoa(httpBase), "--profile", profile).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("clustd init: %v\n%s", err, out)
	}
	if len(timing) > 0 {
		if err := overrideTiming(c.Configs, profile, timing); err != nil {
			return nil, err
		}
	}
	cfg, err := config.Load(c.Configs[0])
	if err != nil {
		return nil, err
	}
	c.Timing = cfg.Timing
	c.DriversSecret = cfg.DriversSecret
	c.Token = api.AdminToken(cfg.Secret)
	return c, nil
}

// overrideTiming adds KEY: VALUE lines to the timing section that clustd
// init wrote into each file.
func overrideTiming(files []string, profile string, kvs []string) error {
	section := fmt.Sprintf("timing:\n  profile: %q\n", profile)
	add := section
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("timing override %q: want KEY=VALUE", kv)
		}
		add += fmt.Sprintf("  %s: %s\n", strings.TrimSpace(k), strings.TrimSpace(v))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), section) {
			return fmt.Errorf("%s: no timing section as clustd init writes it", f)
		}
		if err := os.WriteFile(f, []byte(strings.Replace(string(b), section, add, 1)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// freePorts finds n free peer ports and a run of n consecutive free ports
// for the local listeners (clustd init numbers them up from the first).
// Each is checked by binding it and closing it again.
func freePorts(n int) (peer []int, httpBase int, err error) {
	free := func(port int) bool {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	taken := map[int]bool{}
	for try := 0; ; try++ {
		if try == 1000 {
			return nil, 0, errors.New("no run of free ports found")
		}
		base := portLow + rand.IntN(portHigh-portLow-n)
		ok := true
		for k := 0; k < n && ok; k++ {
			ok = free(base + k)
		}
		if ok {
			httpBase = base
			for k := range n {
				taken[base+k] = true
			}
			break
		}
	}
	for try := 0; len(peer) < n; try++ {
		if try == 1000 {
			return nil, 0, errors.New("no free peer port found")
		}
		port := portLow + rand.IntN(portHigh-portLow)
		if !taken[port] && free(port) {
			taken[port] = true
			peer = append(peer, port)
		}
	}
	return peer, httpBase, nil
}

// Start starts node i, appending its output to DIR/ID.log. The process is
// killed if this process dies (PR_SET_PDEATHSIG), so that an interrupted
// run leaves no daemon behind.
func (c *Cluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil && p.Running() {
		return fmt.Errorf("node %s is already running", c.IDs[i])
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, c.IDs[i]+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bin, args := c.Bin, []string{"run", "--config", c.Configs[i]}
	if c.LogLevel != "" {
		args = append(args, "--log-level", c.LogLevel)
	}
	if c.RunBin != "" {
		bin = c.RunBin
		args = []string{"--config", c.Configs[i]}
		if c.RunArgs != nil {
			args = append(args, c.RunArgs(i)...)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p := &Proc{Cmd: cmd, done: make(chan struct{}), log: logf}
	p.Started = boottime.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %s: %w", c.IDs[i], err)
	}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[i] = p
	return nil
}

// StartAll starts every node.
func (c *Cluster) StartAll() error {
	for i := range c.IDs {
		if err := c.Start(i); err != nil {
			return err
		}
	}
	return nil
}

// Proc returns node i's current process, or nil.
func (c *Cluster) Proc(i int) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// Running reports whether node i's daemon is running.
func (c *Cluster) Running(i int) bool {
	p := c.Proc(i)
	return p != nil && p.Running()
}

// PID returns node i's process id, or 0.
func (c *Cluster) PID(i int) int {
	if p := c.Proc(i); p != nil && p.Running() {
		return p.Cmd.Process.Pid
	}
	return 0
}

// Kill sends SIGKILL to node i and returns the boottime.Now() reading
// taken just before the signal. It waits for the process to be gone.
func (c *Cluster) Kill(i int) (time.Duration, error) {
	p := c.Proc(i)
	if p == nil || !p.Running() {
		return 0, fmt.Errorf("node %s is not running", c.IDs[i])
	}
	at := boottime.Now()
	if err := syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return 0, err
	}
	<-p.done
	return at, nil
}

// Close kills every daemon still running and waits for it to exit.
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		if p != nil && p.Running() {
			syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, p := range procs {
		if p != nil {
			<-p.done
		}
	}
	c.client.CloseIdleConnections()
}

// Stop sends SIGTERM to node i and waits up to grace for it to exit, then
// kills it.
func (c *Cluster) Stop(i int, grace time.Duration) {
	p := c.Proc(i)
	if p == nil || !p.Running() {
		return
	}
	syscall.Kill(p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Admin returns an admin API client for node i.
func (c *Cluster) Admin(i int) *api.Client {
	return &api.Client{Addr: c.HTTP[i], Token: c.Token, HTTP: c.client}
}

// Status reads node i's status, bounded to a second.
func (c *Cluster) Status(ctx context.Context, i int) (*api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Admin(i).Status(ctx)
}

// Metrics scrapes node i's /metrics.
func (c *Cluster) Metrics(ctx context.Context, i int) ([]Metric, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.HTTP[i]+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: %s", c.HTTP[i], resp.Status)
	}
	return ParseMetrics(string(b)), nil
}

// Index returns the position of node id, or -1.
func (c *Cluster) Index(id string) int {
	for i, x := range c.IDs {
		if x == id {
			return i
		}
	}
	return -1
}

// LogTail returns the last n lines of node i's log, for error reports.
func (c *Cluster) LogTail(i, n int) string {
	b, err := os.ReadFile(filepath.Join(c.Dir, c.IDs[i]+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
