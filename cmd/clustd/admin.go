package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/secretfile"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

// How long the admin commands wait for an answer. A status is immediate; a
// transfer may wait for the old master's drivers to demote (demote_timeout)
// and then for its lease, so it gets much longer.
const (
	statusTimeout   = 10 * time.Second
	mutationTimeout = 2 * time.Minute
)

func configFlag() cli.Flag {
	return &cli.StringFlag{
		Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CLUSTD_CONFIG"},
		Usage: "the node's configuration file: the daemon is at its http.listen, and the admin token is its admin_token_file (else derived from its secret)",
	}
}

func addrFlag() cli.Flag {
	return &cli.StringFlag{
		Name: "addr", EnvVars: []string{"CLUSTD_ADDR"},
		Usage: "the daemon's local listener as HOST:PORT, instead of the configuration's http.listen (default without --config: " + config.DefaultHTTPListen + ")",
	}
}

// authFlags are the connection flags of the commands that change something.
func authFlags() []cli.Flag {
	return []cli.Flag{
		configFlag(),
		addrFlag(),
		&cli.StringFlag{
			Name: "token", EnvVars: []string{"CLUSTD_TOKEN"},
			Usage: "the admin token (64 hex digits), instead of reading it from --config or --token-file; the environment variable keeps it out of the process list",
		},
		&cli.StringFlag{
			Name:  "token-file",
			Usage: "the admin token file (admin.token, written by clustd init), instead of the one --config names",
		},
		&cli.StringFlag{
			Name:  "secret-file",
			Usage: "the cluster's secret file, to derive the admin token from without a configuration file",
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a daemon's view of the cluster",
		Description: "Asks the daemon on this machine (or at --addr) for its role, term, master and lease,\n" +
			"and for what it knows of every member. Needs no admin token. With --json, prints the\n" +
			"GET /v1/status document, whose keys are stable for scripts.\n\n" +
			"Examples:\n" +
			"   clustd status --config /etc/clustd/clustd.yml\n" +
			"   clustd status --addr 127.0.0.1:3002 --json | jq -r .master",
		Flags: []cli.Flag{
			configFlag(),
			addrFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
		},
		Action: runStatus,
	}
}

func transferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "hand the master role over to another node",
		Description: "Asks the master to step down in favour of --to, or of the best eligible node: its\n" +
			"drivers demote first, then the target is told to take over at once, without waiting\n" +
			"for an election timeout. Run it against the master's daemon; another node answers\n" +
			"with an error naming the master. Needs the admin token, which is derived from the\n" +
			"cluster secret given by --config or --secret-file, or passed with --token.\n\n" +
			"Examples:\n" +
			"   clustd transfer --config /etc/clustd/clustd.yml --to b\n" +
			"   clustd transfer --addr 127.0.0.1:3001 --secret-file /etc/clustd/secret",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "the id of the member to hand over to (default: the best eligible member)"},
		}, authFlags()...),
		Action: runTransfer,
	}
}

func maintenanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "maintenance",
		Usage:     "keep this node from being master while it is worked on",
		ArgsUsage: "on|off [--for DURATION] [--reason TEXT]",
		Description: "With on, the node stops being eligible: if it is the master it hands the role over\n" +
			"first, and it never campaigns until maintenance ends. It keeps voting, so the cluster\n" +
			"keeps its majority. Maintenance ends by itself after --for (default " + api.DefaultMaintenance.String() + ", at most\n" +
			api.MaxMaintenance.String() + "), restarts included, so that a node forgotten in maintenance does not leave\n" +
			"the cluster one failure away from having no master; off ends it early. The status\n" +
			"shows the reason and the end. Needs the admin token, which is derived from the\n" +
			"cluster secret given by --config or --secret-file, or passed with --token.\n\n" +
			"Examples:\n" +
			"   clustd maintenance on --config /etc/clustd/clustd.yml --for 2h --reason \"kernel upgrade\"\n" +
			"   clustd maintenance off --config /etc/clustd/clustd.yml\n" +
			"   clustd maintenance --config /etc/clustd/clustd.yml on",
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "for", Usage: "with on: how long maintenance lasts before it ends by itself (default " + api.DefaultMaintenance.String() + ", at most " + api.MaxMaintenance.String() + ")"},
			&cli.StringFlag{Name: "reason", Usage: "with on: why, for the status, the page and the log"},
			&cli.BoolFlag{Name: reorderedFlag, Hidden: true},
		}, authFlags()...),
		Action: runMaintenance,
	}
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	client, err := adminClient(c, false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, statusTimeout)
	defer cancel()
	s, err := client.Status(ctx)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if s.Members == nil {
		s.Members = []api.MemberStatus{}
	}
	if c.Bool("json") {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s\n", b)
		return err
	}
	return writeStatus(c.App.Writer, s)
}

