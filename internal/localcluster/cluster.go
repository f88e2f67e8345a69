package localcluster

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/clustd/clustd/node/config"
)

// Options describe a cluster for New.
type Options struct {
	// Bin is the clustd executable that writes the configuration and runs
	// the daemons.
	Bin string
	// Dir receives the configuration files, the nodes' data directories
	// and their logs (ID.log); it is created if missing.
	Dir string
	// Nodes is the number of members, named n1, n2, … unless IDs names
	// them.
	Nodes int
	IDs   []string
	// Profile is the timing profile clustd init writes.
	Profile string
	// InProcessInit writes the configuration with config.Init in this
	// process instead of running Bin init: for a caller that is clustd
	// itself, which then has the InitResult to show.
	InProcessInit bool
}

// Cluster is a set of clustd daemons on 127.0.0.1, configured by
// `clustd init` and run as separate processes. Its methods may be called
// from several goroutines.
type Cluster struct {
	// Bin is the clustd executable; RunBin, when set, runs the daemons
	// instead (a profiling build), given --config and RunArgs.
	Bin     string
	RunBin  string
	RunArgs func(i int) []string
	// Env is added to the daemons' environment (for experiments such as
	// GOMAXPROCS=1); LogLevel, if set, is passed to clustd run.
	Env      []string
	LogLevel string
	Dir      string
	Profile  string
	IDs      []string
	Peer     []string // peer addresses
	HTTP     []string // local listener addresses
	Configs  []string
	// Init is what config.Init wrote, with Options.InProcessInit.
	Init *config.InitResult

	client *http.Client
	mu     sync.Mutex
	procs  []*Proc
	// ports stay bound until the first node starts, so that parallel
	// clusters cannot pick the same ones.
	ports *Reservation
}

