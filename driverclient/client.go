package driverclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/boottime"
	"github.com/clustd/clustd/internal/secretfile"
)

// State is what the daemon says this machine is, as Trigger must act on it.
type State struct {
	// Node is the id of this machine's daemon.
	Node string
	// Role is the daemon's role: driverproto.RoleMaster, RoleFollower or
	// RoleCandidate.
	Role string
	// Master is the id of the node the daemon believes is master, or empty
	// when it does not know.
	Master string
	// IsMaster says whether the driver must act as master.
	IsMaster bool
	// Term is the fencing token: it only grows, and a downstream system can
	// refuse a master presenting an older one.
	Term uint64
	// LeaseDeadline is the CLOCK_BOOTTIME reading at which the lease ends
	// unless renewed. It is zero unless IsMaster.
	LeaseDeadline time.Duration
	// StopDeadline is, while IsMaster, the CLOCK_BOOTTIME reading by which
	// a demote that begins because the lease ran out must have finished:
	// the next master's drivers may start soon after. Zero when the daemon
	// gave none. The context of such a demote carries this deadline.
	StopDeadline time.Duration
	// Members is the cluster as the daemon last saw it.
	Members []driverproto.Member
	// Reason says why the state changed, for logs.
	Reason string
	// RoleName is the role the state is of ("master" in a cluster without
	// roles:; empty from a daemon from before roles).
	RoleName string
	// Planned, on a demote, says it is a planned hand-over: the daemon
	// waits up to Options.DemoteTimeout for it and keeps renewing
	// StopDeadline meanwhile.
	Planned bool
	// Local is true when the library made this state itself (the lease ran
	// out, or Run is stopping) rather than the daemon.
	Local bool
}

// Driver acts out the master role on this machine.
type Driver interface {
	// Trigger brings the machine to state s: act as master when s.IsMaster,
	// stop acting as master otherwise. It is never called twice at once,
	// and it should return soon after ctx is cancelled, which happens when a
	// promote is overtaken by a demote or by the end of the lease. The error
	// is reported to the daemon in the acknowledgement of s.
	Trigger(ctx context.Context, s State) error
}

// TriggerFunc is a function that implements Driver.
type TriggerFunc func(ctx context.Context, s State) error

// Trigger calls f(ctx, s).
func (f TriggerFunc) Trigger(ctx context.Context, s State) error { return f(ctx, s) }

// Options configures a Client. Secret and Name are required.
type Options struct {
	// Addr is the daemon's local listener, host:port. The default is
	// "127.0.0.1:3001".
	Addr string
	// TLS, when set, makes the connection wss:// with this configuration:
	// needed for a daemon whose local listener has a certificate
	// (http.tls_cert_file), as one listening beyond loopback must.
	TLS *tls.Config
	// Secret is the cluster secret, or the drivers secret when the daemon
	// has one; at least 32 bytes. ReadSecretFile reads it as the daemon
	// does.
	Secret []byte
	// Name says what the driver does, for instance "web" or "vip". The id
	// sent to the daemon is Name, a dash and 8 random hex digits, so that
	// two copies of a driver never clash.
	Name string
	// Required declares the driver required. The declaration alone does
	// nothing: the node's configuration must name the driver in
	// drivers.required, and then the node is ineligible for master while
	// no healthy driver of this Name is connected to it. A daemon logs a
	// declaration its configuration does not back.
	Required bool
	// DemoteTimeout is how long this driver's demote may take at most: for
	// a process, the time it is given to stop plus the wait after SIGKILL.
	// It is declared to the daemon, which waits that long for the
	// driver's acknowledgement in a planned hand-over and refuses a driver
	// that declares more than its demote_timeout; and the context of a
	// demote the daemon asks for carries it as a deadline. Zero declares
	// nothing: the daemon's demote_timeout bounds the wait.
	DemoteTimeout time.Duration
	// Role names the role the driver serves, in a cluster whose daemons
	// elect several (roles: in their configuration); empty serves the
	// first role. A daemon that has no such role refuses the driver, and
	// so does a daemon from before roles: the driver never acts on
	// another role's states.
	Role string
	// OnEvent, if set, asks the daemon for its event stream and receives
	// it. It is called from a goroutine of its own, one event at a time and
	// in order; events that arrive while it is busy are queued, and dropped
	// with a warning when the queue is full, so that a slow monitor never
	// holds up states.
	OnEvent func(driverproto.Event)
	// Logger receives the client's logs. The default is slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before a reconnect: it
	// doubles from MinBackoff up to MaxBackoff, and the actual wait is drawn
	// uniformly below that bound so that drivers restarted together do not
	// reconnect together. The defaults are 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Clock reads CLOCK_BOOTTIME, the clock lease deadlines are given in.
	// The default reads it as the daemon does; tests replace it.
	Clock func() time.Duration
}

