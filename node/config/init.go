package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/clustd/clustd/election"
	"golang.org/x/sys/unix"
)

// InitOptions are the inputs of clustd init. Errors name the command-line
// flag each field comes from.
type InitOptions struct {
	// Dir receives the files; it is created (mode 0700) if missing.
	Dir string
	// Members is ID=HOST:PORT[,ID=HOST:PORT…], in the order that assigns
	// the local HTTP ports.
	Members string
	// Witnesses are the ids of members that vote but never become master.
	Witnesses []string
	// Profile is the timing profile, default or fast; empty means default.
	Profile string
	// Force allows overwriting existing files, the secret included.
	Force bool
	// HTTPPort is the first node's local HTTP port; the others count up
	// from it. Zero means 3001.
	HTTPPort int
}

// InitResult describes what Init wrote.
type InitResult struct {
	// Dir is the directory the files were written to.
	Dir string
	// SecretFile is the peer secret's path.
	SecretFile string
	// DriversSecretFile is the drivers secret's path: drivers need it and
	// nothing else.
	DriversSecretFile string
	// AdminTokenFile is the admin token's path: clustd transfer and
	// clustd maintenance need it and nothing else.
	AdminTokenFile string
	// Nodes lists one entry per member, in member order.
	Nodes []InitNode
	// Files lists every file written, in the order written.
	Files []string
}

// InitNode is one node's configuration file and how to start it.
type InitNode struct {
	// ID is the member's id.
	ID string
	// ConfigFile is the path of the node's configuration file.
	ConfigFile string
	// HTTPListen is the node's local listener for drivers and admin.
	HTTPListen string
	// Command starts the node, ready for a shell.
	Command string
}

// initSecretLen is the number of random bytes in a generated secret: well
// above MinSecretLen even before hex encoding doubles it.
const initSecretLen = 48

// initHTTPPort is the first node's local HTTP port; the others count up
// from it so that a whole cluster can run on one machine for testing.
const initHTTPPort = 3001

// Init writes a new cluster's configuration: a shared secret and one
// configuration file per member, each loadable with Load. It refuses to
// overwrite existing files unless opts.Force is set, and checks that before
// writing anything, so that a refusal leaves the directory as it was. If
// writing fails part way, Init returns with its error a result that lists
// the files already written.
func Init(opts InitOptions) (*InitResult, error) {
	if opts.Dir == "" {
		return nil, errors.New("--dir: required; the directory to write the configuration files to")
	}
	members, err := initMembers(opts)
	if err != nil {
		return nil, err
	}
	profile := opts.Profile
	if profile == "" {
		profile = election.ProfileDefault
	}
	if _, err := election.ProfileTiming(profile); err != nil {
		return nil, fmt.Errorf("--profile: %q is not a timing profile; expected %s or %s", profile, election.ProfileDefault, election.ProfileFast)
	}
	res := &InitResult{
		Dir:               opts.Dir,
		SecretFile:        filepath.Join(opts.Dir, "secret"),
		DriversSecretFile: filepath.Join(opts.Dir, "drivers.secret"),
		AdminTokenFile:    filepath.Join(opts.Dir, "admin.token"),
	}
	secretFiles := []string{res.SecretFile, res.DriversSecretFile, res.AdminTokenFile}
	ymls, err := initConfigs(opts, members, profile, res)
	if err != nil {
		return nil, err
	}

	dir, err := prepareInitDir(opts.Dir, opts.Force, append(secretFiles, pathsOf(res.Nodes)...))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if err := writeSecrets(dir, secretFiles, opts.Force, &res.Files); err != nil {
		return res, err
	}
	if err := writeConfigs(dir, ymls, opts.Force, &res.Files, "generated configuration does not load (only the secrets were written)"); err != nil {
		return res, err
	}
	return res, nil
}

// initMembers reads --members and marks the --witness members.
func initMembers(opts InitOptions) ([]Member, error) {
	members, err := parseMemberList(opts.Members)
	if err != nil {
		return nil, err
	}
	for _, w := range opts.Witnesses {
		i := memberIndex(members, w)
		if i < 0 {
			return nil, fmt.Errorf("--witness: %q is not among the members (%s)", w, strings.Join(memberIDs(members), ", "))
		}
		members[i].Witness = true
	}
	if allWitnesses(members) {
		return nil, errors.New("--witness: every member would be a witness; at least one must be able to become master")
	}
	return members, nil
}

// configFile is a file to write and its contents.
type configFile struct {
	path string
	data []byte
}

