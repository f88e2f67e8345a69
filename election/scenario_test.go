package election_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

// Scenario tests are scripts under testdata/scenarios: each block is a
// command, a line "----", and the output it must produce, ending at a blank
// line; lines starting with # are comments. Run with -rewrite to regenerate
// the outputs after an intended change, then read the diff.
//
// Commands (durations in Go syntax, times printed as real time):
//
//	cluster a b c [prio=c:5,b:1] [witness=c] [preempt=2s] [profile=fast] [seed=N]
//	fire ID              move time to ID's next deadline and tick ID alone
//	advance DUR          let real time pass without waking anyone
//	tick ID...           tick nodes at the current time
//	deliver [type=T] [from=ID] [to=ID] [all]   deliver the first (or every) match
//	drop [type=T] [from=ID] [to=ID]            drop every match
//	inflight             list the messages in flight
//	run DUR              instant delivery and timers for DUR; shows state changes
//	                     and hard state only, leaving out lease renewals
//	until-master [DUR]   run until some node is master
//	isolate ID | cut ID ID | heal
//	crash ID | restart ID
//	transfer ID [TARGET] | demote-done ID | maintenance ID on|off | health ID ok|bad
//	status               every node's role, term, vote, master and lease
//
// After every command the interpreter checks that no two nodes are master at
// the same real instant and fails the test if they are.
var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of scenario tests")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios found")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

// block is one command of a script with its expected output.
type block struct {
	comments []string
	cmd      string
	line     int
	want     []string
}

func parseScript(t *testing.T, path string) []block {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur block
	inOutput := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inOutput && line == "":
			blocks = append(blocks, cur)
			cur, inOutput = block{}, false
		case inOutput:
			cur.want = append(cur.want, line)
		case line == "----":
			if cur.cmd == "" {
				t.Fatalf("%s:%d: output without a command", path, n)
			}
			inOutput = true
		case strings.HasPrefix(line, "#") || (line == "" && cur.cmd == ""):
			cur.comments = append(cur.comments, line)
		case cur.cmd != "":
			t.Fatalf("%s:%d: second command %q before ----", path, n, line)
		default:
			cur.cmd, cur.line = line, n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inOutput || cur.cmd != "" {
		blocks = append(blocks, cur)
	}
	return blocks
}

