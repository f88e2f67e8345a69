package chaos

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/localcluster"
	"github.com/clustd/clustd/node/config"
)

// proc is one run of one process.
type proc = localcluster.Proc

// startProc starts cmd with its output appended to logPath, after a line
// saying what starts and when, so that a log of several runs reads in
// order. A cgroupFD of 0 or more is the cgroup v2 directory the process
// starts in; -1 leaves it in this process's cgroup.
func startProc(cmd *exec.Cmd, logPath, what string, cgroupFD int) (*proc, error) {
	return localcluster.Start(cmd, localcluster.StartOptions{
		Log:         logPath,
		Header:      fmt.Sprintf("=== chaos: %s at %s: %s", what, fmtMono(Now()), strings.Join(cmd.Args, " ")),
		UseCgroupFD: cgroupFD >= 0,
		CgroupFD:    cgroupFD,
	})
}

// node is one member: its daemon and its two drivers.
type node struct {
	idx    int
	id     string
	dir    string // logs and the recorder's history
	config string
	http   string // the daemon's local listener, inside its namespace

	daemon   *proc
	recorder *proc
	exec     *proc
	// roleRecorders record the roles after the first (Config.Roles).
	roleRecorders []*proc
}

func (n *node) historyFile() string { return filepath.Join(n.dir, "history.jsonl") }

// roleHistoryFile is the history of role k (from 1, the roles after the
// first).
func (n *node) roleHistoryFile(k int) string {
	return filepath.Join(n.dir, fmt.Sprintf("history-%s.jsonl", roleName(k)))
}

// roleName names role k (from 0) of a run with several roles.
func roleName(k int) string { return fmt.Sprintf("r%d", k+1) }

// drivers are n's driver processes, the ones not started being nil.
func (n *node) drivers() []*proc { return append([]*proc{n.recorder, n.exec}, n.roleRecorders...) }

// testbed is the running system under test: the network, and every
// node's daemon and drivers.
type testbed struct {
	net      network
	dir      string
	clustd   string
	recorder string
	secret   string
	execFile string
	nodes    []*node
	noExec   bool
	roles    int
	// drain is how long the exec probe goes on after its stop signal.
	drain time.Duration
	// late is how late the recorder's and the probe's timers fire: the
	// recorder's demote begins, and the probe's drain ends, that much late.
	late   time.Duration
	freeze *freezer
}

