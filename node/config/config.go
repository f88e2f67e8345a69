package config

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
)

// Limits of the configuration file.
const (
	// MaxMembers bounds the member list; every node talks to every other,
	// and elections are designed for small clusters.
	MaxMembers = 64
	// MinSecretLen is the shortest accepted secret, in bytes: peers and
	// drivers authenticate with it, so it must resist offline guessing.
	MinSecretLen = 32
	// MaxPriority is the largest member priority.
	MaxPriority = 1000
)

// Defaults of the optional fields.
const (
	// DefaultHTTPListen is loopback-only because the listener accepts
	// commands (transfer, maintenance) that move the master role.
	DefaultHTTPListen = "127.0.0.1:3001"
	// DefaultDemoteTimeout is the default of demote_timeout: the longest
	// demote a driver may declare, and the wait for a driver that declares
	// none. Long enough for the built-in drivers' defaults (exec: a 10 s
	// stop timeout and the kill wait; shell: a 30 s script timeout); a
	// driver that declares less is waited for only that long.
	DefaultDemoteTimeout = 30 * time.Second
	// DefaultPreemptHoldDown is the default of preempt.hold_down.
	DefaultPreemptHoldDown = 30 * time.Second
	// DefaultLogLevel is the default of log_level.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the default of log_format.
	DefaultLogFormat = "text"
)

// Upper bounds on durations. Nobody wants these values; the bounds keep the
// arithmetic done on them (ranked timeouts are ElectionMin + rank×Step,
// leases are scaled by the drift) far from overflowing.
const (
	maxTimingDuration = time.Hour
	maxOtherDuration  = 24 * time.Hour
)

// The config file is read whole into memory; anything this large is not a
// clustd configuration, and refusing it keeps a mistaken path from eating
// memory.
const maxConfigSize = 1 << 20

// A secret file larger than this is almost certainly the wrong file.
const maxSecretFileSize = 64 << 10

// Member is one node of the cluster.
type Member struct {
	// ID is the node's name, unique in the cluster.
	ID string
	// Address is where peers connect to the node, as HOST:PORT in canonical
	// form (IP addresses normalised, host names lower-cased, no leading
	// zeros in the port), so that equal addresses compare equal.
	Address string
	// Witness members vote but never become master.
	Witness bool
	// Priority ranks the member among candidates for master and, with
	// preemption on, lets a higher-priority node take the role back.
	Priority int
}

// Config is one node's resolved configuration: defaults applied, paths
// absolute, secrets loaded and timing validated.
type Config struct {
	// Path is the file the configuration came from, as given to Load or
	// Parse.
	Path string
	// ID is this node's id; it is one of Members.
	ID string
	// Listen is the peer TCP listen address.
	Listen string
	// ListenSet says that listen was given explicitly, rather than taken
	// from this node's member address.
	ListenSet bool
	// Advertise is the address this node gives peers for itself.
	Advertise string
	// DataDir holds the persisted term and vote. It is absolute, like
	// every path in Config except Path.
	DataDir string
	// Secret authenticates peers to each other.
	Secret []byte
	// SecretFile and DriversSecretFile are the absolute paths the secrets
	// were read from, empty for an inline secret or no separate drivers
	// secret.
	SecretFile, DriversSecretFile string
	// DriversSecret authenticates local drivers. It is Secret unless a
	// separate drivers_secret_file is configured.
	DriversSecret []byte
	// AdminTokenFile is admin_token_file made absolute, or empty.
	AdminTokenFile string
	// AdminToken is the bearer token admin requests carry, from
	// admin_token_file; empty when there is none, and the token is then
	// derived from Secret (api.AdminToken).
	AdminToken string
	// InlineSecret says that the peer secret was written in the
	// configuration file itself rather than in a secret file.
	InlineSecret bool
	// Warnings are problems that do not stop the node from running but
	// deserve the operator's attention, such as a secret in a file others
	// can read. clustd run logs them.
	Warnings []string
	// Members lists the cluster's nodes in file order.
	Members []Member
	// Timing is the election timing: the chosen profile with any explicit
	// overrides applied. It has passed election.Timing.Validate.
	Timing election.Timing
	// Preempt lets a higher-priority node take the master role from a
	// lower-priority master.
	Preempt bool
	// PreemptHoldDown is the hold-down time of preemption, which keeps the
	// master role from flapping between nodes.
	PreemptHoldDown time.Duration
	// HTTPListen is the local listener for drivers, admin and metrics.
	HTTPListen string
	// TLSCertFile and TLSKeyFile (http.tls_cert_file, http.tls_key_file)
	// make the local listener speak HTTPS; listening beyond loopback
	// requires them. TLSCertificate is the pair loaded (by a load that
	// reads every secret).
	TLSCertFile, TLSKeyFile string
	TLSCertificate          *tls.Certificate
	// RequiredDrivers (drivers.required) names the drivers without which
	// the node must not be master: while one of them has no healthy
	// connection, the node is ineligible. Only this list makes a driver
	// required; a driver's own claim to be does not.
	RequiredDrivers []string
	// DemoteTimeout bounds how long the master waits for its drivers to
	// acknowledge a demotion during a transfer.
	DemoteTimeout time.Duration
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
	// SeedDrivers lets the drivers written for the 2018 daemon connect at
	// the local listener's root path (http.seed_drivers).
	SeedDrivers bool
	// SeedDriverGrace is seed_driver_grace as set, or 0 for the default;
	// SeedGrace resolves it.
	SeedDriverGrace time.Duration
	// Roles are the singletons the cluster elects, each an election of its
	// own (roles.go), as roles: lists them; nil without roles:, and then
	// RoleList gives the one role DefaultRole.
	Roles []Role
}