func runScenario(t *testing.T, path string) {
	blocks := parseScript(t, path)
	s := &scenario{t: t}
	var out strings.Builder
	for i := range blocks {
		b := &blocks[i]
		got := s.exec(b)
		if *rewrite {
			b.want = got
			continue
		}
		if !slices.Equal(got, b.want) {
			t.Errorf("%s:%d: %s\n got:\n  %s\n want:\n  %s", path, b.line, b.cmd,
				strings.Join(got, "\n  "), strings.Join(b.want, "\n  "))
		}
	}
	if !*rewrite {
		return
	}
	for _, b := range blocks {
		for _, c := range b.comments {
			out.WriteString(c + "\n")
		}
		out.WriteString(b.cmd + "\n----\n")
		for _, l := range b.want {
			out.WriteString(l + "\n")
		}
		out.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scenario runs one script.
type scenario struct {
	t       *testing.T
	c       *cluster
	out     []string
	verbose bool // print messages, not only states and hard state
}

// fatalf stops the script at the current command.
func (s *scenario) fatalf(b *block, format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("line %d: %s: %s", b.line, b.cmd, fmt.Sprintf(format, args...))
}

func (s *scenario) emit(format string, args ...any) {
	s.out = append(s.out, fmt.Sprintf(format, args...))
}

// observe prints what a Ready holds, once its hard state is on disk.
func (s *scenario) observe(c *cluster, p *peer, rd election.Ready) {
	at := fmtDur(c.now)
	if hs := rd.HardState; hs != nil {
		s.emit("%s %s: persist term=%d vote=%q", at, p.id, hs.Term, hs.Vote)
	}
	if s.verbose {
		for _, m := range rd.Messages {
			s.emit("%s %s: send %s", at, p.id, election.Describe(m))
		}
	}
	for _, st := range rd.States {
		// Renewals every heartbeat would drown a long run; status shows
		// the lease.
		if !s.verbose && st.Reason == election.ReasonLeaseRenewed {
			continue
		}
		s.emit("%s %s: %s", at, p.id, fmtState(st, c.local(p.id)))
	}
}

// fmtDur prints a duration with millisecond precision, which the scripts
// are written in.
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

func fmtState(st election.State, now time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s term=%d", st.Role, st.Term)
	if st.Master != "" {
		fmt.Fprintf(&b, " master=%s", st.Master)
	}
	if st.LeaseUntil != 0 {
		fmt.Fprintf(&b, " lease=+%s", fmtDur(st.LeaseUntil-now))
	}
	fmt.Fprintf(&b, " (%s)", st.Reason)
	return b.String()
}

// args splits a command's key=value arguments from its plain ones.
func args(fields []string) (plain []string, kv map[string]string) {
	kv = map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else {
			plain = append(plain, f)
		}
	}
	return plain, kv
}

func msgTypeByName(name string) (election.MsgType, bool) {
	for t := election.MsgType(1); t.Valid(); t++ {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}

func (s *scenario) exec(b *block) []string {
	s.t.Helper()
	s.out = nil
	fields := strings.Fields(b.cmd)
	plain, kv := args(fields[1:])
	if fields[0] != "cluster" && s.c == nil {
		s.fatalf(b, "no cluster yet")
	}
	need := func(n int) {
		if len(plain) < n {
			s.fatalf(b, "needs %d arguments", n)
		}
	}
	dur := func(i int, def time.Duration) time.Duration {
		if len(plain) <= i {
			return def
		}
		d, err := time.ParseDuration(plain[i])
		if err != nil {
			s.fatalf(b, "%v", err)
		}
		return d
	}
	node := func(i int) *election.Node {
		need(i + 1)
		p, ok := s.c.peers[plain[i]]
		if !ok {
			s.fatalf(b, "no node %q", plain[i])
		}
		if p.node == nil {
			s.fatalf(b, "node %q is down", plain[i])
		}
		return p.node
	}
	local := func(i int) time.Duration { return s.c.local(plain[i]) }
	collect := func(i int) { s.c.collect(s.c.peers[plain[i]]) }

	switch fields[0] {
	case "cluster":
		s.cluster(b, plain, kv)
	case "fire":
		n := node(0)
		s.verbose = true
		s.c.advanceTo(plain[0], max(n.NextDeadline(), local(0)))
		s.emit("now %s", fmtDur(s.c.now))
		s.c.tick(plain[0])
	case "advance":
		s.c.advance(dur(0, 0))
		s.emit("now %s", fmtDur(s.c.now))
	case "tick":
		s.verbose = true
		s.c.tick(plain...)
	case "deliver", "drop":
		f := s.matcher(b, kv)
		s.verbose = true
		switch {
		case fields[0] == "drop":
			s.emit("dropped %d", s.c.drop(f))
		case slices.Contains(plain, "all"):
			var ms []election.Message
			for _, m := range s.c.inflight {
				if f(m) {
					ms = append(ms, m)
				}
			}
			s.c.drop(f)
			for _, m := range ms {
				s.c.stepTo(m.To, m)
			}
		default:
			m, ok := s.c.take(f)
			if !ok {
				s.fatalf(b, "no such message in flight:\n%s", s.c.describeInflight())
			}
			s.c.stepTo(m.To, m)
		}
	case "inflight":
		for _, m := range s.c.inflight {
			s.emit("%s", election.Describe(m))
		}
	case "run":
		s.verbose = false
		s.c.run(dur(0, 0))
		s.emit("now %s, masters %v", fmtDur(s.c.now), s.c.masters())
	case "until-master":
		s.verbose = false
		if !s.c.runUntil(dur(0, 10*time.Second), s.c.hasMaster) {
			s.emit("no master by %s", fmtDur(s.c.now))
		} else {
			s.emit("now %s, masters %v", fmtDur(s.c.now), s.c.masters())
		}
	case "isolate":
		need(1)
		s.c.isolate(plain[0])
	case "cut":
		need(2)
		s.c.block(plain[0], plain[1])
	case "heal":
		s.c.heal()
	case "crash":
		need(1)
		s.c.crash(plain[0])
	case "restart":
		need(1)
		s.c.restart(plain[0])
	case "transfer":
		n := node(0)
		target := ""
		if len(plain) > 1 {
			target = plain[1]
		}
		s.verbose = true
		if err := n.Transfer(local(0), target); err != nil {
			s.emit("error: %v", err)
		}
		collect(0)
	case "demote-done":
		n := node(0)
		s.verbose = true
		n.DemoteDone(local(0))
		collect(0)
	case "maintenance":
		n := node(0)
		need(2)
		s.verbose = true
		n.SetMaintenance(local(0), plain[1] == "on")
		collect(0)
	case "health":
		n := node(0)
		need(2)
		s.verbose = true
		n.SetHealthy(local(0), plain[1] == "ok")
		collect(0)
	case "status":
		for _, id := range s.c.ids {
			p := s.c.peers[id]
			if p.node == nil {
				s.emit("%s: down, disk term=%d vote=%q", id, p.disk.Term, p.disk.Vote)
				continue
			}
			hs := p.node.HardState()
			s.emit("%s: %s vote=%q master-now=%v", id, fmtState(p.node.State(), s.c.local(id)), hs.Vote, p.node.IsMaster(s.c.local(id)))
		}
	default:
		s.fatalf(b, "unknown command")
	}
	if s.c != nil {
		if ms := s.c.masters(); len(ms) > 1 {
			s.t.Errorf("line %d: %s: %v are master at the same instant %s", b.line, b.cmd, ms, fmtDur(s.c.now))
		}
	}
	return s.out
}

// matcher builds a message filter from type=, from= and to=.
func (s *scenario) matcher(b *block, kv map[string]string) func(election.Message) bool {
	var typ election.MsgType
	if name, ok := kv["type"]; ok {
		if typ, ok = msgTypeByName(name); !ok {
			s.fatalf(b, "unknown message type %q", name)
		}
	}
	return match(typ, kv["from"], kv["to"])
}

func (s *scenario) cluster(b *block, ids []string, kv map[string]string) {
	if len(ids) == 0 {
		s.fatalf(b, "no members")
	}
	ms := members(ids...)
	idx := map[string]int{}
	for i, id := range ids {
		idx[id] = i
	}
	if v, ok := kv["prio"]; ok {
		for _, pair := range strings.Split(v, ",") {
			id, p, _ := strings.Cut(pair, ":")
			n, err := strconv.Atoi(p)
			i, known := idx[id]
			if err != nil || !known {
				s.fatalf(b, "bad priority %q", pair)
			}
			ms[i].Priority = n
		}
	}
	if v, ok := kv["witness"]; ok {
		for _, id := range strings.Split(v, ",") {
			i, known := idx[id]
			if !known {
				s.fatalf(b, "unknown witness %q", id)
			}
			ms[i].Witness = true
		}
	}
	o := clusterOpts{members: ms, observe: s.observe}
	if v, ok := kv["preempt"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.fatalf(b, "%v", err)
		}
		o.preempt, o.holdDown = true, d
	}
	if v, ok := kv["profile"]; ok {
		tm, err := election.ProfileTiming(v)
		if err != nil {
			s.fatalf(b, "%v", err)
		}
		o.timing = tm
	}
	if v, ok := kv["seed"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fatalf(b, "%v", err)
		}
		o.seed = n
	}
	s.verbose = true
	s.c = newCluster(s.t, o)
}
