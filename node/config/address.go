package config

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// hostPort is a parsed HOST:PORT. host is empty only where the address is a
// listen address meaning "every interface".
type hostPort struct {
	host string // canonical: IPs in netip form, names lower-cased
	ip   netip.Addr
	port int
}

func (a hostPort) String() string { return net.JoinHostPort(a.host, strconv.Itoa(a.port)) }

// addrRule says what an address is for, because an empty host is fine for a
// listener but means nothing to a peer that has to dial it.
type addrRule int

const (
	ruleDial   addrRule = iota // peers connect to it: host required and specific
	ruleListen                 // we bind to it: empty or unspecified host allowed
)

// parseHostPort returns the address or, as its error, the reason that goes in
// the parentheses of `"x" is not HOST:PORT (reason)`.
func parseHostPort(s string, rule addrRule) (hostPort, error) {
	if s == "" {
		return hostPort{}, errors.New("empty")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			switch ae.Err {
			case "missing port in address":
				return hostPort{}, errors.New("missing port")
			case "too many colons in address":
				return hostPort{}, errors.New("too many colons; write an IPv6 address as [ADDR]:PORT")
			}
			return hostPort{}, errors.New(strings.TrimSuffix(ae.Err, " in address"))
		}
		return hostPort{}, err
	}
	p, err := parsePort(port)
	if err != nil {
		return hostPort{}, err
	}
	a := hostPort{port: p}
	switch {
	case host == "":
		if rule == ruleDial {
			return hostPort{}, errors.New("missing host")
		}
		return a, nil
	case isIPLiteral(host):
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return hostPort{}, errors.New("invalid IP address " + strconv.Quote(host))
		}
		if rule == ruleDial && ip.IsUnspecified() {
			return hostPort{}, addrUseError(ip.String() + " means every interface; peers need an address they can connect to")
		}
		a.ip, a.host = ip, ip.String()
	default:
		if reason := checkHostname(host); reason != "" {
			return hostPort{}, errors.New(reason)
		}
		a.host = strings.ToLower(strings.TrimSuffix(host, "."))
	}
	return a, nil
}

// isIPLiteral decides which grammar a host is held to. Anything of digits and
// dots is taken as an attempted IPv4 address, so that a typo such as
// 10.0.0.256 is reported as a bad address instead of being looked up in DNS.
func isIPLiteral(host string) bool {
	if strings.Contains(host, ":") {
		return true
	}
	return strings.Trim(host, "0123456789.") == ""
}

// checkHostname applies the letters-digits-hyphen rule (plus underscore,
// which real networks use), returning why the name is unusable or "".
func checkHostname(host string) string {
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return "host name longer than 253 characters"
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return "host name " + strconv.Quote(host) + " has an empty label"
		}
		if len(label) > 63 {
			return "host name label longer than 63 characters"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "host " + strconv.Quote(host) + " is neither an IP address nor a host name"
			}
		}
	}
	return ""
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("port " + strconv.Quote(s) + " is not a number")
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, errors.New("port " + s + " is outside 1..65535")
	}
	return p, nil
}

// isLoopback reports whether a listener on a is reachable only from this
// machine. A host name other than localhost may resolve anywhere, so it does
// not count.
func (a hostPort) isLoopback() bool {
	if a.ip.IsValid() {
		return a.ip.IsLoopback()
	}
	return a.host == "localhost"
}

// overlaps reports whether two listeners would fight over one socket, which
// happens when the ports match and either binds every interface.
func (a hostPort) overlaps(b hostPort) bool {
	if a.port != b.port {
		return false
	}
	wild := func(h hostPort) bool { return h.host == "" || h.ip.IsValid() && h.ip.IsUnspecified() }
	return a.host == b.host || wild(a) || wild(b)
}
