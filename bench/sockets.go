package bench

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// socket is one established TCP connection as `ss -tinp` reports it.
type socket struct {
	Local, Remote string
	// PIDs are the processes holding the socket.
	PIDs []int
	// BytesSent is the TCP payload bytes sent (tcpi_bytes_sent), counting
	// retransmissions; SegsOut the segments sent, pure ACKs included.
	BytesSent, SegsOut int64
}

// key identifies the connection.
func (s socket) key() string { return s.Local + " " + s.Remote }

var (
	pidRE     = regexp.MustCompile(`pid=(\d+)`)
	counterRE = regexp.MustCompile(`\b(bytes_sent|segs_out):(\d+)`)
)

// listSockets asks ss for every established TCP connection whose remote
// port is one of ports. It needs the iproute2 ss command; the process
// columns need root or the sockets' owner.
func listSockets(ctx context.Context, ports []int) ([]socket, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	var filter []string
	for _, p := range ports {
		filter = append(filter, fmt.Sprintf("dport = :%d", p))
	}
	args := []string{"-tinpH", "state", "established", "( " + strings.Join(filter, " or ") + " )"}
	out, err := exec.CommandContext(ctx, "ss", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("ss %s: %w", strings.Join(args, " "), err)
	}
	return parseSS(string(out)), nil
}

// parseSS parses the output of `ss -tinpH state established`: a line per
// socket (Recv-Q, Send-Q, local, peer, process) followed by an indented
// line of TCP information.
func parseSS(out string) []socket {
	var socks []socket
	var cur *socket
	for line := range strings.Lines(out) {
		if line == "" || strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil {
				continue
			}
			for _, m := range counterRE.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.ParseInt(m[2], 10, 64)
				switch m[1] {
				case "bytes_sent":
					cur.BytesSent = n
				case "segs_out":
					cur.SegsOut = n
				}
			}
			continue
		}
		fs := strings.Fields(line)
		// With a state filter ss omits the State column: Recv-Q Send-Q
		// Local Peer [Process].
		if len(fs) < 4 {
			cur = nil
			continue
		}
		socks = append(socks, socket{Local: fs[2], Remote: fs[3]})
		cur = &socks[len(socks)-1]
		for _, m := range pidRE.FindAllStringSubmatch(strings.Join(fs[4:], " "), -1) {
			n, _ := strconv.Atoi(m[1])
			cur.PIDs = append(cur.PIDs, n)
		}
	}
	return socks
}

// portOf returns the port of a HOST:PORT address, or 0.
func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0
	}
	p, _ := strconv.Atoi(addr[i+1:])
	return p
}
