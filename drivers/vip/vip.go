// Package vip moves floating IP addresses with the clustd master role.
//
// On promote the driver adds each address to the interface through netlink
// and announces it: gratuitous ARP for IPv4, unsolicited neighbour
// advertisements for IPv6, so that switches and clients forget the old
// master's MAC at once instead of when their caches expire. It announces
// again every refresh period while master, and at every new term even if
// the address never left, since a switch may have learnt another port
// meanwhile. On demote, including the one driverclient makes up when the
// lease runs out, it removes the addresses before the demote is
// acknowledged, so the next master adds them only once they are gone here.
//
// At start it removes any of its addresses it finds on the interface: a
// driver killed while master leaves them behind, and nothing proves this
// node still holds a lease until the daemon says so. If the node is master
// the promote that follows the connection adds them back.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/drivers/common"
)

// Defaults of Options.
const (
	DefaultGARPCount    = 3
	DefaultGARPInterval = 100 * time.Millisecond
	DefaultRefresh      = 30 * time.Second
)

// DemoteTimeout is the longest a demote takes: stopping the announcer,
// which is between two packets, and a few netlink requests. It is declared
// to the daemon through driverclient.Options.DemoteTimeout.
const DemoteTimeout = 2 * time.Second

// Options configures a Driver. Interface and Addresses are required.
type Options struct {
	// Interface is the name of the interface the addresses go on.
	Interface string
	// Addresses are the floating addresses with their prefix length, as in
	// 10.0.0.100/24 or 2001:db8::100/64.
	Addresses []netip.Prefix
	// GARPCount is how many announcements are sent on promote, GARPInterval
	// apart. Zero sends none (and the driver then needs no CAP_NET_RAW).
	GARPCount    int
	GARPInterval time.Duration
	// Refresh is how often the addresses are announced again while master;
	// zero never.
	Refresh time.Duration
	// Logger receives the driver's logs; the default is slog.Default().
	Logger *slog.Logger
	// SetHealth, if set, receives the driver's health as it changes; the
	// reason names the addresses held.
	SetHealth func(ok bool, reason string)
	// SkipCapCheck leaves out the check of CAP_NET_ADMIN and CAP_NET_RAW at
	// New, for tests that give the driver an interface of their own.
	SkipCapCheck bool
}

// Status is what the driver is doing, as its status endpoint shows it.
type Status struct {
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses"`
	// Held lists the addresses this driver has on the interface now.
	Held []string `json:"held"`
	// Master and Term are the last state acted on.
	Master bool   `json:"master"`
	Term   uint64 `json:"term"`
	// LastAnnounce is when the addresses were last announced, and
	// LastAnnounceTerm in which term; Announcements counts the rounds.
	LastAnnounce     time.Time `json:"last_announce,omitzero"`
	LastAnnounceTerm uint64    `json:"last_announce_term,omitempty"`
	Announcements    uint64    `json:"announcements"`
	// LastError is the last failure to add, remove or announce, if any.
	LastError string `json:"last_error,omitempty"`
}

// Driver adds, announces and removes the floating addresses. It implements
// driverclient.Driver.
type Driver struct {
	opts   Options
	log    *slog.Logger
	health *common.Health

	// mu is held for a whole Trigger.
	mu           sync.Mutex
	stopAnnounce context.CancelFunc
	announceDone chan struct{}

	smu    sync.Mutex
	status Status
}

