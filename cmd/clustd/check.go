package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/internal/secretfile"
	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/sim"
)

// Levels of a check's finding, as --json prints them.
const (
	levelOK      = "ok"
	levelWarning = "warning"
	levelError   = "error"
)

// Thresholds of the timing warnings.
const (
	// minRoundsPerLease: with fewer heartbeat rounds per lease, one lost or
	// late round can cost a healthy master its lease.
	minRoundsPerLease = 4
	// minDrift: real clocks (a slewing NTP client, a virtual machine's
	// clock after a pause) can stray further than this from real time.
	minDrift = 0.01
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check a configuration file, and with --peers the cluster it describes",
		Description: "Offline, it checks that the configuration is valid, that the secret files are not\n" +
			"open to other users, and spells out the timing: the lease, how long a failover\n" +
			"and a planned hand-over may take. It warns about dangerous combinations: a\n" +
			"heartbeat too close to the election timeout, a clock drift bound too small to\n" +
			"trust, a two-node cluster without a witness.\n\n" +
			"With --peers it also dials every member (this one included), completes the\n" +
			"authenticated handshake without joining the election, and reports for each\n" +
			"whether it is reachable, has the same secret, member list and timing, its round\n" +
			"trip, and whether its clock runs at a rate within the drift bound of ours.\n\n" +
			"Exit status: 0 when all is well, 1 on any error, 2 on warnings only.\n\n" +
			"Examples:\n" +
			"   clustd check --config /etc/clustd/clustd.yml\n" +
			"   clustd check --config /etc/clustd/clustd.yml --peers --json",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CLUSTD_CONFIG"}, Usage: "the configuration file to check", Required: true},
			&cli.BoolFlag{Name: "peers", Usage: "also dial every member and compare its configuration and clock"},
			&cli.DurationFlag{Name: "probe-time", Value: time.Second, Usage: "with --peers, how long to watch each member's clock"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: runCheck,
	}
}

// finding is one checked thing and its verdict.
type finding struct {
	Level   string `json:"level"`
	Check   string `json:"check"`
	Message string `json:"message"`
}

// timingLine is one figure of the timing arithmetic, in words.
type timingLine struct {
	Name  string  `json:"name"`
	MS    float64 `json:"ms"`
	Words string  `json:"words"`
}

// peerReport is what --peers learned of one member.
type peerReport struct {
	ID            string  `json:"id"`
	Address       string  `json:"address"`
	Self          bool    `json:"self"`
	Reachable     bool    `json:"reachable"`
	Authenticated bool    `json:"authenticated"`
	SameConfig    bool    `json:"same_config"`
	RTTMS         float64 `json:"rtt_ms"`
	ClockRate     float64 `json:"clock_rate"`
	Problem       string  `json:"problem,omitempty"`
}

// checkReport is the whole report; --json prints it as it is.
type checkReport struct {
	Config   string       `json:"config"`
	Node     string       `json:"node,omitempty"`
	Findings []finding    `json:"findings"`
	Timing   []timingLine `json:"timing,omitempty"`
	Peers    []peerReport `json:"peers,omitempty"`
	// Result is ok, warnings or errors.
	Result string `json:"result"`
}

func (r *checkReport) add(level, check, format string, args ...any) {
	r.Findings = append(r.Findings, finding{Level: level, Check: check, Message: fmt.Sprintf(format, args...)})
}

func runCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	path := c.String("config")
	rep := &checkReport{Config: path}
	// The file first, without its secrets, so that a secret file's
	// problem is reported as such and the rest is still checked.
	cfg, err := config.LoadFor(path, config.NoSecrets)
	if err != nil {
		rep.add(levelError, "configuration", "%v", err)
	} else {
		checkOffline(rep, cfg)
		if c.Bool("peers") {
			if full, err := config.Load(path); err != nil {
				rep.add(levelError, "peers", "not probed: %v", err)
			} else {
				checkPeers(c.Context, rep, full, c.Duration("probe-time"))
			}
		}
	}
	code := 0
	rep.Result = "ok"
	for _, f := range rep.Findings {
		switch {
		case f.Level == levelError:
			code, rep.Result = 1, "errors"
		case f.Level == levelWarning && code == 0:
			code, rep.Result = 2, "warnings"
		}
	}
	if c.Bool("json") {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s\n", b)
	} else if err := writeCheck(c.App.Writer, rep); err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// checkOffline checks what the file alone tells.
