package vip

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability bits, from linux/capability.h.
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// checkCaps says which of the capabilities the driver needs this process
// lacks: CAP_NET_ADMIN to add and remove addresses, CAP_NET_RAW for the
// packet socket of gratuitous ARP and the ICMPv6 socket of neighbour
// advertisements. Failing at start with the name of what is missing beats
// failing at the first promote with EPERM.
func checkCaps(needRaw bool) error {
	eff, err := effectiveCaps()
	if err != nil {
		// Without /proc the kernel will still say no at the first
		// attempt; do not refuse to start on a guess.
		return nil
	}
	var missing []string
	if eff&(1<<capNetAdmin) == 0 {
		missing = append(missing, "CAP_NET_ADMIN (to add and remove the addresses)")
	}
	if needRaw && eff&(1<<capNetRaw) == 0 {
		missing = append(missing, "CAP_NET_RAW (to send gratuitous ARP and neighbour advertisements)")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing %s: run the driver as root, or give it the capabilities (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)",
		strings.Join(missing, " and "))
}

// effectiveCaps reads this process's effective capability set.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/self/status has no CapEff line")
}