// initConfigs renders each member's configuration file, giving the members
// local HTTP ports counting up from opts.HTTPPort, and lists them in
// res.Nodes.
func initConfigs(opts InitOptions, members []Member, profile string, res *InitResult) ([]configFile, error) {
	firstPort := opts.HTTPPort
	if firstPort == 0 {
		firstPort = initHTTPPort
	}
	if firstPort < 1 || firstPort+len(members)-1 > 65535 {
		return nil, fmt.Errorf("--http-port %d: the %d local listeners need ports %d to %d, within 1 to 65535", firstPort, len(members), firstPort, firstPort+len(members)-1)
	}
	var ymls []configFile
	for i, m := range members {
		httpListen := hostPort{host: "127.0.0.1", ip: netip.AddrFrom4([4]byte{127, 0, 0, 1}), port: firstPort + i}
		own, err := parseHostPort(m.Address, ruleDial)
		if err != nil {
			return nil, err // unreachable: parseMemberList checked it
		}
		if own.overlaps(httpListen) {
			return nil, fmt.Errorf("--members: %s's address %s is the port clustd init gives its local HTTP listener (%s); choose another port", m.ID, m.Address, httpListen)
		}
		path := filepath.Join(opts.Dir, m.ID+".yml")
		ymls = append(ymls, configFile{path, nodeYAML(m.ID, members, profile, httpListen.String())})
		res.Nodes = append(res.Nodes, InitNode{
			ID:         m.ID,
			ConfigFile: path,
			HTTPListen: httpListen.String(),
			Command:    "clustd run --config " + shellQuote(path),
		})
	}
	return ymls, nil
}

// writeSecrets writes a new random secret to each of paths, appending each
// path written to written. Three secrets, so that each program can be
// given only its own: the peers', the drivers' and the admin commands'.
func writeSecrets(dir *os.File, paths []string, force bool, written *[]string) error {
	for _, path := range paths {
		secret := make([]byte, initSecretLen)
		if filepath.Base(path) == "admin.token" {
			secret = secret[:32] // a 64-digit token, as --token takes
		}
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("generating %s: %v", path, err)
		}
		if err := writeNew(dir, path, []byte(hex.EncodeToString(secret)+"\n"), 0o600, force); err != nil {
			return err
		}
		*written = append(*written, path)
	}
	return nil
}

// writeConfigs loads every configuration file before writing any, which
// keeps Init and ImportSeed from leaving behind a configuration the daemon
// would reject; it needs the secrets on disk already. A file that does not
// load is reported after notLoading. Each path written is appended to
// written.
func writeConfigs(dir *os.File, files []configFile, force bool, written *[]string, notLoading string) error {
	for _, f := range files {
		if _, err := Parse(f.path, f.data); err != nil {
			return fmt.Errorf("%s: %v", notLoading, err)
		}
	}
	for _, f := range files {
		if err := writeNew(dir, f.path, f.data, 0o644, force); err != nil {
			return err
		}
		*written = append(*written, f.path)
	}
	return nil
}

// prepareInitDir refuses, unless force, to write over any of files that
// exists, then makes dir and opens it for writeNew.
func prepareInitDir(dir string, force bool, files []string) (*os.File, error) {
	if !force {
		for _, p := range files {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%s already exists; pass --force to overwrite it", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: %s", p, describeIOError(err))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--dir: %v", err)
	}
	return openInitDir(dir)
}

// openInitDir opens the directory Init writes to, refusing a symbolic link
// and a directory that group or others can write: whoever can write there
// could swap a file for a link between Init's check and its write, or
// read the secrets by replacing them before they are written.
func openInitDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("--dir %s is a symbolic link; clustd init does not follow links: give the directory itself", dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("--dir %s: %v", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--dir %s: %v", dir, err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		f.Close()
		return nil, fmt.Errorf("--dir %s: mode %04o lets group or others write there, where they could replace the secrets; run chmod go-w %s, or choose a private directory", dir, perm, shellQuote(dir))
	}
	return f, nil
}