// Self returns this node's own entry in Members.
func (c *Config) Self() Member {
	for _, m := range c.Members {
		if m.ID == c.ID {
			return m
		}
	}
	return Member{}
}

// MembersHash returns a digest of everything the nodes of a cluster must
// agree on: the member list (in id order, so that listing order does not
// matter) and the election timing. Peers exchange it when they connect and
// refuse each other when it differs, because nodes that disagree about who
// votes, or about how long a lease lasts, could elect two masters at once.
func (c *Config) MembersHash() [32]byte {
	ms := slices.Clone(c.Members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	b := []byte("clustd members v1\x00")
	b = binary.BigEndian.AppendUint32(b, uint32(len(ms)))
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	for _, m := range ms {
		str(m.ID)
		str(m.Address)
		w := byte(0)
		if m.Witness {
			w = 1
		}
		b = append(b, w)
		b = binary.BigEndian.AppendUint64(b, uint64(int64(m.Priority)))
	}
	t := c.Timing
	// The stop budget is part of the cluster's contract: a node that
	// promoted its drivers sooner than its peers' drivers expect to have
	// stopped would overlap them.
	for _, d := range []time.Duration{t.Heartbeat, t.ElectionMin, t.ElectionMax, t.Step, t.StopBudget} {
		b = binary.BigEndian.AppendUint64(b, uint64(d))
	}
	drift := t.MaxClockDrift
	if drift == 0 {
		drift = math.Copysign(0, 1) // -0 and +0 are the same drift but not the same bits
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(drift))
	b = c.appendRolesHash(b)
	return sha256.Sum256(b)
}

// Secrets says which secret files loading a configuration reads: each
// program reads only the secret it needs, so that each can be given only
// that file.
type Secrets int

const (
	// AllSecrets reads every secret, as the daemon needs.
	AllSecrets Secrets = iota
	// DriversSecretOnly reads only the drivers secret (the peer secret if
	// there is no drivers_secret_file), as a driver needs.
	DriversSecretOnly
	// AdminTokenOnly reads only the admin token (the peer secret if there
	// is no admin_token_file), as the admin commands need.
	AdminTokenOnly
	// NoSecrets reads no secret, for what needs only addresses (clustd
	// status).
	NoSecrets
)

// Load reads and parses the configuration file at path, with every secret.
// See Parse.
func Load(path string) (*Config, error) { return LoadFor(path, AllSecrets) }

// LoadFor is Load reading only the secrets that scope names. It also warns
// (Config.Warnings) when the file holds the secret inline and others can
// read it.
func LoadFor(path string, scope Secrets) (*Config, error) {
	data, err := readFileLimited(path, maxConfigSize)
	if err != nil {
		return nil, &Error{File: displayName(path), Msg: "cannot read configuration: " + describeIOError(err), Err: err}
	}
	c, err := ParseFor(path, data, scope)
	if err != nil {
		return nil, err
	}
	if c.InlineSecret {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s holds the cluster secret inline and its mode %04o lets group or others read it: run chmod 600 %s, or move the secret to a secret_file",
				path, fi.Mode().Perm(), shellQuote(path)))
		}
	}
	return c, nil
}

// Parse parses configuration data that was read from path, with every
// secret. The path names the file in errors and is the base for relative
// data_dir and secret file paths; secret files are read from disk. Every
// error is an *Error.
func Parse(path string, data []byte) (*Config, error) { return ParseFor(path, data, AllSecrets) }

// ParseFor is Parse reading only the secrets that scope names.
func ParseFor(path string, data []byte, scope Secrets) (*Config, error) {
	p := &parser{file: displayName(path), path: path, scope: scope}
	if len(data) > maxConfigSize {
		return nil, &Error{File: p.file, Msg: fmt.Sprintf("%d bytes is too large for a configuration file (the limit is %d)", len(data), maxConfigSize)}
	}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	raw, err := p.decode(root)
	if err != nil {
		return nil, err
	}
	return p.resolve(raw)
}

func displayName(path string) string {
	if path == "" {
		return "<config>"
	}
	return path
}

// readFileLimited reads a regular file of at most limit bytes. It checks the
// type first because opening a FIFO or a device named by mistake would block
// or never end.
func readFileLimited(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

var errNotRegular = errors.New("not a regular file")

// describeIOError drops the operation and path that *fs.PathError repeats,
// since the message already names the file.
func describeIOError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