func runTransfer(c *cli.Context) error {
	if c.NArg() > 0 {
		msg := fmt.Sprintf("unexpected argument %q", c.Args().First())
		if !strings.HasPrefix(c.Args().First(), "-") {
			msg += fmt.Sprintf("; to name the target, use --to %s", c.Args().First())
		}
		return usageError(c, msg)
	}
	to := c.String("to")
	if c.IsSet("to") && !api.ValidID(to) {
		return usageError(c, fmt.Sprintf("--to %q is not a node id (1 to 64 of A-Z a-z 0-9 . _ -); leave --to out to let the master pick the best eligible node", to))
	}
	client, err := adminClient(c, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, mutationTimeout)
	defer cancel()
	if err := client.Transfer(ctx, to); err != nil {
		return client.failed(err)
	}
	target := "the best eligible node"
	if to != "" {
		target = to
	}
	fmt.Fprintf(c.App.Writer, "transfer to %s accepted by the master at %s; see clustd status\n", target, client.Addr)
	return nil
}

func runMaintenance(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return argsUsageError(c, "say on or off")
	}
	if c.Bool(reorderedFlag) && len(args) > 1 {
		// Parsed again with on or off moved last: anything else is extra.
		return argsUsageError(c, fmt.Sprintf("unexpected argument %q after %s", args[0], args[len(args)-1]))
	}
	var on bool
	switch strings.ToLower(args[0]) {
	case "on":
		on = true
	case "off":
		on = false
	default:
		return argsUsageError(c, fmt.Sprintf("%q: say on or off", args[0]))
	}
	if len(args) > 1 && strings.HasPrefix(args[1], "-") && !c.Bool(reorderedFlag) {
		// clustd maintenance on --for 2h: the parser stops at on, so
		// parse again with the flags first.
		app := newApp()
		app.Writer, app.ErrWriter = c.App.Writer, c.App.ErrWriter
		argv := append([]string{c.App.Name, c.Command.Name, "--" + reorderedFlag}, args[1:]...)
		return app.RunContext(c.Context, append(argv, args[0]))
	}
	if len(args) > 1 {
		return argsUsageError(c, fmt.Sprintf("unexpected argument %q after %s", args[1], args[0]))
	}
	req := api.MaintenanceRequest{On: on}
	if c.IsSet("for") || c.IsSet("reason") {
		if !on {
			return argsUsageError(c, "--for and --reason go with on")
		}
		if c.IsSet("for") {
			d := c.Duration("for")
			if d < time.Second || d > api.MaxMaintenance {
				return usageError(c, fmt.Sprintf("--for %v: give a duration from 1s to %v, such as 2h", d, api.MaxMaintenance))
			}
			req.For = d.String()
		}
		req.Reason = c.String("reason")
	}
	client, err := adminClient(c, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, mutationTimeout)
	defer cancel()
	if req.For == "" && req.Reason == "" {
		// The request of every version: a daemon that predates windows
		// understands it.
		err = client.Maintenance(ctx, on)
	} else {
		err = client.MaintenanceWith(ctx, req)
	}
	if err != nil {
		return client.failed(err)
	}
	msg := fmt.Sprintf("maintenance %s for the node at %s", args[0], client.Addr)
	if s, err := client.Status(ctx); on && err == nil && s.MaintenanceUntil != "" {
		msg += "; it ends by itself at " + s.MaintenanceUntil
	}
	fmt.Fprintln(c.App.Writer, msg)
	return nil
}

// reorderedFlag marks the second parse of clustd maintenance on|off
// followed by flags.
const reorderedFlag = "flags-reordered"

// argsUsageError is usageError for a command with arguments, whose usage
// line must show them.
func argsUsageError(c *cli.Context, msg string) error {
	return &exitError{code: 2, msg: fmt.Sprintf("%s\nusage: %s %s [options] %s  (see --help)", msg, c.App.Name, c.Command.Name, c.Command.ArgsUsage)}
}