// writeNew writes a file durably in dir, never following a symbolic link.
// Without force it uses O_EXCL, so that a file appearing after Init's own
// check is still not overwritten. With force it writes a temporary file
// and renames it over the old one, which replaces a link rather than
// writing where it points.
func writeNew(dir *os.File, path string, data []byte, mode os.FileMode, force bool) error {
	name := filepath.Base(path)
	dirfd := int(dir.Fd())
	target := name
	if force {
		target = "." + name + ".tmp"
		_ = unix.Unlinkat(dirfd, target, 0)
	}
	fd, err := unix.Openat(dirfd, target, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode))
	if err == unix.EEXIST {
		return fmt.Errorf("%s already exists; pass --force to overwrite it", path)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	// The umask may have taken bits away; set exactly what was asked.
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && force {
		err = unix.Renameat(dirfd, target, dirfd, name)
	}
	if err == nil {
		err = dir.Sync()
	}
	if err != nil {
		if force {
			_ = unix.Unlinkat(dirfd, target, 0)
		}
		return fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	return nil
}

// parseMemberList parses the --members flag into members with canonical
// addresses.
func parseMemberList(s string) ([]Member, error) {
	const syntax = "ID=HOST:PORT[,ID=HOST:PORT…]"
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--members: required; expected %s", syntax)
	}
	entries := strings.Split(s, ",")
	if len(entries) > MaxMembers {
		return nil, fmt.Errorf("--members: %d members; at most %d are supported", len(entries), MaxMembers)
	}
	var ms []Member
	addrs := make(map[string]string, len(entries))
	for i, e := range entries {
		n := i + 1
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("--members: entry %d is empty (a doubled or trailing comma?); expected %s", n, syntax)
		}
		id, addr, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("--members: entry %d, %q, is not ID=HOST:PORT", n, e)
		}
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ValidID(id) {
			return nil, fmt.Errorf("--members: entry %d: %q is not a valid id: use 1 to 64 of the characters A-Z a-z 0-9 . _ -", n, id)
		}
		if memberIndex(ms, id) >= 0 {
			return nil, fmt.Errorf("--members: entry %d: id %q appears twice", n, id)
		}
		a, err := parseHostPort(addr, ruleDial)
		if err != nil {
			var use addrUseError
			if errors.As(err, &use) {
				return nil, fmt.Errorf("--members: entry %d (%s): %q: %v", n, id, addr, err)
			}
			return nil, fmt.Errorf("--members: entry %d (%s): %q is not HOST:PORT (%v)", n, id, addr, err)
		}
		if other, dup := addrs[a.String()]; dup {
			return nil, fmt.Errorf("--members: entry %d (%s): address %s is already %s's", n, id, a, other)
		}
		addrs[a.String()] = id
		ms = append(ms, Member{ID: id, Address: a.String()})
	}
	return ms, nil
}

func memberIndex(ms []Member, id string) int {
	for i, m := range ms {
		if m.ID == id {
			return i
		}
	}
	return -1
}

func memberIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func allWitnesses(ms []Member) bool {
	for _, m := range ms {
		if !m.Witness {
			return false
		}
	}
	return true
}

func pathsOf(nodes []InitNode) []string {
	ps := make([]string, len(nodes))
	for i, n := range nodes {
		ps[i] = n.ConfigFile
	}
	return ps
}

// nodeYAML renders one node's file. Strings are always double-quoted: an id
// such as null, true or 1e3 is valid but would change meaning unquoted, and
// the values are validated ASCII, for which Go and YAML quoting agree.
func nodeYAML(id string, members []Member, profile, httpListen string) []byte {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# clustd configuration of node %s, written by clustd init.\n", q(id))
	b.WriteString("# Every node's file must list the same members and timing.\n")
	fmt.Fprintf(&b, "id: %s\n", q(id))
	b.WriteString("# Relative paths are relative to this file's directory.\n")
	fmt.Fprintf(&b, "data_dir: %s\n", q(id+".data"))
	b.WriteString("# Each secret in a file of its own, readable by its owner only:\n")
	b.WriteString("# peers need secret_file, drivers drivers_secret_file and the\n")
	b.WriteString("# admin commands admin_token_file.\n")
	b.WriteString("secret_file: \"secret\"\n")
	b.WriteString("drivers_secret_file: \"drivers.secret\"\n")
	b.WriteString("admin_token_file: \"admin.token\"\n")
	b.WriteString("members:\n")
	for _, m := range members {
		fmt.Fprintf(&b, "  - id: %s\n    address: %s\n", q(m.ID), q(m.Address))
		if m.Witness {
			b.WriteString("    witness: true\n")
		}
	}
	fmt.Fprintf(&b, "timing:\n  profile: %s\n", q(profile))
	fmt.Fprintf(&b, "http:\n  listen: %s\n", q(httpListen))
	return []byte(b.String())
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-./:=@%+,", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
