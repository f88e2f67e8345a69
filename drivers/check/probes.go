package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/clustd/clustd/drivers/common"
)

// Exec returns a probe that runs script with /bin/sh -c and passes when it
// exits 0. The script runs in a process group of its own, killed as a whole
// at the timeout.
func Exec(script string) Probe {
	return func(ctx context.Context) error {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Stdin = nil
		var out strings.Builder
		// One writer for both, so os/exec copies both through one pipe
		// and one goroutine.
		w := &limitWriter{w: &out, n: 512}
		cmd.Stdout, cmd.Stderr = w, w
		// A daemon the script leaves behind holds the pipe; its exit is
		// what counts.
		cmd.WaitDelay = 100 * time.Millisecond
		g, err := common.Start(cmd)
		if err != nil {
			return err
		}
		select {
		case <-g.Done():
		case <-ctx.Done():
			g.Stop(syscall.SIGKILL, 0)
			return fmt.Errorf("%q killed: %w", script, ctx.Err())
		}
		if err := g.Err(); err != nil {
			if s := strings.TrimSpace(out.String()); s != "" {
				return fmt.Errorf("%q: %v: %s", script, err, s)
			}
			return fmt.Errorf("%q: %v", script, err)
		}
		return nil
	}
}

// limitWriter keeps the first n bytes of a command's output for the
// failure reason and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// HTTP returns a probe that GETs url and passes when the status is expect.
// Redirects are not followed: a redirect to a login page is not the
// service being up.
func HTTP(url string, expect int) Probe {
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "clustd-check")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != expect {
			return fmt.Errorf("GET %s: status %d, expected %d", url, resp.StatusCode, expect)
		}
		return nil
	}
}

// TCP returns a probe that passes when a TCP connection to addr is
// accepted.
func TCP(addr string) Probe {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// Link returns a probe that passes while the interface has carrier, as
// netlink reports it (IFF_LOWER_UP) and is administratively up.
func Link(name string) Probe {
	return func(context.Context) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		a := l.Attrs()
		if a.RawFlags&unix.IFF_UP == 0 {
			return fmt.Errorf("interface %s is down", name)
		}
		if a.RawFlags&unix.IFF_LOWER_UP == 0 {
			return fmt.Errorf("interface %s has no carrier", name)
		}
		return nil
	}
}

// Ping returns a probe that sends one ICMP echo to host and passes when the
// reply comes back. It uses an unprivileged datagram socket where the
// kernel allows them (net.ipv4.ping_group_range), else a raw socket, which
// needs CAP_NET_RAW.
func Ping(host string) Probe {
	seq := os.Getpid() & 0xffff
	return func(ctx context.Context) error {
		ip, err := resolve(ctx, host)
		if err != nil {
			return err
		}
		seq = (seq + 1) & 0xffff
		return ping(ctx, ip, seq)
	}
}

func resolve(ctx context.Context, host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	return ips[0], nil
}

func ping(ctx context.Context, ip net.IP, seq int) error {
	v4 := ip.To4() != nil
	dgram, raw, proto := "udp6", "ip6:ipv6-icmp", 58
	var typ, reply icmp.Type = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	if v4 {
		dgram, raw, proto = "udp4", "ip4:icmp", 1
		typ, reply = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(dgram, "")
	isRaw := false
	if err != nil {
		var rerr error
		if c, rerr = icmp.ListenPacket(raw, ""); rerr != nil {
			return fmt.Errorf("no ICMP socket: datagram: %v; raw: %v (allow datagram sockets with sysctl net.ipv4.ping_group_range, or give CAP_NET_RAW)", err, rerr)
		}
		isRaw = true
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// A datagram socket's id is its port, which the kernel sets; a raw
	// socket's is ours to choose, and replies to other pingers on the
	// machine are told apart by it.
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("clustd-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	var dst net.Addr = &net.UDPAddr{IP: ip}
	if isRaw {
		dst = &net.IPAddr{IP: ip}
	}
	if _, err := c.WriteTo(b, dst); err != nil {
		return fmt.Errorf("ping %v: %w", ip, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("ping %v: no reply", ip)
			}
			return fmt.Errorf("ping %v: %w", ip, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.Seq != seq || (isRaw && e.ID != id) {
			continue
		}
		if !sameIP(from, ip) {
			continue
		}
		return nil
	}
}

func sameIP(a net.Addr, ip net.IP) bool {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.Equal(ip)
	case *net.IPAddr:
		return a.IP.Equal(ip)
	}
	return false
}
