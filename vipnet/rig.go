package vipnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/clustd/clustd/internal/netnsutil"
)

// The rig's addresses. Nothing else shares its namespaces, so a fixed
// private subnet cannot clash with anything.
const (
	subnet     = "10.78.0."
	VIP        = subnet + "100"
	clientAddr = subnet + "200"
	// VIP6 is the IPv6 floating address when Config.IPv6 is set.
	VIP6        = "fd78::100"
	clientAddr6 = "fd78::200"
	ifName      = "eth0"
	peerPort    = 7946
)

// Kind says what moves the address.
type Kind int

// What can move the address.
const (
	Clustd Kind = iota
	Keepalived
)

// Config configures a Rig.
type Config struct {
	// Clustd is the clustd executable.
	Clustd string
	// Kind is clustd or keepalived.
	Kind Kind
	// Profile is clustd's timing profile: default or fast.
	Profile string
	// Advert is keepalived's advertisement interval.
	Advert time.Duration
	// Dir receives the configurations and every process's log.
	Dir string
	// Nodes is the number of nodes, 3 unless set.
	Nodes int
	// CheckURL, if set, runs a required clustd driver check --http on every
	// node against it, with CheckArgs.
	CheckURL  string
	CheckArgs []string
	// IPv6 gives the driver VIP6 too, and the client an address in its
	// prefix.
	IPv6 bool
}

// node is one node namespace and what runs in it.
type node struct {
	id, ns  string
	idx     int
	config  string
	mac     string
	daemon  *exec.Cmd
	vip     *exec.Cmd
	resp    *exec.Cmd
	check   *exec.Cmd
	handle  *netlink.Handle
	hubSide string
}

// Rig is the running rig.
type Rig struct {
	cfg    Config
	prefix string
	hub    string
	cl     string
	nodes  []*node
	client *client
	watch  *watcher
	self   string
}

// New builds the namespaces and starts everything, then waits for one
// node to hold the address.
func New(cfg Config) (*Rig, error) { return newRigWithHook(cfg, nil) }