// New checks opts and the process's capabilities, removes leftover
// addresses and returns a Driver.
func New(opts Options) (*Driver, error) {
	if opts.Interface == "" {
		return nil, errors.New("vip: no interface")
	}
	if len(opts.Addresses) == 0 {
		return nil, errors.New("vip: no address")
	}
	for i, p := range opts.Addresses {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("vip: address %v: want an address with its prefix length, as 10.0.0.100/24", p)
		}
		if p.Addr().Is4In6() {
			opts.Addresses[i] = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if slices.Contains(opts.Addresses[:i], opts.Addresses[i]) {
			return nil, fmt.Errorf("vip: address %v given twice", p)
		}
	}
	if opts.GARPCount < 0 {
		return nil, fmt.Errorf("vip: garp count %d: must not be negative", opts.GARPCount)
	}
	if opts.GARPCount > 1 && opts.GARPInterval <= 0 {
		return nil, fmt.Errorf("vip: garp interval %v: must be positive", opts.GARPInterval)
	}
	if opts.Refresh < 0 {
		return nil, fmt.Errorf("vip: refresh %v: must not be negative", opts.Refresh)
	}
	if !opts.SkipCapCheck {
		if err := checkCaps(opts.GARPCount > 0); err != nil {
			return nil, err
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{opts: opts, log: log, health: common.NewHealth(opts.SetHealth)}
	d.status.Interface = opts.Interface
	for _, p := range opts.Addresses {
		d.status.Addresses = append(d.status.Addresses, p.String())
	}
	d.status.Held = []string{}
	if _, err := netlink.LinkByName(opts.Interface); err != nil {
		// Not fatal: the interface may be created later (a VLAN, a bond);
		// it is looked up again at every state.
		log.Warn("the interface is not there now", "interface", opts.Interface, "err", err)
		return d, nil
	}
	removed, err := d.remove()
	if err != nil {
		return nil, fmt.Errorf("vip: removing leftover addresses: %w", err)
	}
	if len(removed) > 0 {
		log.Warn("removed leftover addresses: this node holds no lease for them until the daemon says so",
			"interface", opts.Interface, "addresses", strings.Join(removed, " "))
	}
	return d, nil
}

// Status returns a copy of the driver's status.
func (d *Driver) Status() Status {
	d.smu.Lock()
	defer d.smu.Unlock()
	s := d.status
	s.Addresses = slices.Clone(s.Addresses)
	s.Held = slices.Clone(s.Held)
	return s
}

// Trigger adds and announces the addresses when s.IsMaster, and removes
// them otherwise. A master state of a new term announces again even when
// the addresses are already there. A demote removes them even if the
// driver never added them, so that whatever put them there, they go.
func (d *Driver) Trigger(ctx context.Context, s driverclient.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopAnnouncer()
	if !s.IsMaster {
		// The demote must finish whatever ctx says: the addresses going
		// away is the point of it.
		removed, err := d.remove()
		d.setStatus(func(st *Status) {
			st.Master, st.Term = false, s.Term
			if err != nil {
				st.LastError = err.Error()
			}
		})
		if err != nil {
			d.health.Set(false, err.Error())
			return err
		}
		if len(removed) > 0 {
			d.log.Info("addresses removed", "term", s.Term, "addresses", strings.Join(removed, " "), "reason", s.Reason)
		}
		d.health.Set(true, "holding no address")
		return nil
	}

	st := d.Status()
	if st.Master && st.Term == s.Term && len(st.Held) == len(d.opts.Addresses) {
		return nil
	}
	ifi, err := d.add()
	if err != nil {
		d.setStatus(func(st *Status) { st.LastError = err.Error() })
		d.health.Set(false, err.Error())
		return err
	}
	d.setStatus(func(st *Status) { st.Master, st.Term = true, s.Term })
	d.log.Info("addresses added", "term", s.Term, "interface", d.opts.Interface, "addresses", strings.Join(d.Status().Held, " "))
	// The first round goes out before the promote is acknowledged: it is
	// what turns the clients to this node.
	if d.opts.GARPCount > 0 {
		if err := d.announce(ifi, s.Term); err != nil {
			// The address works for whoever asks; only stale caches keep
			// pointing elsewhere until they expire. Worth a loud warning
			// and an unhealthy report, not a failed promote.
			d.log.Error("announcing the addresses failed", "err", err)
			d.health.Set(false, "announcing: "+err.Error())
		} else {
			d.health.Set(true, "holding "+strings.Join(d.Status().Held, " ")+" on "+d.opts.Interface)
		}
	} else {
		d.health.Set(true, "holding "+strings.Join(d.Status().Held, " ")+" on "+d.opts.Interface)
	}
	d.startAnnouncer(ifi, s.Term)
	return nil
}

// Close stops the announcer. It does not remove the addresses: the final
// demote of driverclient.Client.Run does.
func (d *Driver) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopAnnouncer()
}

func (d *Driver) setStatus(f func(*Status)) {
	d.smu.Lock()
	defer d.smu.Unlock()
	f(&d.status)
}

// startAnnouncer sends the remaining GARPCount-1 rounds, then one every
// Refresh, until stopAnnouncer.
func (d *Driver) startAnnouncer(ifi *net.Interface, term uint64) {
	if d.opts.GARPCount <= 1 && d.opts.Refresh <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.stopAnnounce, d.announceDone = cancel, done
	go func() {
		defer close(done)
		wait := func(p time.Duration) bool {
			t := time.NewTimer(p)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		}
		for i := 1; i < d.opts.GARPCount; i++ {
			if !wait(d.opts.GARPInterval) {
				return
			}
			d.announceLogged(ifi, term)
		}
		if d.opts.Refresh <= 0 || d.opts.GARPCount == 0 {
			return
		}
		for wait(d.opts.Refresh) {
			d.announceLogged(ifi, term)
		}
	}()
}

func (d *Driver) announceLogged(ifi *net.Interface, term uint64) {
	if err := d.announce(ifi, term); err != nil {
		d.log.Warn("announcing the addresses failed", "err", err)
	}
}

// stopAnnouncer stops the announcer and waits for it, so that nothing is
// announced once the addresses are gone.
func (d *Driver) stopAnnouncer() {
	if d.stopAnnounce == nil {
		return
	}
	d.stopAnnounce()
	<-d.announceDone
	d.stopAnnounce, d.announceDone = nil, nil
}

// add puts every address on the interface. Replace rather than add makes it
// idempotent: an address already there is no error.
func (d *Driver) add() (*net.Interface, error) {
	link, err := netlink.LinkByName(d.opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", d.opts.Interface, err)
	}
	var held []string
	var errs []error
	for _, p := range d.opts.Addresses {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			// Without NODAD the address is tentative for a second or more
			// and nothing can use it: the failover would wait for it.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(link, a); err != nil {
			errs = append(errs, fmt.Errorf("adding %v to %s: %w", p, d.opts.Interface, explain(err)))
			continue
		}
		held = append(held, p.String())
	}
	d.setStatus(func(st *Status) { st.Held = held })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByIndex(link.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", d.opts.Interface, err)
	}
	return ifi, nil
}

