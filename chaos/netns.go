package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clustd/clustd/internal/netnsutil"
)

// network is how the nodes reach each other, and how faults cut them.
// Peers always connect through a proxy per node (the member addresses in
// the configuration are the proxies'), so latency, jitter and loss can be
// added anywhere; links are cut in the kernel where namespaces exist.
type network interface {
	// describe says how the nodes are connected, for the summary.
	describe() string
	// memberAddr is node i's address in the configuration: its proxy.
	memberAddr(i int) string
	// listenAddr is where node i's daemon really listens.
	listenAddr(i int) string
	// httpPort is the first node's local HTTP port; clustd init counts up
	// from it.
	httpPort() int
	// command runs name inside node i's network.
	command(ctx context.Context, i int, name string, args ...string) *exec.Cmd
	// started tells the network the pid of node i's daemon (0: none).
	started(i, pid int)
	// isolate cuts node i off from every other node.
	isolate(i int) error
	// drop loses traffic on the links given, all at once.
	drop(ds ...linkDrop) error
	// heal undoes every isolate and drop.
	heal() error
	// links is the shaping applied in the proxies.
	links() *linkTable
	// close stops the proxies and removes what the network made.
	close() error
}

// linkDrop loses Pct percent of the traffic from node From to node To; 100
// cuts that direction.
type linkDrop struct{ From, To, Pct int }

// netnsPrefix starts the name of every namespace a run makes, followed by
// the pid of the process that made it, so that leftovers of a run that
// died are found and removed without touching a run still going.
const netnsPrefix = "clustd-chaos-"

// The addresses inside the namespaces. Nothing else shares these
// namespaces, so a fixed private subnet cannot clash with anything.
const (
	subnet     = "10.77.0."
	hubAddr    = subnet + "254"
	peerPort   = 7946 // each daemon's real peer port, in its own namespace
	proxyPort  = 7001 // node i's proxy listens on hubAddr:proxyPort+i
	nftTable   = "clustd_chaos"
	vethInNode = "eth0"
)

// netnsAvailable reports why namespaces cannot be used, or nil.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install iproute2 nftables)", tool)
		}
	}
	return nil
}

// nsNet puts each node in a network namespace of its own, joined by veth
// pairs to a bridge in a hub namespace, where the proxies listen:
//
//	node a (10.77.0.1) ──veth── br0 (hub, 10.77.0.254, proxies :7001…) ──veth── node b (10.77.0.2)
//
// A daemon dials a peer's proxy on the hub, which dials the peer. Each
// daemon sends only on the connections it dials, so traffic from a to b is
// exactly what leaves a's namespace for b's proxy port: a one-way cut is
// one nftables rule in the sender's namespace, and isolating a node is
// taking its link down.
type nsNet struct {
	prefix  string
	ids     []string
	proxies []*proxy
	shaping linkTable
	cuts    map[int][]string // nft rules per sender
	down    map[int]bool
}

func nsName(prefix, suffix string) string { return prefix + suffix }

func newNsNet(ids []string, seed uint64) (_ *nsNet, err error) {
	n := &nsNet{prefix: fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid()), ids: ids, cuts: map[int][]string{}, down: map[int]bool{}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	hub := nsName(n.prefix, "hub")
	cmds := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "addr", "add", hubAddr + "/24", "dev", "br0"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	for i, id := range ids {
		ns := nsName(n.prefix, id)
		hubSide := fmt.Sprintf("v%d", i)
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", hub, "link", "add", hubSide, "type", "veth", "peer", "name", vethInNode, "netns", ns},
			[]string{"-n", hub, "link", "set", hubSide, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", n.nodeAddr(i) + "/24", "dev", vethInNode},
			[]string{"-n", ns, "link", "set", vethInNode, "up"},
		)
	}
	for _, c := range cmds {
		if err := run("ip", c...); err != nil {
			return nil, err
		}
	}
	for i := range ids {
		if err := n.setRules(i, nil); err != nil {
			return nil, err
		}
	}
	byAddr := map[string]int{}
	for i := range ids {
		byAddr[n.nodeAddr(i)] = i
	}
	for i := range ids {
		var ln net.Listener
		err := netnsutil.Run(hub, func() error {
			var err error
			ln, err = net.Listen("tcp", n.memberAddr(i))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("proxy for %s: %w", ids[i], err)
		}
		target := n.listenAddr(i)
		n.proxies = append(n.proxies, newProxy(proxyOptions{
			Listener: ln,
			Dst:      i,
			Links:    &n.shaping,
			Seed:     seed,
			Dial: func(ctx context.Context) (net.Conn, error) {
				var c net.Conn
				err := netnsutil.Run(hub, func() error {
					var err error
					c, err = proxyDialer.DialContext(ctx, "tcp", target)
					return err
				})
				return c, err
			},
			Identify: func(c net.Conn) int {
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				if i, ok := byAddr[host]; ok {
					return i
				}
				return -1
			},
		}))
	}
	return n, nil
}

// proxyDialer makes the proxies' connections to the nodes fail the way
// the daemons' own do (node/peer.go, node/sockopt.go): a connect that gets
// no answer gives up after an election timeout, and data left
// unacknowledged for a second ends the connection. Without it, a node cut
// off behind its proxy stalled in TCP's retransmission backoff for
// seconds after the heal, while the peers' connections to the proxy
// carried on as if nothing had happened: a failover that needed that node
// took 1.2 s instead of 0.5 s.
var proxyDialer = net.Dialer{
	Timeout: 500 * time.Millisecond,
	Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 1000)
		}); err != nil {
			return err
		}
		return serr
	},
}