func checkOffline(rep *checkReport, cfg *config.Config) {
	rep.Node = cfg.ID
	var ids, witnesses []string
	for _, m := range cfg.Members {
		ids = append(ids, m.ID)
		if m.Witness {
			witnesses = append(witnesses, m.ID)
		}
	}
	wit := "no witness"
	if len(witnesses) > 0 {
		wit = "witness " + strings.Join(witnesses, ", ")
	}
	rep.add(levelOK, "configuration", "valid: node %s of %d members (%s), %s", cfg.ID, len(cfg.Members), strings.Join(ids, ", "), wit)
	if len(cfg.Roles) > 0 {
		rep.add(levelOK, "roles", "%d: %s", len(cfg.Roles), describeRoles(cfg))
	}

	if cfg.SecretFile != "" {
		checkSecretMode(rep, "secret_file", cfg.SecretFile)
	} else {
		checkInlineSecret(rep, cfg.Path)
	}
	if cfg.DriversSecretFile != "" {
		checkSecretMode(rep, "drivers_secret_file", cfg.DriversSecretFile)
	}
	if cfg.AdminTokenFile != "" {
		checkSecretMode(rep, "admin_token_file", cfg.AdminTokenFile)
	}
	if cfg.TLSKeyFile != "" {
		checkSecretMode(rep, "http.tls_key_file", cfg.TLSKeyFile)
	}

	t := cfg.Timing
	lease := t.LeaseDuration().Round(time.Millisecond)
	if rounds := float64(lease) / float64(t.Heartbeat); rounds < minRoundsPerLease {
		rep.add(levelWarning, "timing.heartbeat", "heartbeat %v is close to the election timeout: only %.1f rounds per lease of %v, so one or two late rounds cost a healthy master its lease; keep it at most election_timeout_min/5 (%v)",
			t.Heartbeat, rounds, lease, t.ElectionMin/5)
	}
	if t.MaxClockDrift < minDrift {
		rep.add(levelWarning, "timing.max_clock_drift", "%g assumes clocks that never stray more than %.2f%% from real time; a slewing or virtual machine's clock can, and then the lease no longer keeps two masters apart; the default is %g",
			t.MaxClockDrift, t.MaxClockDrift*100, 0.05)
	}
	if len(cfg.Members) == 2 && len(witnesses) == 0 {
		rep.add(levelWarning, "members", "a two-node cluster without a witness needs both nodes for a majority: when either fails, no master is elected until it returns; add a third member, a witness (clustd init --witness)")
	}
	rep.Timing = timingLines(cfg)
}

// describeRoles names each role with the member it prefers: the eligible
// one of highest priority, if one is higher than the others.
func describeRoles(cfg *config.Config) string {
	var out []string
	for _, r := range cfg.Roles {
		best, top, tie := "", -1, false
		for _, m := range cfg.Members {
			switch p := r.Priority(m.ID); {
			case m.Witness:
			case p > top:
				best, top, tie = m.ID, p, false
			case p == top:
				tie = true
			}
		}
		if tie {
			out = append(out, r.Name+" (no preferred member)")
		} else {
			out = append(out, fmt.Sprintf("%s (prefers %s)", r.Name, best))
		}
	}
	return strings.Join(out, ", ")
}

// timingLines spells out the timing arithmetic. Each figure is one entry.
func timingLines(cfg *config.Config) []timingLine {
	t := cfg.Timing
	// Whole milliseconds: the rest is rounding in the drift arithmetic.
	lease := t.LeaseDuration().Round(time.Millisecond)
	typical := t.ElectionMin + t.Step/2
	worst := sim.DefaultLivenessBound(t, len(cfg.Members))
	handOver := cfg.DemoteTimeout + lease + t.ElectionMax
	// One entry per figure: a new bound is one more line.
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return []timingLine{
		{"heartbeat", ms(t.Heartbeat), fmt.Sprintf("the master sends a heartbeat round every %v, %.1f rounds per lease", t.Heartbeat, float64(lease)/float64(t.Heartbeat))},
		{"election_timeout", ms(t.ElectionMin), fmt.Sprintf("a follower that hears no master for %v (up to %v after a collided campaign) stands for election; the next-ranked waits %v more", t.ElectionMin, t.ElectionMax, t.Step)},
		{"lease", ms(lease), fmt.Sprintf("a master acts as master for at most %v after a round a majority acknowledged: election timeout %v shrunk for clock rates up to %g%% off real time", lease, t.ElectionMin, t.MaxClockDrift*100)},
		{"stop_budget", ms(t.StopBudget), fmt.Sprintf("a new master's drivers start %v after it is elected: a deposed master's service has that long to stop once its lease has run out", t.StopBudget)},
		{"failover", ms(worst + t.StopBudget), fmt.Sprintf("when the master dies a new one is typically elected after about %v and its drivers act %v later; at worst (campaigns colliding, %d members) they act within %v", typical, t.StopBudget, len(cfg.Members), worst+t.StopBudget)},
		{"hand_over", ms(handOver), fmt.Sprintf("a planned transfer or stop of the master takes at most %v: its drivers get demote_timeout %v to let go, the lease they hold then ends (%v), and the target is elected within %v", handOver, cfg.DemoteTimeout, lease, t.ElectionMax)},
	}
}

