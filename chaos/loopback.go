package chaos

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/clustd/clustd/internal/localcluster"
)

// loNet is the fallback where namespaces cannot be made: every daemon and
// proxy on 127.0.0.1. Links are cut in the proxies instead of the kernel,
// which tell the nodes apart by asking /proc which daemon owns the other
// end of each connection.
type loNet struct {
	ids     []string
	proxies []*proxy
	listen  []string
	http    int
	shaping linkTable
	// blocked lists the links cut by isolate and drop (pct 100).
	blocked map[[2]int]bool

	mu   sync.Mutex
	pids map[int]int // daemon pid → node index
}

func newLoNet(ids []string, seed uint64) (_ *loNet, err error) {
	n := &loNet{ids: ids, blocked: map[[2]int]bool{}, pids: map[int]int{}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	// The daemons' ports: peer listeners, then local listeners (numbered
	// up from the first by clustd init).
	ports, err := localcluster.Ports(2 * len(ids))
	if err != nil {
		return nil, err
	}
	n.http = ports[len(ids)]
	for i := range ids {
		n.listen = append(n.listen, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])))
	}
	for i := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		target := n.listen[i]
		n.proxies = append(n.proxies, newProxy(proxyOptions{
			Listener: ln,
			Dst:      i,
			Links:    &n.shaping,
			Seed:     seed,
			Dial: func(ctx context.Context) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", target)
			},
			Identify: n.identify,
		}))
	}
	return n, nil
}

func (n *loNet) describe() string {
	return "loopback (127.0.0.1; links cut in the proxies, not the kernel)"
}

func (n *loNet) memberAddr(i int) string { return n.proxies[i].Addr().String() }

func (n *loNet) listenAddr(i int) string { return n.listen[i] }

func (n *loNet) httpPort() int { return n.http }

func (n *loNet) command(ctx context.Context, _ int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

func (n *loNet) started(i, pid int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, j := range n.pids {
		if j == i {
			delete(n.pids, p)
		}
	}
	if pid > 0 {
		n.pids[pid] = i
	}
}

func (n *loNet) links() *linkTable { return &n.shaping }

func (n *loNet) isolate(i int) error {
	for j := range n.ids {
		if j != i {
			n.block(i, j)
			n.block(j, i)
		}
	}
	return nil
}

func (n *loNet) block(from, to int) {
	n.blocked[[2]int{from, to}] = true
	p, _ := n.shaping.Get(from, to)
	p.Block = true
	n.shaping.Set(from, to, p)
}

func (n *loNet) drop(ds ...linkDrop) error {
	for _, d := range ds {
		if d.Pct >= 100 {
			n.block(d.From, d.To)
			continue
		}
		// Partial loss becomes retransmission stalls in the proxy.
		p, _ := n.shaping.Get(d.From, d.To)
		p.Loss = float64(d.Pct) / 100
		n.shaping.Set(d.From, d.To, p)
	}
	return nil
}

func (n *loNet) heal() error {
	n.blocked = map[[2]int]bool{}
	n.shaping.Reset()
	return nil
}

func (n *loNet) close() error {
	for _, p := range n.proxies {
		p.Close()
	}
	return nil
}

// identify finds which daemon opened c: the socket at c's remote end is
// in /proc/net/tcp with an inode, and one daemon has that inode open.
func (n *loNet) identify(c net.Conn) int {
	remote, err1 := netip.ParseAddrPort(c.RemoteAddr().String())
	local, err2 := netip.ParseAddrPort(c.LocalAddr().String())
	if err1 != nil || err2 != nil {
		return -1
	}
	inode := socketInode(remote, local)
	if inode == "" {
		return -1
	}
	want := "socket:[" + inode + "]"
	n.mu.Lock()
	pids := make(map[int]int, len(n.pids))
	for p, i := range n.pids {
		pids[p] = i
	}
	n.mu.Unlock()
	for pid, i := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
				return i
			}
		}
	}
	return -1
}

// socketInode returns the inode of the IPv4 TCP socket whose local end is
// local and remote end is remote, from /proc/net/tcp.
func socketInode(local, remote netip.AddrPort) string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		l, ok1 := parseProcAddr(fields[1])
		r, ok2 := parseProcAddr(fields[2])
		if ok1 && ok2 && l == local && r == remote {
			return fields[9]
		}
	}
	return ""
}

// parseProcAddr parses /proc/net/tcp's "0100007F:1F90": the address is
// the in-memory __be32 printed as a host-order number, the port is plain.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	av, err1 := strconv.ParseUint(a, 16, 32)
	pv, err2 := strconv.ParseUint(p, 16, 16)
	if err1 != nil || err2 != nil {
		return netip.AddrPort{}, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(av))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(pv)), true
}
