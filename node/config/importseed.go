package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/clustd/clustd/election"
)

// ImportSeedOptions are the inputs of clustd import-seed, which converts
// the configuration of the 2018 daemon.
type ImportSeedOptions struct {
	// Configs are the 2018 daemon's config.yml files: one machine's, or
	// every machine's to keep their ids.
	Configs []string
	// Dir receives the files; it is created (mode 0700) if missing.
	Dir string
	// Force allows overwriting existing files, the secret included.
	Force bool
}

// ImportSeedResult describes what ImportSeed wrote and what it could not
// carry over.
type ImportSeedResult struct {
	// Dir is the directory the files were written to.
	Dir string
	// SecretFile is the shared secret's path.
	SecretFile string
	// NewSecret: the old secret could not be used and SecretFile holds a
	// new one, which the 2018 drivers must be given too.
	NewSecret bool
	// Nodes lists one entry per converted config.yml, in the order given.
	Nodes []InitNode
	// Files lists every file written, in the order written.
	Files []string
	// NotCarried says, one sentence each, what the old configuration held
	// that the new one does not, or holds differently.
	NotCarried []string
}

// The 2018 daemon's configuration fields (config.ts in the original).
var (
	seedRootFields    = []string{"server", "cluster"}
	seedServerFields  = []string{"bind_address", "bind_port", "remote_address"}
	seedClusterFields = []string{"secret", "id", "machines"}
)

// seedOld is one 2018 config.yml.
type seedOld struct {
	path        string
	id          string
	idNode      *yaml.Node
	bind        hostPort // bind_address:bind_port, host empty for every interface
	bindNode    *yaml.Node
	remote      hostPort
	secret      string
	secretNode  *yaml.Node
	machines    []hostPort
	machineNode []*yaml.Node
}

// seedReport collects what is not carried over.
type seedReport struct{ lines []string }

func (r *seedReport) add(p *parser, n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	r.lines = append(r.lines, (&Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}).Error())
}

// ImportSeed converts the 2018 daemon's config.yml files into a clustd
// configuration: a secret file (the old cluster.secret, which the 2018
// drivers keep using) and one configuration per converted file, with the
// 2018 drivers switched on at the port they connect to. Like Init it checks
// every generated file loads, and refuses to overwrite without opts.Force.
func ImportSeed(opts ImportSeedOptions) (*ImportSeedResult, error) {
	if len(opts.Configs) == 0 {
		return nil, errors.New("--config: required; the 2018 daemon's config.yml (repeat it for every machine's to keep their ids)")
	}
	if opts.Dir == "" {
		return nil, errors.New("--dir: required; the directory to write the clustd configuration to")
	}
	rep := &seedReport{}
	var olds []*seedOld
	for _, path := range opts.Configs {
		o, err := readSeedConfig(path, rep)
		if err != nil {
			return nil, err
		}
		olds = append(olds, o)
	}
	members, keepIDs, err := seedMembers(olds, rep)
	if err != nil {
		return nil, err
	}
	res := &ImportSeedResult{Dir: opts.Dir, SecretFile: filepath.Join(opts.Dir, "secret")}
	secretText, err := seedSecret(olds, res, rep)
	if err != nil {
		return nil, err
	}
	var ymls []configFile
	for _, o := range olds {
		id := seedAddrID(o.remote)
		if keepIDs {
			id = o.id
		}
		p := &parser{file: displayName(o.path)}
		listen, httpListen := seedListeners(p, o, rep)
		path := filepath.Join(opts.Dir, id+".yml")
		ymls = append(ymls, configFile{path, seedNodeYAML(id, o, members, listen, httpListen, res.NewSecret)})
		res.Nodes = append(res.Nodes, InitNode{ID: id, ConfigFile: path, HTTPListen: httpListen.String(), Command: "clustd run --config " + shellQuote(path)})
	}

	dir, err := prepareInitDir(opts.Dir, opts.Force, append([]string{res.SecretFile}, pathsOf(res.Nodes)...))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if err := writeNew(dir, res.SecretFile, secretText, 0o600, opts.Force); err != nil {
		return nil, err
	}
	res.Files = append(res.Files, res.SecretFile)
	if err := writeConfigs(dir, ymls, opts.Force, &res.Files, "converted configuration does not load (only the secret was written)"); err != nil {
		return res, err
	}
	res.NotCarried = rep.lines
	return res, nil
}