// Defaults for Options and for the connection.
const (
	DefaultAddr       = "127.0.0.1:3001"
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second

	// minSecretLen matches the daemon's minimum: a shorter secret would be
	// refused there anyway, and failing here says why.
	minSecretLen = 32
	// idSuffixLen is the number of random bytes in the id suffix.
	idSuffixLen = 4

	// The daemon pings every 5 seconds; three missed pings is a dead
	// connection. The client pings at the same period, so a connection to
	// a daemon that does not ping stays up too.
	defaultPingPeriod = 5 * time.Second
	// writeWait bounds every write: a daemon that stops reading must not
	// stall the client.
	defaultWriteWait = 5 * time.Second
	// handshakeTimeout bounds the dial and the challenge-hello-welcome
	// exchange.
	defaultHandshakeTimeout = 10 * time.Second
	// finalDemoteTimeout bounds the demote Run makes when its context ends.
	defaultFinalDemoteTimeout = 10 * time.Second
	// maxTextLen bounds the error and reason texts sent to the daemon, so
	// that a driver's long error message cannot exceed the message limit.
	maxTextLen = 1024
	// sendQueueLen is how many messages may wait for the writer. Beyond
	// that the daemon is not reading, and the connection is dropped rather
	// than letting the queue, or the caller, block.
	sendQueueLen = 256
	// eventQueueLen is how many events may wait for OnEvent.
	eventQueueLen = 256
)

// A Client follows one daemon on behalf of one Driver. Create it with New
// and start it with Run.
type Client struct {
	opts   Options
	driver Driver
	id     string
	log    *slog.Logger

	// Timing of the connection; fields rather than constants so tests can
	// shorten them.
	pingPeriod         time.Duration
	writeWait          time.Duration
	handshakeTimeout   time.Duration
	finalDemoteTimeout time.Duration
	// newTimer makes the lease timer; tests replace it with one driven by
	// their fake clock, so lease expiry happens exactly when they say.
	newTimer func(time.Duration) timer
	// jitter draws the reconnect wait below its bound.
	jitter func(bound time.Duration) time.Duration
	// afterState, if set, is called by the loop once it has dealt with the
	// state of sequence number seq; tests wait on it.
	afterState func(seq uint64)

	mu      sync.Mutex
	running bool
	cur     *conn // the welcomed connection, if any
	health  *driverproto.Message
}