func (n *nsNet) nodeAddr(i int) string { return subnet + strconv.Itoa(i+1) }

func (n *nsNet) describe() string {
	return fmt.Sprintf("network namespaces %s{hub,%s}: one bridge, %s0/24, proxies on %s",
		n.prefix, strings.Join(n.ids, ","), subnet, hubAddr)
}

func (n *nsNet) memberAddr(i int) string {
	return net.JoinHostPort(hubAddr, strconv.Itoa(proxyPort+i))
}

func (n *nsNet) listenAddr(i int) string {
	return net.JoinHostPort(n.nodeAddr(i), strconv.Itoa(peerPort))
}

// httpPort can be the same for every run: each node's listener is on the
// loopback of its own namespace.
func (n *nsNet) httpPort() int { return 3001 }

func (n *nsNet) command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nsName(n.prefix, n.ids[i]), name}, args...)...)
}

func (n *nsNet) started(int, int) {}

func (n *nsNet) links() *linkTable { return &n.shaping }

func (n *nsNet) isolate(i int) error {
	n.down[i] = true
	return run("ip", "-n", nsName(n.prefix, n.ids[i]), "link", "set", vethInNode, "down")
}

// drop adds one nftables rule per link in the sender's namespace. Every
// namespace concerned is rewritten at the same time, so that a split
// starts everywhere within a few milliseconds.
func (n *nsNet) drop(ds ...linkDrop) error {
	changed := map[int]bool{}
	for _, d := range ds {
		rule := fmt.Sprintf("ip daddr %s tcp dport %d", hubAddr, proxyPort+d.To)
		if d.Pct < 100 {
			rule += fmt.Sprintf(" numgen random mod 100 < %d", d.Pct)
		}
		n.cuts[d.From] = append(n.cuts[d.From], rule+" drop")
		changed[d.From] = true
	}
	return n.parallel(func(i int) error {
		if !changed[i] {
			return nil
		}
		return n.setRules(i, n.cuts[i])
	})
}

// parallel runs f for every node at once.
func (n *nsNet) parallel(f func(i int) error) error {
	errs := make([]error, len(n.ids))
	var wg sync.WaitGroup
	for i := range n.ids {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// setRules replaces the output rules of node i's namespace.
func (n *nsNet) setRules(i int, rules []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\nflush table inet %s\n", nftTable, nftTable)
	fmt.Fprintf(&b, "table inet %s {\n  chain out {\n    type filter hook output priority 0; policy accept;\n", nftTable)
	for _, r := range rules {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	b.WriteString("  }\n}\n")
	cmd := exec.Command("ip", "netns", "exec", nsName(n.prefix, n.ids[i]), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", n.ids[i], err, bytes.TrimSpace(out))
	}
	return nil
}

func (n *nsNet) heal() error {
	err := n.parallel(func(i int) error {
		var errs []error
		if n.down[i] {
			errs = append(errs, run("ip", "-n", nsName(n.prefix, n.ids[i]), "link", "set", vethInNode, "up"))
		}
		if len(n.cuts[i]) > 0 {
			errs = append(errs, n.setRules(i, nil))
		}
		return errors.Join(errs...)
	})
	n.down = map[int]bool{}
	n.cuts = map[int][]string{}
	return err
}

// close stops the proxies and deletes the namespaces; the veths and the
// bridge go with them.
func (n *nsNet) close() error {
	for _, p := range n.proxies {
		p.Close()
	}
	var errs []error
	for _, id := range append([]string{"hub"}, n.ids...) {
		name := nsName(n.prefix, id)
		if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
			continue
		}
		errs = append(errs, run("ip", "netns", "del", name))
	}
	return errors.Join(errs...)
}

// run runs a command and turns its output into the error.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