// writeConfigs writes every node's configuration with clustd init: members
// at their proxies' addresses, then each daemon's real listen address
// added, since the proxies stand between the peers.
func (c *testbed) writeConfigs(ctx context.Context, profile string) error {
	confDir := filepath.Join(c.dir, "conf")
	var members []string
	for i, n := range c.nodes {
		members = append(members, n.id+"="+c.net.memberAddr(i))
	}
	err := localcluster.Init(ctx, c.clustd, config.InitOptions{Dir: confDir, Members: strings.Join(members, ","),
		HTTPPort: c.net.httpPort(), Profile: profile})
	if err != nil {
		return err
	}
	c.secret = filepath.Join(confDir, "drivers.secret") // the recorder is a driver
	for i, n := range c.nodes {
		n.config = filepath.Join(confDir, n.id+".yml")
		n.http = fmt.Sprintf("127.0.0.1:%d", c.net.httpPort()+i)
		f, err := os.OpenFile(n.config, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "# Added by the chaos run: peers reach this node through a proxy.\nlisten: %q\n%s", c.net.listenAddr(i), c.rolesYAML())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *testbed) startDaemon(n *node) error {
	cmd := c.net.command(context.Background(), n.idx, c.clustd, "run", "--config", n.config, "--log-level", "debug")
	fd, err := c.freeze.cgroup(n)
	if err != nil {
		return err
	}
	p, err := startProc(cmd, filepath.Join(n.dir, "clustd.log"), "clustd run", fd)
	if err != nil {
		return fmt.Errorf("starting %s's daemon: %w", n.id, err)
	}
	n.daemon = p
	c.net.started(n.idx, p.Pid())
	return nil
}

func (c *testbed) startDrivers(n *node) error {
	cmd := c.net.command(context.Background(), n.idx, c.recorder, "--node", n.id, "--addr", n.http, "--secret-file", c.secret, "--out", n.historyFile(), "--late", c.late.String())
	fd, err := c.freeze.cgroup(n)
	if err != nil {
		return err
	}
	p, err := startProc(cmd, filepath.Join(n.dir, "recorder.log"), "recorder", fd)
	if err != nil {
		return fmt.Errorf("starting %s's recorder: %w", n.id, err)
	}
	n.recorder = p
	n.roleRecorders = n.roleRecorders[:0]
	for k := 1; k < c.roles; k++ {
		cmd := c.net.command(context.Background(), n.idx, c.recorder, "--node", n.id, "--addr", n.http, "--secret-file", c.secret,
			"--role", roleName(k), "--out", n.roleHistoryFile(k), "--late", c.late.String())
		p, err := startProc(cmd, filepath.Join(n.dir, "recorder-"+roleName(k)+".log"), "recorder of "+roleName(k), fd)
		if err != nil {
			return fmt.Errorf("starting %s's recorder of %s: %w", n.id, roleName(k), err)
		}
		n.roleRecorders = append(n.roleRecorders, p)
	}
	if c.noExec {
		return nil
	}
	cmd = c.net.command(context.Background(), n.idx, c.clustd, "driver", "exec", "--config", n.config, "--name", "probe",
		"--stop-timeout", "5s", "--", c.recorder, "probe", "--node", n.id, "--out", c.execFile, "--drain", c.drain.String(), "--late", c.late.String())
	if p, err = startProc(cmd, filepath.Join(n.dir, "exec.log"), "clustd driver exec", fd); err != nil {
		return fmt.Errorf("starting %s's exec driver: %w", n.id, err)
	}
	n.exec = p
	return nil
}

// rolesYAML is the roles: section of a run with several roles, or
// nothing.
func (c *testbed) rolesYAML() string {
	if c.roles < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString("roles:\n")
	for k := range c.roles {
		fmt.Fprintf(&b, "  - name: %s\n", roleName(k))
	}
	return b.String()
}

// driverLateness draws how late the chaos drivers' timers fire, from its
// own stream of the seed: up to the lateness reserve the drivers' lease
// keeps (Timing.DriverReserve), a third of the seeds at that bound. Real
// timers on a busy machine add their own.
func driverLateness(seed uint64, t election.Timing) time.Duration {
	r := mrand.New(mrand.NewPCG(seed, 0x6c617465))
	if r.IntN(3) == 0 {
		return t.DriverReserve()
	}
	return time.Duration(r.Int64N(int64(t.DriverReserve()) + 1)).Round(time.Millisecond)
}

// admin runs a clustd admin command (transfer, maintenance) against node
// n's daemon, from inside its namespace as an operator on that machine.
func (c *testbed) admin(ctx context.Context, n *node, command string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	full := append([]string{command, "--config", n.config}, args...)
	out, err := c.net.command(ctx, n.idx, c.clustd, full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("clustd %s: %v: %s", strings.Join(full, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// stopDrivers stops every driver (each demotes itself on the way out) and
// returns when the last one was gone.
func (c *testbed) stopDrivers() time.Duration {
	for _, n := range c.nodes {
		for _, p := range n.drivers() {
			if p.Running() {
				p.Signal(syscall.SIGTERM)
			}
		}
	}
	end := Now()
	for _, n := range c.nodes {
		for _, p := range n.drivers() {
			if p == nil {
				continue
			}
			p.Stop(15 * time.Second)
			end = max(end, p.Exited())
		}
	}
	return end
}

// stopDaemons stops every daemon, paused ones included.
func (c *testbed) stopDaemons() {
	done := make(chan struct{})
	for _, n := range c.nodes {
		go func() {
			n.daemon.Stop(3 * time.Second)
			done <- struct{}{}
		}()
	}
	for range c.nodes {
		<-done
	}
}

// killAll is the last resort on the way out: nothing may outlive the run.
func (c *testbed) killAll() {
	for _, n := range c.nodes {
		for _, p := range append(n.drivers(), n.daemon) {
			p.Kill()
		}
	}
}
