package vipnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Prefix starts the name of every namespace the rig makes, followed by the
// pid of the process that made it.
const Prefix = "vip-"

// Available reports why the rig cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root (network namespaces need it)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip is not installed (apt-get install iproute2)")
	}
	return nil
}

// handleAt opens a netlink handle into the named namespace.
func handleAt(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
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