// checkSecretMode checks a secret file with the reader the daemon uses,
// which refuses a file others can read or that another user owns.
func checkSecretMode(rep *checkReport, check, path string) {
	if _, err := secretfile.Read(path); err != nil {
		rep.add(levelError, check, "%v", err)
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		rep.add(levelError, check, "%s: %v", path, pathless(err))
		return
	}
	rep.add(levelOK, check, "%s: mode %04o", path, fi.Mode().Perm())
}

// checkInlineSecret checks that a configuration file holding the secret
// inline is not open to other users: anyone who reads it can join the
// cluster.
func checkInlineSecret(rep *checkReport, path string) {
	check := "secret"
	fi, err := os.Stat(path)
	if err != nil {
		rep.add(levelError, check, "%s: %v", path, pathless(err))
		return
	}
	mode := fi.Mode().Perm()
	switch {
	case mode&0o007 != 0:
		rep.add(levelError, check, "%s (mode %04o) is open to other users, who could join the cluster with the secret it holds; chmod o= %s", path, mode, path)
	case mode&0o020 != 0:
		rep.add(levelError, check, "%s (mode %04o) is writable by its group; chmod g-w %s", path, mode, path)
	default:
		rep.add(levelOK, check, "%s: mode %04o", path, mode)
	}
}

// checkPeers probes every member at once.
func checkPeers(ctx context.Context, rep *checkReport, cfg *config.Config, span time.Duration) {
	res := make([]node.ProbeResult, len(cfg.Members))
	var wg sync.WaitGroup
	for i, m := range cfg.Members {
		wg.Go(func() { res[i] = node.Probe(ctx, cfg, m, span, 5) })
	}
	wg.Wait()
	for _, r := range res {
		p := peerReport{ID: r.ID, Address: r.Address, Self: r.ID == cfg.ID, Reachable: r.Reachable, Authenticated: r.Authenticated,
			SameConfig: r.SameConfig, RTTMS: float64(r.RTT.Microseconds()) / 1000, ClockRate: r.ClockRate, Problem: r.Err}
		name := "peer " + r.ID
		switch {
		case !r.Reachable && p.Self:
			rep.add(levelWarning, name, "this node's daemon is not running: %s", r.Err)
		case !r.Reachable:
			rep.add(levelWarning, name, "unreachable at %s: %s", r.Address, r.Err)
		case r.Authenticated && !r.SameConfig && !strings.Contains(r.Err, "too old"):
			rep.add(levelError, name, "%s; it refuses to talk to this node", r.Err)
		case r.Err != "" && strings.Contains(r.Err, "too old"):
			rep.add(levelWarning, name, "%s", r.Err)
		case r.Err != "":
			rep.add(levelError, name, "%s", r.Err)
		case !r.ClockRateOK(cfg.Timing.MaxClockDrift):
			p.Problem = fmt.Sprintf("clock rate %.4f of ours, beyond max_clock_drift %g on both clocks", r.ClockRate, cfg.Timing.MaxClockDrift)
			rep.add(levelError, name, "its %s: the lease no longer keeps two masters apart", p.Problem)
		default:
			rep.add(levelOK, name, "reachable, same secret, members and timing, round trip %v, clock rate %.4f of ours", r.RTT.Round(time.Microsecond), r.ClockRate)
		}
		rep.Peers = append(rep.Peers, p)
	}
}

// writeCheck prints the report for people.
func writeCheck(w io.Writer, rep *checkReport) error {
	fmt.Fprintf(w, "clustd check %s\n\n", rep.Config)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range rep.Findings {
		level := f.Level
		if level != levelOK {
			level = strings.ToUpper(level)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", level, f.Check, f.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Timing) > 0 {
		fmt.Fprintln(w, "\ntiming:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Timing {
			fmt.Fprintf(tw, "  %s\t%v\t%s\n", t.Name, time.Duration(t.MS*float64(time.Millisecond)), t.Words)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Peers) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tADDRESS\tREACHABLE\tSAME CONFIG\tRTT\tCLOCK RATE")
		for _, p := range rep.Peers {
			id := p.ID
			if p.Self {
				id += " (self)"
			}
			rtt, rate := "-", "-"
			if p.RTTMS > 0 {
				rtt = fmt.Sprintf("%.2fms", p.RTTMS)
			}
			if p.ClockRate > 0 {
				rate = fmt.Sprintf("%.4f", p.ClockRate)
			}
			same := yesNo(p.SameConfig)
			if !p.Authenticated {
				same = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, p.Address, yesNo(p.Reachable), same, rtt, rate)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nresult: %s\n", rep.Result)
	return nil
}