// adminClient works out from the flags where the daemon is and, when
// needsToken, the admin token. The address comes from --addr, else from
// the configuration's http.listen, else the default listener; the token from
// --token, else --secret-file, else the configuration's secret. The
// configuration is read only when it is needed, because it names a secret
// file that the user may not be allowed to read.
func adminClient(c *cli.Context, needsToken bool) (*adminConn, error) {
	cfgPath := strings.TrimSpace(c.String("config"))
	var t adminTarget
	var secretFile, tokenFile string
	if needsToken {
		var err error
		if t.token, secretFile, tokenFile, err = adminTokenFlags(c); err != nil {
			return nil, err
		}
	}
	if addr := strings.TrimSpace(c.String("addr")); addr != "" {
		a, err := dialAddr(addr)
		if err != nil {
			return nil, usageError(c, fmt.Sprintf("--addr %q: %v", addr, err))
		}
		t.addr = a
	}

	wantToken := needsToken && t.token == "" && secretFile == "" && tokenFile == ""
	if cfgPath != "" && (t.addr == "" || wantToken) {
		if err := t.fromConfig(c, cfgPath, needsToken, wantToken); err != nil {
			return nil, err
		}
	}
	if needsToken && tokenFile != "" {
		b, err := secretfile.Read(tokenFile)
		if err != nil {
			return nil, &exitError{code: 1, msg: "--token-file " + err.Error()}
		}
		t.token, t.tokenFrom = string(b), tokenFile
	}
	if t.addr == "" {
		t.addr = config.DefaultHTTPListen
	}
	if needsToken && t.token == "" {
		if secretFile == "" {
			return nil, usageError(c, fmt.Sprintf("%s needs the admin token: give --config FILE (the node's configuration), --token-file FILE (admin.token), --secret-file FILE (the cluster secret) or --token TOKEN", c.Command.Name))
		}
		secret, err := readSecretFile(secretFile)
		if err != nil {
			return nil, &exitError{code: 1, msg: "--secret-file " + err.Error()}
		}
		t.token, t.tokenFrom = api.AdminToken(secret), secretFile
	}
	return t.conn(), nil
}

// adminTarget is what adminClient has worked out so far.
type adminTarget struct {
	addr, token string
	tokenFrom   string      // where token came from, for messages
	tlsConf     *tls.Config // nil for plain HTTP
}

// adminTokenFlags reads --token, --secret-file and --token-file, of which
// at most one may be given.
func adminTokenFlags(c *cli.Context) (token, secretFile, tokenFile string, err error) {
	token = strings.TrimSpace(c.String("token"))
	secretFile = strings.TrimSpace(c.String("secret-file"))
	tokenFile = strings.TrimSpace(c.String("token-file"))
	given := 0
	for _, s := range []string{token, secretFile, tokenFile} {
		if s != "" {
			given++
		}
	}
	if given > 1 {
		return "", "", "", usageError(c, "give one of --token, --token-file and --secret-file")
	}
	if token != "" {
		if b, err := hex.DecodeString(token); err != nil || len(b) != 32 {
			return "", "", "", usageError(c, "--token: an admin token is 64 hex digits; to read it from a file, use --token-file or --config instead")
		}
	}
	return token, secretFile, tokenFile, nil
}

// fromConfig takes from the configuration at cfgPath the address (with
// its TLS) if none is set yet, and the admin token if wantToken.
func (t *adminTarget) fromConfig(c *cli.Context, cfgPath string, needsToken, wantToken bool) error {
	// Only the admin token, and only when it is wanted: the user may
	// be allowed to read nothing else.
	scope := config.NoSecrets
	if wantToken {
		scope = config.AdminTokenOnly
	}
	cfg, err := config.LoadFor(cfgPath, scope)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrPermission) && !needsToken {
			msg += fmt.Sprintf("\n(status needs only the address: try %s status --addr HOST:PORT)", c.App.Name)
		}
		return &exitError{code: 1, msg: msg}
	}
	if t.addr == "" {
		if t.addr, err = dialAddr(cfg.HTTPListen); err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("%s: http.listen %q: %v", cfgPath, cfg.HTTPListen, err)}
		}
		// The daemon the configuration describes speaks HTTPS if it
		// has a certificate; an --addr says for itself (https://…).
		if t.tlsConf, err = listenerTLS(cfg); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
	}
	if wantToken {
		if cfg.AdminToken != "" {
			t.token, t.tokenFrom = cfg.AdminToken, "the admin token file of "+cfgPath
		} else {
			t.token, t.tokenFrom = api.AdminToken(cfg.Secret), "the secret of "+cfgPath
		}
	}
	return nil
}