// seedMembers lists the members: every machine any file names, by address,
// sorted by id. Every node must use the same ids. They are the old
// cluster.id only when every machine's file is here (keepIDs); otherwise
// they come from the addresses, which every machine's conversion derives
// alike.
func seedMembers(olds []*seedOld, rep *seedReport) (members []Member, keepIDs bool, err error) {
	byAddr := map[string]*seedOld{}
	var addrs []hostPort
	seen := map[string]bool{}
	note := func(a hostPort) {
		if !seen[a.String()] {
			seen[a.String()] = true
			addrs = append(addrs, a)
		}
	}
	for _, o := range olds {
		if prev := byAddr[o.remote.String()]; prev != nil {
			return nil, false, fmt.Errorf("%s and %s: both have server.remote_address %s; give each machine's config.yml once", prev.path, o.path, o.remote)
		}
		byAddr[o.remote.String()] = o
		note(o.remote)
		for _, m := range o.machines {
			note(m)
		}
	}
	if len(addrs) > MaxMembers {
		return nil, false, fmt.Errorf("%d machines; clustd supports at most %d members", len(addrs), MaxMembers)
	}
	keepIDs = len(byAddr) == len(addrs)
	members = make([]Member, 0, len(addrs))
	ids := map[string]string{}
	for _, a := range addrs {
		id := seedAddrID(a)
		if keepIDs {
			id = byAddr[a.String()].id
		}
		if other, dup := ids[id]; dup {
			return nil, false, fmt.Errorf("machines %s and %s would both be member %q; give them distinct cluster.id values", other, a, id)
		}
		ids[id] = a.String()
		members = append(members, Member{ID: id, Address: a.String()})
	}
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	if !keepIDs {
		for _, o := range olds {
			p := &parser{file: displayName(o.path)}
			rep.add(p, o.idNode, "cluster.id", "%q is not carried over: member ids must be the same on every node, and the other machines' ids are not known without their config.yml; this node is %q, an id made from its address. Give every machine's config.yml (repeat --config) to keep the ids", o.id, seedAddrID(o.remote))
		}
	}
	return members, keepIDs, nil
}

// seedSecret returns the secret file's contents: the cluster's one secret,
// as before, or a new one (res.NewSecret) when the old one is unfit.
func seedSecret(olds []*seedOld, res *ImportSeedResult, rep *seedReport) ([]byte, error) {
	secret := olds[0].secret
	for _, o := range olds[1:] {
		if o.secret != secret {
			p := &parser{file: displayName(o.path)}
			return nil, p.errAt(o.secretNode, "cluster.secret", "differs from the one in %s; the machines of one cluster share one secret", olds[0].path)
		}
	}
	p0 := &parser{file: displayName(olds[0].path)}
	switch {
	case len(secret) < MinSecretLen:
		res.NewSecret = true
		rep.add(p0, olds[0].secretNode, "cluster.secret", "is %d bytes; clustd needs at least %d, so %s holds a new secret: copy it to every machine and set it as the secret of every 2018 driver", len(secret), MinSecretLen, res.SecretFile)
	case strings.HasSuffix(secret, "\n") || strings.HasSuffix(secret, "\r"):
		res.NewSecret = true
		rep.add(p0, olds[0].secretNode, "cluster.secret", "ends in a line break, which a secret file cannot keep; %s holds a new secret: copy it to every machine and set it as the secret of every 2018 driver", res.SecretFile)
	}
	if !res.NewSecret {
		return []byte(secret + "\n"), nil
	}
	b := make([]byte, initSecretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating the secret: %v", err)
	}
	return []byte(hex.EncodeToString(b) + "\n"), nil
}

// seedFields are the fields of one 2018 config.yml as read, before the
// checks that involve the whole file.
type seedFields struct {
	serverKey, clusterKey *yaml.Node
	bindAddr, remote      field[string]
	bindPort              field[int]
	secret, id            field[string]
	machinesKey           *yaml.Node
	machines              []*yaml.Node
}