// newRigWithHook is New with a function called once the namespaces exist,
// before anything starts in them.
func newRigWithHook(cfg Config, hook func(*Rig) error) (_ *Rig, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Profile == "" {
		cfg.Profile = "default"
	}
	netnsutil.RemoveStale(Prefix)
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &Rig{cfg: cfg, prefix: fmt.Sprintf("%s%d-", Prefix, os.Getpid()), self: self}
	r.hub, r.cl = r.prefix+"hub", r.prefix+"cl"
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.build(); err != nil {
		return nil, err
	}
	if hook != nil {
		if err := hook(r); err != nil {
			return nil, err
		}
	}
	if err := r.startAll(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rig) build() error {
	cmds := [][]string{
		{"netns", "add", r.hub},
		{"-n", r.hub, "link", "set", "lo", "up"},
		{"-n", r.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", r.hub, "link", "set", "br0", "up"},
	}
	ids := []string{"a", "b", "c", "d", "e"}[:r.cfg.Nodes]
	add := func(ns, hubSide, addr string) {
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", r.hub, "link", "add", hubSide, "type", "veth", "peer", "name", ifName, "netns", ns},
			[]string{"-n", r.hub, "link", "set", hubSide, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", addr + "/24", "dev", ifName},
			[]string{"-n", ns, "link", "set", ifName, "up"},
		)
	}
	for i, id := range ids {
		n := &node{id: id, ns: r.prefix + id, idx: i, hubSide: fmt.Sprintf("v%d", i)}
		r.nodes = append(r.nodes, n)
		add(n.ns, n.hubSide, nodeAddr(i))
	}
	add(r.cl, "vcl", clientAddr)
	if r.cfg.IPv6 {
		cmds = append(cmds, []string{"-n", r.cl, "addr", "add", clientAddr6 + "/64", "dev", ifName, "nodad"})
	}
	for _, c := range cmds {
		if err := run("ip", c...); err != nil {
			return err
		}
	}
	w := &watcher{vip: net.ParseIP(VIP).To4()}
	for _, n := range r.nodes {
		h, err := handleAt(n.ns)
		if err != nil {
			return err
		}
		n.handle = h
		l, err := h.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("%s: %w", n.ns, err)
		}
		n.mac = l.Attrs().HardwareAddr.String()
		w.nodes = append(w.nodes, h)
		w.links = append(w.links, l.Attrs().Index)
	}
	h, err := handleAt(r.cl)
	if err != nil {
		return err
	}
	l, err := h.LinkByName(ifName)
	if err != nil {
		return err
	}
	w.client, w.clLink = h, l.Attrs().Index
	r.watch = w
	w.start()
	return nil
}

func nodeAddr(i int) string { return fmt.Sprintf("%s%d", subnet, i+1) }

// Describe says what the rig runs, for reports.
func (r *Rig) Describe() string {
	what := "clustd (" + r.cfg.Profile + " profile) with clustd driver vip"
	if r.cfg.Kind == Keepalived {
		what = fmt.Sprintf("keepalived (VRRPv3, unicast peers, advert %v)", r.cfg.Advert)
	}
	return fmt.Sprintf("%d nodes and a client in namespaces %s{a,b,c,cl} on one bridge; %s", len(r.nodes), r.prefix, what)
}

func (r *Rig) startAll() error {
	if r.cfg.Kind == Clustd {
		if err := r.writeConfigs(); err != nil {
			return err
		}
	}
	for _, n := range r.nodes {
		if err := r.startNode(n); err != nil {
			return err
		}
	}
	c, err := startClient(r.cl, VIP)
	if err != nil {
		return err
	}
	r.client = c
	if _, err := r.WaitMaster(-1, 60*time.Second); err != nil {
		return err
	}
	return nil
}

func (r *Rig) writeConfigs() error {
	var members []string
	for i, n := range r.nodes {
		members = append(members, fmt.Sprintf("%s=%s:%d", n.id, nodeAddr(i), peerPort))
	}
	conf := filepath.Join(r.cfg.Dir, "conf")
	out, err := exec.Command(r.cfg.Clustd, "init", "--dir", conf, "--members", strings.Join(members, ","), "--profile", r.cfg.Profile, "--force").CombinedOutput()
	if err != nil {
		return fmt.Errorf("clustd init: %v: %s", err, bytes.TrimSpace(out))
	}
	for _, n := range r.nodes {
		n.config = filepath.Join(conf, n.id+".yml")
		if r.cfg.CheckURL == "" {
			continue
		}
		// The node's configuration names the required driver: a driver
		// cannot make its node ineligible by its own word.
		f, err := os.OpenFile(n.config, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString("drivers:\n  required: [web]\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// command makes a command that runs in node n's namespace, its output
// appended to DIR/ID.what.log.
func (r *Rig) command(ns, logName string, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	f, err := os.OpenFile(filepath.Join(r.cfg.Dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Each in a process group of its own, so that a Ctrl-C of the test
	// reaches them through Close, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

func (r *Rig) start(n *node, what string, name string, args ...string) (*exec.Cmd, error) {
	cmd, err := r.command(n.ns, n.id+"."+what+".log", name, args...)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", n.id, what, err)
	}
	go cmd.Wait()
	return cmd, nil
}

// startNode starts n's address mover first, so that a leftover address is
// gone before the node can be reached, then the daemon and the responder.
func (r *Rig) startNode(n *node) error {
	var err error
	resp, err := r.command(n.ns, n.id+".responder.log", r.self)
	if err != nil {
		return err
	}
	resp.Env = append(os.Environ(), envResponder+"="+n.id+","+VIP)
	if err := resp.Start(); err != nil {
		return err
	}
	go resp.Wait()
	n.resp = resp
	if r.cfg.Kind == Keepalived {
		conf, err := r.keepalivedConf(n)
		if err != nil {
			return err
		}
		// keepalived runs with its own daemon as n.daemon: killing it is
		// killing the node's address mover, as for clustd.
		n.daemon, err = r.start(n, "keepalived", "keepalived", "--dont-fork", "--log-console", "--use-file", conf,
			"--pid", filepath.Join(r.cfg.Dir, n.id+".kpid"), "--vrrp_pid", filepath.Join(r.cfg.Dir, n.id+".vpid"),
			"--checkers_pid", filepath.Join(r.cfg.Dir, n.id+".cpid"), "--vrrp")
		return err
	}
	n.vip, err = r.start(n, "vip", r.cfg.Clustd, r.vipArgs(n)...)
	if err != nil {
		return err
	}
	if r.cfg.CheckURL != "" {
		args := append([]string{"driver", "check", "--config", n.config, "--required", "--name", "web", "--http", r.cfg.CheckURL}, r.cfg.CheckArgs...)
		if n.check, err = r.start(n, "check", r.cfg.Clustd, args...); err != nil {
			return err
		}
	}
	n.daemon, err = r.start(n, "daemon", r.cfg.Clustd, "run", "--config", n.config, "--log-level", "debug")
	return err
}

func (r *Rig) keepalivedConf(n *node) (string, error) {
	var peers []string
	for i := range r.nodes {
		if i != n.idx {
			peers = append(peers, nodeAddr(i))
		}
	}
	// Equal priorities and nopreempt: like clustd, a returning node does
	// not take the address back.
	conf := fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
  script_user root
}
vrrp_instance VI {
  state BACKUP
  nopreempt
  interface %s
  virtual_router_id 78
  priority 100
  advert_int %g
  unicast_src_ip %s
  unicast_peer {
    %s
  }
  virtual_ipaddress {
    %s/24 dev %s
  }
  garp_master_delay 0
  garp_master_repeat 3
}
`, n.id, ifName, r.cfg.Advert.Seconds(), nodeAddr(n.idx), strings.Join(peers, "\n    "), VIP, ifName)
	path := filepath.Join(r.cfg.Dir, n.id+".keepalived.conf")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// Master returns the node holding the address, or -1.
func (r *Rig) Master() int {
	h := r.watch.holders()
	if len(h) == 1 {
		return h[0]
	}
	return -1
}

// WaitMaster waits until a node other than not holds the address and
// answers the client's probes; with not < 0, until exactly one node holds
// it and answers.
func (r *Rig) WaitMaster(not int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		// After a fault the old master may still hold the address too
		// (keepalived's stopped or isolated master does); the new one is
		// whichever other holder the client hears from. With no fault,
		// exactly one holder.
		h := r.watch.holders()
		if not < 0 && len(h) != 1 {
			h = nil
		}
		for _, m := range h {
			if m == not {
				continue
			}
			if a, ok := r.client.last(); ok && a.Node == r.nodes[m].id && time.Since(a.Got) < 100*time.Millisecond {
				return m, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1, fmt.Errorf("no node but %d held the address and answered within %v (holders %v; logs in %s)", not, timeout, r.watch.holders(), r.cfg.Dir)
}

// ID returns node i's id.
func (r *Rig) ID(i int) string { return r.nodes[i].id }

// Close stops everything and deletes the namespaces.
func (r *Rig) Close() error {
	if r.client != nil {
		r.client.close()
	}
	if r.watch != nil && r.watch.stop != nil {
		r.watch.close()
	}
	for _, n := range r.nodes {
		// Whole process groups: keepalived's VRRP process is a child of
		// the one started, and would outlive it.
		for _, c := range []*exec.Cmd{n.check, n.vip, n.daemon, n.resp} {
			signalGroup(c, syscall.SIGCONT)
			signalGroup(c, syscall.SIGKILL)
		}
		if n.handle != nil {
			n.handle.Close()
		}
	}
	if r.watch != nil && r.watch.client != nil {
		r.watch.client.Close()
	}
	var errs []error
	for _, n := range r.nodes {
		errs = append(errs, delNetns(n.ns))
	}
	errs = append(errs, delNetns(r.cl), delNetns(r.hub))
	return errors.Join(errs...)
}

func delNetns(name string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
		return nil
	}
	return run("ip", "netns", "del", name)
}

// status asks node i's daemon for its status.
func (r *Rig) status(i int) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := r.nodes[i]
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.ns, r.cfg.Clustd, "status", "--config", n.config, "--json").Output()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(out, &m)
}

// vipArgs is the command line of node n's clustd driver vip.
func (r *Rig) vipArgs(n *node) []string {
	args := []string{"driver", "vip", "--config", n.config, "--address", VIP + "/24", "--interface", ifName, "--refresh", "1s", "--log-level", "debug"}
	if r.cfg.IPv6 {
		args = append(args, "--address", VIP6+"/64")
	}
	return args
}