// conn is the client for t.
func (t *adminTarget) conn() *adminConn {
	cl := &api.Client{Addr: t.addr, Token: t.token}
	if t.tlsConf != nil {
		cl.Addr = "https://" + t.addr
		cl.HTTP = &http.Client{
			Transport:     &http.Transport{Proxy: nil, TLSClientConfig: t.tlsConf, TLSHandshakeTimeout: 5 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &adminConn{Client: cl, tokenFrom: t.tokenFrom}
}

// listenerTLS is the client side of a local listener with a certificate
// (http.tls_cert_file): HTTPS trusting that certificate, which is usually
// self-signed. It returns nil when the listener has none.
func listenerTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(cfg.TLSCertFile)
	if err != nil {
		return nil, fmt.Errorf("%s: http.tls_cert_file: %v", cfg.Path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: http.tls_cert_file %s holds no PEM certificate", cfg.Path, cfg.TLSCertFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// adminConn is a client that remembers where its token came from, to
// explain a refusal.
type adminConn struct {
	*api.Client
	tokenFrom string // empty when the token was given as such
}

// failed turns a daemon's error into exit status 1. A 401 for a token
// derived from a secret means the secret is not this cluster's, which the
// daemon cannot know to say.
func (a *adminConn) failed(err error) error {
	msg := err.Error()
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized && a.tokenFrom != "" {
		msg = fmt.Sprintf("%s answered 401 Unauthorized: the token derived from %s is not this daemon's; is it the same cluster's secret?", re.Addr, a.tokenFrom)
	}
	return &exitError{code: 1, msg: msg}
}

// dialAddr checks a HOST:PORT and turns a listen address into one to dial:
// a daemon listening on every interface (0.0.0.0, [::] or an empty host) is
// reached on loopback.
func dialAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", errors.New("want HOST:PORT")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// readSecretFile reads a secret file with the strict reader the daemon
// uses (so that a token derived here matches the daemon's) and checks its
// length. Errors start with the path.
func readSecretFile(path string) ([]byte, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, err
	}
	if len(b) < config.MinSecretLen {
		return nil, fmt.Errorf("%s holds %d bytes (not counting a final newline); a secret has at least %d", path, len(b), config.MinSecretLen)
	}
	return b, nil
}

// writeStatus prints a status for people: the node's own state, then one
// line per member.
func writeStatus(w io.Writer, s *api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	lease := "-"
	if s.Role == driverproto.RoleMaster {
		lease = msString(s.LeaseMS)
	}
	master := printable(s.Master)
	if s.Master == "" {
		master = "(none known)"
	}
	role := printable(s.Role)
	if s.Reason != "" {
		role += fmt.Sprintf(" (%s, %s ago)", printable(s.Reason), msString(s.SinceMS))
	} else {
		role += fmt.Sprintf(" (%s ago)", msString(s.SinceMS))
	}
	for _, row := range [][2]string{
		{"node", printable(s.Node)},
		{"role", role},
		{"term", strconv.FormatUint(s.Term, 10)},
		{"master", master},
		{"lease", lease},
		{"eligible", yesNo(s.Eligible)},
		{"maintenance", maintenanceLine(s)},
		{"healthy", yesNo(s.Healthy)},
		{"witness", yesNo(s.Witness)},
		{"failover", fmt.Sprintf("about %s after the master is lost (election timeout %s + stop budget %s)",
			msString(s.ExpectedFailoverMS), msString(s.ElectionTimeoutMS), msString(s.StopBudgetMS))},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	if len(s.MissingDrivers) > 0 {
		names := make([]string, len(s.MissingDrivers))
		for i, n := range s.MissingDrivers {
			names[i] = printable(n)
		}
		row := [2]string{"missing drivers", strings.Join(names, ", ") + " (required, not connected)"}
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tREACHABLE\tLAST SEEN\tRTT\tWITNESS\tPRIORITY")
	for _, m := range s.Members {
		id, reachable, seen := printable(m.ID), yesNo(m.Reachable), "never"
		if m.LastSeenMS >= 0 {
			seen = msString(m.LastSeenMS) + " ago"
		}
		if m.Self {
			id += " (self)"
			reachable, seen = "-", "-"
		}
		rtt := "-"
		if m.RTTMS > 0 {
			rtt = fmt.Sprintf("%.2fms", m.RTTMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", id, printable(m.Address), reachable, seen, rtt, yesNo(m.Witness), m.Priority)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeDuplicates(w, s.Duplicates); err != nil {
		return err
	}
	return writeSeedDrivers(w, s.SeedDrivers)
}

// writeDuplicates prints the member ids two live daemons claimed at once.
func writeDuplicates(w io.Writer, dups []api.Duplicate) error {
	if len(dups) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DUPLICATE MEMBER\tLIVE\tREFUSED\tREFUSED BY\tREFUSALS\tLAST")
	for _, d := range dups {
		live, peer := printable(d.Live), printable(d.Peer)
		if d.Live == "" {
			live = "?"
		}
		if d.Peer == "" {
			peer = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s ago\n", printable(d.Member), live, printable(d.Refused), peer, d.Refusals, msString(d.AgoMS))
	}
	return tw.Flush()
}

// maintenanceLine is yes or no, with the reason and the end when on.
func maintenanceLine(s *api.Status) string {
	if !s.Maintenance {
		return "no"
	}
	out := "yes"
	if s.MaintenanceReason != "" {
		out += " (" + printable(s.MaintenanceReason) + ")"
	}
	if s.MaintenanceUntil != "" {
		out += ", ends " + printable(s.MaintenanceUntil)
	}
	return out
}

func msString(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printable quotes a string from the daemon that holds control characters,
// so that whatever answers on the port cannot drive the terminal.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// pathless drops the operation and path of an *fs.PathError, which the
// caller's message already names.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