// readSeedConfig reads one 2018 config.yml. Missing fields are errors, as
// they were to the 2018 daemon; unknown ones are reported and ignored.
func readSeedConfig(path string, rep *seedReport) (*seedOld, error) {
	data, err := readFileLimited(path, maxConfigSize)
	if err != nil {
		return nil, &Error{File: displayName(path), Msg: "cannot read the 2018 configuration: " + describeIOError(err), Err: err}
	}
	p := &parser{file: displayName(path), path: path}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	f, err := p.seedFields(root, rep)
	if err != nil {
		return nil, err
	}
	if err := p.seedRequired(f, root); err != nil {
		return nil, err
	}
	o := &seedOld{path: path}
	o.id, o.idNode = f.id.v, f.id.n
	o.secret, o.secretNode = f.secret.v, f.secret.n
	if !ValidID(o.id) {
		return nil, p.errAt(f.id.n, "cluster.id", "%q is not a valid clustd id: use 1 to 64 of the characters A-Z a-z 0-9 . _ -", o.id)
	}
	bindHost := strings.Trim(f.bindAddr.v, "[]")
	if o.bind, err = parseHostPort(net.JoinHostPort(bindHost, strconv.Itoa(f.bindPort.v)), ruleListen); err != nil {
		return nil, p.errAt(f.bindAddr.n, "server.bind_address", "%q is not an address to listen on (%v)", f.bindAddr.v, err)
	}
	o.bindNode = f.bindAddr.n
	if o.remote, err = p.seedURL(f.remote.v, f.remote.n, "server.remote_address", rep); err != nil {
		return nil, err
	}
	for i, m := range f.machines {
		name := indexField("cluster.machines", i)
		var s field[string]
		if err := p.str(&s, m, name); err != nil {
			return nil, err
		}
		a, err := p.seedURL(s.v, m, name, rep)
		if err != nil {
			return nil, err
		}
		o.machines = append(o.machines, a)
		o.machineNode = append(o.machineNode, m)
	}
	return o, nil
}