// remove takes every configured address off the interface, whoever put it
// there, and returns those it removed.
func (d *Driver) remove() ([]string, error) {
	link, err := netlink.LinkByName(d.opts.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			// No interface, no address on it.
			d.setStatus(func(st *Status) { st.Held = []string{} })
			return nil, nil
		}
		return nil, fmt.Errorf("interface %s: %w", d.opts.Interface, err)
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing the addresses of %s: %w", d.opts.Interface, explain(err))
	}
	var removed, left []string
	var errs []error
	for _, p := range d.opts.Addresses {
		present := slices.ContainsFunc(have, func(a netlink.Addr) bool {
			return a.IPNet != nil && a.IPNet.IP.Equal(p.Addr().AsSlice())
		})
		if !present {
			continue
		}
		err := netlink.AddrDel(link, &netlink.Addr{IPNet: prefixNet(p)})
		if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("removing %v from %s: %w", p, d.opts.Interface, explain(err)))
			left = append(left, p.String())
			continue
		}
		removed = append(removed, p.String())
	}
	d.setStatus(func(st *Status) {
		if left == nil {
			left = []string{}
		}
		st.Held = left
	})
	return removed, errors.Join(errs...)
}

// announce sends one round: a gratuitous ARP request for each IPv4
// address and an unsolicited, overriding neighbour advertisement to all
// nodes for each IPv6 address.
func (d *Driver) announce(ifi *net.Interface, term uint64) error {
	var v4, v6 []netip.Addr
	for _, p := range d.opts.Addresses {
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	var errs []error
	if len(v4) > 0 {
		errs = append(errs, garp(ifi, v4))
	}
	if len(v6) > 0 {
		errs = append(errs, unsolicitedNA(ifi, v6))
	}
	err := errors.Join(errs...)
	d.setStatus(func(st *Status) {
		if err != nil {
			st.LastError = err.Error()
			return
		}
		st.LastAnnounce, st.LastAnnounceTerm = time.Now(), term
		st.Announcements++
	})
	if err == nil {
		d.log.Debug("addresses announced", "term", term)
	}
	return err
}

// garp broadcasts an ARP request from and for each address: receivers with
// an entry for it take the sender's MAC, and switches learn the port.
func garp(ifi *net.Interface, addrs []netip.Addr) error {
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("gratuitous ARP on %s: %w", ifi.Name, explain(err))
	}
	defer c.Close()
	var errs []error
	for _, a := range addrs {
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, a, ethernet.Broadcast, a)
		if err == nil {
			err = c.WriteTo(p, ethernet.Broadcast)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("gratuitous ARP for %v on %s: %w", a, ifi.Name, explain(err)))
		}
	}
	return errors.Join(errs...)
}

// allNodes is ff02::1, where unsolicited advertisements go (RFC 4861 7.2.6).
var allNodes = netip.MustParseAddr("ff02::1")

// unsolicitedNA advertises each address to all nodes with the override
// flag, so that receivers replace the MAC they had for it.
func unsolicitedNA(ifi *net.Interface, addrs []netip.Addr) error {
	// Sent from the floating address itself: it was added without DAD and
	// is usable at once, where the link-local address may still be
	// tentative on an interface that just came up.
	c, _, err := ndp.Listen(ifi, ndp.Addr(addrs[0].String()))
	if err != nil {
		var lerr error
		if c, _, lerr = ndp.Listen(ifi, ndp.LinkLocal); lerr != nil {
			return fmt.Errorf("neighbour advertisement on %s: %w", ifi.Name, explain(err))
		}
	}
	defer c.Close()
	var errs []error
	for _, a := range addrs {
		m := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: a,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		}
		if err := c.WriteTo(m, nil, allNodes); err != nil {
			errs = append(errs, fmt.Errorf("neighbour advertisement for %v on %s: %w", a, ifi.Name, explain(err)))
		}
	}
	return errors.Join(errs...)
}

// explain adds the missing capability to a permission error.
func explain(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w (the driver needs CAP_NET_ADMIN and CAP_NET_RAW)", err)
	}
	return err
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ParseAddress parses an --address value: an address with its prefix
// length. A bare address gets /32 or /128.
func ParseAddress(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: want an address with its prefix length, as 10.0.0.100/24 or 2001:db8::100/64", s)
		}
		s += "/" + fmt.Sprint(a.BitLen())
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: want an address with its prefix length, as 10.0.0.100/24 or 2001:db8::100/64", s)
	}
	if a := p.Addr(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return netip.Prefix{}, fmt.Errorf("%q: not an address a host can hold", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: no zone, please: the interface is --interface", s)
	}
	return p, nil
}