// New reserves ports and writes the configuration of a cluster into
// o.Dir. No daemon runs yet.
func New(ctx context.Context, o Options) (*Cluster, error) {
	ids := o.IDs
	if ids == nil {
		for i := range o.Nodes {
			ids = append(ids, "n"+strconv.Itoa(i+1))
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("localcluster: a cluster of no nodes")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	n := len(ids)
	ports, err := Reserve(2 * n)
	if err != nil {
		return nil, err
	}
	var peer, local, configs, members []string
	for i, id := range ids {
		peer = append(peer, fmt.Sprintf("127.0.0.1:%d", ports.Ports[i]))
		local = append(local, fmt.Sprintf("127.0.0.1:%d", ports.Ports[n+i]))
		configs = append(configs, filepath.Join(o.Dir, id+".yml"))
		members = append(members, id+"="+peer[i])
	}
	c := Open(o.Bin, o.Dir, ids, configs, local)
	c.Profile, c.Peer, c.ports = o.Profile, peer, ports
	io := config.InitOptions{Dir: o.Dir, Members: strings.Join(members, ","), Profile: o.Profile, HTTPPort: ports.Ports[n]}
	if o.InProcessInit {
		c.Init, err = config.Init(io)
	} else {
		err = Init(ctx, o.Bin, io)
	}
	if err != nil {
		ports.Release()
		return nil, err
	}
	return c, nil
}

// Open returns a cluster whose configuration was written some other way
// (by clustd import-seed, say), given every node's id, configuration file
// and local listener. Node i logs to dir/IDS[i].log.
func Open(bin, dir string, ids, configs, http []string) *Cluster {
	return &Cluster{Bin: bin, Dir: dir, IDs: ids, Configs: configs, HTTP: http, procs: make([]*Proc, len(ids)),
		client: newHTTPClient()}
}

// newHTTPClient makes the client for the daemons' local listeners: no
// proxy (it would get the token and cannot reach this loopback anyway), a
// short dial timeout, and few idle connections per daemon.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// Init runs `bin init` with the options' directory, members, profile and
// first HTTP port.
func Init(ctx context.Context, bin string, o config.InitOptions) error {
	args := []string{"init", "--dir", o.Dir, "--members", o.Members, "--http-port", strconv.Itoa(o.HTTPPort)}
	if o.Profile != "" {
		args = append(args, "--profile", o.Profile)
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("clustd init: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// LogPath is node i's log file.
func (c *Cluster) LogPath(i int) string { return filepath.Join(c.Dir, c.IDs[i]+".log") }

// LogTail returns the last n lines of node i's log, for error reports.
func (c *Cluster) LogTail(i, n int) string {
	return strings.Join(LogTail(c.LogPath(i), n), "\n")
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

// Command is the command that runs node i's daemon.
func (c *Cluster) Command(i int) *exec.Cmd {
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
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	return cmd
}

// Start starts node i's daemon (see Command), its output appended to its
// log.
func (c *Cluster) Start(i int) error { return c.StartCommand(i, c.Command(i)) }

// StartCommand starts cmd as node i's daemon, for a test that runs the
// daemon some other way (under a resource limit, with another environment).
func (c *Cluster) StartCommand(i int, cmd *exec.Cmd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i].Running() {
		return fmt.Errorf("node %s is already running", c.IDs[i])
	}
	// Every reserved port is freed before the first node starts: one still
	// bound here would accept the other nodes' connections and never
	// answer, stalling their handshakes.
	c.ports.Release()
	p, err := Start(cmd, StartOptions{Log: c.LogPath(i)})
	if err != nil {
		return fmt.Errorf("cannot start %s with %s: %w", c.IDs[i], cmd.Path, err)
	}
	c.procs[i] = p
	return nil
}

// DriverLog is the log file of node i's driver of kind KIND.
func (c *Cluster) DriverLog(i int, kind string) string {
	return filepath.Join(c.Dir, fmt.Sprintf("%s.driver-%s.log", c.IDs[i], kind))
}

// StartDriver starts `clustd driver KIND --config NODE.yml ARGS…` beside
// node i, its output appended to DriverLog(i, kind). The caller stops it.
func (c *Cluster) StartDriver(i int, kind string, args ...string) (*Proc, error) {
	full := append([]string{"driver", kind, "--config", c.Configs[i]}, args...)
	p, err := Start(exec.Command(c.Bin, full...), StartOptions{Log: c.DriverLog(i, kind)})
	if err != nil {
		return nil, fmt.Errorf("starting %s's %s driver: %w", c.IDs[i], kind, err)
	}
	return p, nil
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

// Proc returns node i's current process, or nil if it was never started.
func (c *Cluster) Proc(i int) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// Running reports whether node i's daemon is running.
func (c *Cluster) Running(i int) bool { return c.Proc(i).Running() }

// Paused reports whether node i's daemon is stopped by SIGSTOP.
func (c *Cluster) Paused(i int) bool { return c.Running(i) && c.Proc(i).Paused() }

// PID returns node i's process id, or 0 when it does not run.
func (c *Cluster) PID(i int) int {
	if p := c.Proc(i); p.Running() {
		return p.Pid()
	}
	return 0
}

// Signal sends sig to node i's daemon.
func (c *Cluster) Signal(i int, sig syscall.Signal) error {
	if err := c.Proc(i).Signal(sig); err != nil {
		return fmt.Errorf("signal %v to node %s: %w", sig, c.IDs[i], err)
	}
	return nil
}

// Kill sends SIGKILL to node i and returns the boottime.Now() reading
// taken just before the signal. It waits for the process to be gone.
func (c *Cluster) Kill(i int) (time.Duration, error) {
	p := c.Proc(i)
	if !p.Running() {
		return 0, fmt.Errorf("node %s is not running", c.IDs[i])
	}
	at := nowFunc()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("node %s: %w", c.IDs[i], err)
	}
	<-p.Done()
	return at, nil
}

// Stop sends SIGTERM to node i (after SIGCONT) and waits up to grace for
// it to exit, then kills it.
func (c *Cluster) Stop(i int, grace time.Duration) { c.Proc(i).Stop(grace) }

// Close kills every daemon still running, waits for it to exit, and frees
// the ports if no node ever started.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.ports.Release()
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		if p.Running() {
			p.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range procs {
		if p != nil {
			<-p.Done()
		}
	}
	c.client.CloseIdleConnections()
}