// New checks opts and returns a Client that will run d.
func New(opts Options, d Driver) (*Client, error) {
	if d == nil {
		return nil, errors.New("driverclient: the Driver is nil")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return nil, fmt.Errorf("driverclient: Addr %q: want host:port: %v", opts.Addr, err)
	}
	if len(opts.Secret) < minSecretLen {
		return nil, fmt.Errorf("driverclient: the secret is %d bytes long; it must be at least %d (the daemon's secret file, read with ReadSecretFile)", len(opts.Secret), minSecretLen)
	}
	// The id must fit the protocol's 96 characters with its suffix.
	if maxName := 96 - 1 - 2*idSuffixLen; len(opts.Name) > maxName || !driverproto.ValidID(opts.Name) {
		return nil, fmt.Errorf("driverclient: Name %q: need 1-%d of [A-Za-z0-9._-]", opts.Name, maxName)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("driverclient: backoff from %v to %v: need 0 < MinBackoff <= MaxBackoff", opts.MinBackoff, opts.MaxBackoff)
	}
	if opts.Clock == nil {
		opts.Clock = boottime.Now
	}
	if opts.Role != "" && !driverproto.ValidRoleName(opts.Role) {
		return nil, fmt.Errorf("driverclient: Role %q: need 1-32 of [A-Za-z0-9_-], starting with a letter or digit", opts.Role)
	}
	if opts.DemoteTimeout < 0 {
		return nil, fmt.Errorf("driverclient: DemoteTimeout %v: must not be negative", opts.DemoteTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// The caller may reuse its buffer; the secret must not change under us.
	opts.Secret = bytes.Clone(opts.Secret)

	suffix := make([]byte, idSuffixLen)
	if _, err := io.ReadFull(rand.Reader, suffix); err != nil {
		return nil, fmt.Errorf("driverclient: drawing the id suffix: %v", err)
	}
	id := opts.Name + "-" + hex.EncodeToString(suffix)
	return &Client{
		opts:               opts,
		driver:             d,
		id:                 id,
		log:                opts.Logger.With("driver", id),
		pingPeriod:         defaultPingPeriod,
		writeWait:          defaultWriteWait,
		handshakeTimeout:   defaultHandshakeTimeout,
		finalDemoteTimeout: defaultFinalDemoteTimeout,
		newTimer:           newRealTimer,
		jitter:             func(bound time.Duration) time.Duration { return mrand.N(bound) },
	}, nil
}

// ID returns the id this client announces to the daemon: Name, a dash and
// 8 random hex digits.
func (c *Client) ID() string { return c.id }

// Run connects to the daemon and follows it until ctx ends, reconnecting
// for ever. When ctx ends while the driver is master, or may be (a promote
// was started), Run cancels the promote and calls Trigger with a demote,
// bounded to 10 seconds, before it returns. It returns nil then; it returns
// an error only if the Client is already running.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("driverclient: Run called while the client is already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	// The connection outlives ctx until the loop is done, so that the
	// daemon still gets the acknowledgement of a demote that finishes
	// during shutdown: without it, it would wait for the lease to run out
	// before handing leadership over.
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	states := make(chan inState)
	var wg sync.WaitGroup
	var events chan driverproto.Event
	if c.opts.OnEvent != nil {
		events = make(chan driverproto.Event, eventQueueLen)
		wg.Go(func() {
			for ev := range events {
				c.opts.OnEvent(ev)
			}
		})
	}
	var connWG sync.WaitGroup
	connWG.Go(func() { c.connectLoop(connCtx, states, events) })

	c.loop(ctx, states)

	// The demote, if any, is done: now the daemon may see the driver go.
	stopConns()
	connWG.Wait()
	if events != nil {
		close(events)
	}
	wg.Wait()
	return nil
}

// SetHealth reports whether the driver can do its work. It is sent to the
// daemon at once if connected, and again after every reconnect; until it is
// first called nothing is sent, and the daemon counts the driver healthy.
// A required driver that reports itself unhealthy makes its node
// ineligible for master.
func (c *Client) SetHealth(ok bool, reason string) {
	m := &driverproto.Message{Type: driverproto.TypeHealth, OK: driverproto.Bool(ok), Reason: truncate(reason)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health = m
	// Queued under the lock, so that health reports reach the daemon in
	// the order they were made even when a reconnect races with them.
	if c.cur != nil {
		c.cur.send(*m)
	}
}

// setConn makes cn the connection SetHealth writes to (nil for none), and
// sends it the last health report.
func (c *Client) setConn(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = cn
	if cn != nil && c.health != nil {
		cn.send(*c.health)
	}
}

// Run creates a Client with New and runs it until ctx ends.
func Run(ctx context.Context, opts Options, d Driver) error {
	c, err := New(opts, d)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// ReadSecretFile reads a secret file the way the daemon does: its contents
// are the secret, less one final line ending that editors add unasked. Like
// the daemon, it refuses a file that group or others can access or that
// another user owns, naming the chmod or chown that fixes it. It does not
// check the length; New does.
func ReadSecretFile(path string) ([]byte, error) {
	return secretfile.Read(path)
}

// truncate shortens s to about maxTextLen bytes, marking the cut.
func truncate(s string) string {
	if len(s) <= maxTextLen {
		return s
	}
	return cutUTF8(s, maxTextLen) + "…"
}