// seedFields decodes the fields of a 2018 config.yml, each on its own.
func (p *parser) seedFields(root *yaml.Node, rep *seedReport) (*seedFields, error) {
	f := &seedFields{}
	err := p.lenientMapping(root, "", seedRootFields, rep, func(key string, k, v *yaml.Node) error {
		switch key {
		case "server":
			f.serverKey = k
			return p.lenientMapping(v, key, seedServerFields, rep, func(sk string, _, sv *yaml.Node) error {
				name := joinField(key, sk)
				switch sk {
				case "bind_address":
					return p.str(&f.bindAddr, sv, name)
				case "bind_port":
					return p.port(&f.bindPort, sv, name)
				}
				return p.str(&f.remote, sv, name)
			})
		case "cluster":
			f.clusterKey = k
			return p.lenientMapping(v, key, seedClusterFields, rep, func(ck string, k2, cv *yaml.Node) error {
				name := joinField(key, ck)
				switch ck {
				case "secret":
					return p.str(&f.secret, cv, name)
				case "id":
					return p.str(&f.id, cv, name)
				}
				f.machinesKey = k2
				if isNull(cv) {
					return nil
				}
				if cv.Kind != yaml.SequenceNode {
					return p.errAt(cv, name, "must be a list of ws://HOST:PORT URLs, not %s", describe(cv))
				}
				f.machines = cv.Content
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// lenientMapping is mapping for a 2018 file: unknown keys are reported,
// not refused, since this file is read once, to carry over what it can.
func (p *parser) lenientMapping(n *yaml.Node, path string, known []string, rep *seedReport, each func(key string, k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.mapping(n, path, known, each)
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.ScalarNode && !contains(known, k.Value) {
			rep.add(p, k, joinField(path, k.Value), "not a field of the 2018 daemon's configuration; ignored")
			continue
		}
		kept = append(kept, n.Content[i], n.Content[i+1])
	}
	c := *n
	c.Content = kept
	return p.mapping(&c, path, known, each)
}

// seedRequired refuses a 2018 file that lacks a field the 2018 daemon
// required, pointing at the field, else its section, else the file.
func (p *parser) seedRequired(f *seedFields, root *yaml.Node) error {
	for _, c := range []struct {
		set    bool
		n, par *yaml.Node
		name   string
	}{
		{f.bindAddr.set, f.bindAddr.n, f.serverKey, "server.bind_address"},
		{f.bindPort.set, f.bindPort.n, f.serverKey, "server.bind_port"},
		{f.remote.set, f.remote.n, f.serverKey, "server.remote_address"},
		{f.secret.set && f.secret.v != "", f.secret.n, f.clusterKey, "cluster.secret"},
		{f.id.set && f.id.v != "", f.id.n, f.clusterKey, "cluster.id"},
		{f.machines != nil || f.machinesKey != nil, f.machinesKey, f.clusterKey, "cluster.machines"},
	} {
		if !c.set {
			return p.errAt(orNode(c.n, orNode(c.par, root)), c.name, "required (the 2018 daemon required it too)")
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// port reads a TCP port number.
func (p *parser) port(f *field[int], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		if n, err := parsePort(v.Value); err == nil {
			f.v, f.set = n, true
			return nil
		}
	}
	return p.errAt(v, name, "%s is not a port number (1 to 65535)", describe(v))
}

// seedURL reads a 2018 machine address, ws://HOST:PORT, as HOST:PORT.
func (p *parser) seedURL(s string, n *yaml.Node, name string, rep *seedReport) (hostPort, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return hostPort{}, p.errAt(n, name, "%q is not a ws://HOST:PORT URL", s)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
		rep.add(p, n, name, "%q names no port; the %s default %s is assumed", s, u.Scheme, port)
	}
	if u.Scheme == "wss" {
		rep.add(p, n, name, "%q: TLS is not carried over; clustd's peers authenticate and protect their messages with the secret, over plain TCP", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		rep.add(p, n, name, "%q: only the host and port are carried over; clustd's peers connect to a bare TCP port", s)
	}
	a, err := parseHostPort(net.JoinHostPort(u.Hostname(), port), ruleDial)
	if err != nil {
		return hostPort{}, p.errAt(n, name, "%q: %v", s, err)
	}
	return a, nil
}

// seedAddrID makes a member id from an address, the same on every machine.
func seedAddrID(a hostPort) string {
	b := []byte(a.host + "-" + strconv.Itoa(a.port))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[len(b)-64:]
	}
	return string(b)
}

// seedListeners chooses the peer listener and the local listener. The 2018
// daemon served peers and drivers on one port; the drivers connect to
// ws://127.0.0.1:PORT, so the local listener takes 127.0.0.1:PORT, and the
// peers are listened for on the machine's own address when the old
// bind_address covered loopback too.
func seedListeners(p *parser, o *seedOld, rep *seedReport) (listen, httpListen hostPort) {
	loop := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	httpListen = hostPort{host: loop.String(), ip: loop, port: o.bind.port}
	listen = o.bind
	if !listen.overlaps(httpListen) {
		return listen, httpListen
	}
	if o.remote.port == o.bind.port && o.remote.ip.IsValid() && !o.remote.overlaps(httpListen) {
		rep.add(p, o.bindNode, "server.bind_address", "%q is not carried over: peers and the local listener (where the drivers connect, ws://%s) can no longer share port %d on every interface; peers are accepted on %s, this machine's address", o.bind.host, httpListen, o.bind.port, o.remote)
		return o.remote, httpListen
	}
	port := o.bind.port + 1000
	if port > 65535 {
		port = o.bind.port - 1000
	}
	httpListen.port = port
	rep.add(p, o.bindNode, "server.bind_address", "peers keep %s, so the drivers' ws://127.0.0.1:%d cannot be carried over: the local listener is %s, and every 2018 driver's host must become ws://%s", listen, o.bind.port, httpListen, httpListen)
	return listen, httpListen
}

// seedNodeYAML writes one node's converted configuration.
func seedNodeYAML(id string, o *seedOld, members []Member, listen, httpListen hostPort, newSecret bool) []byte {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# clustd configuration of node %s, converted by clustd import-seed\n", q(id))
	fmt.Fprintf(&b, "# from the 2018 daemon's %s.\n", q(filepath.Base(o.path)))
	b.WriteString("# Every node's file must list the same members and timing.\n")
	fmt.Fprintf(&b, "id: %s\n", q(id))
	b.WriteString("# Relative paths are relative to this file's directory.\n")
	fmt.Fprintf(&b, "data_dir: %s\n", q(id+".data"))
	if newSecret {
		b.WriteString("# A new secret (the 2018 one was unfit), for peers and for the 2018 drivers.\n")
	} else {
		b.WriteString("# The 2018 cluster.secret, for peers and for the 2018 drivers.\n")
	}
	b.WriteString("secret_file: \"secret\"\n")
	own := o.remote
	if listen.String() != own.String() {
		fmt.Fprintf(&b, "listen: %s\n", q(listen.String()))
	}
	b.WriteString("members:\n")
	for _, m := range members {
		fmt.Fprintf(&b, "  - id: %s\n    address: %s\n", q(m.ID), q(m.Address))
	}
	fmt.Fprintf(&b, "timing:\n  profile: %s\n", q(election.ProfileDefault))
	b.WriteString("http:\n")
	fmt.Fprintf(&b, "  listen: %s\n", q(httpListen.String()))
	if httpListen.port == o.bind.port {
		b.WriteString("  # The 2018 drivers connect here unchanged (ws://" + httpListen.String() + "). They are\n")
	} else {
		b.WriteString("  # The 2018 drivers connect here (ws://" + httpListen.String() + "; the 2018 port is\n")
		b.WriteString("  # the peers'). They are\n")
	}
	b.WriteString("  # legacy: no lease, and nothing stops them on an unplanned failover. Port\n")
	b.WriteString("  # them to clustd's drivers (clustd driver shell, driverclient) and remove this.\n")
	b.WriteString("  seed_drivers: true\n")
	b.WriteString("# How long a planned hand-over waits after a 2018 driver answered trigger(false).\n")
	fmt.Fprintf(&b, "seed_driver_grace: %s\n", q(DefaultSeedDriverGrace.String()))
	return []byte(b.String())
}
