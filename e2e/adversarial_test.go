package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// The adversarial suite: what a copied configuration, a port scanner or a
// runaway client does to a cluster, and what the cluster must still do.

// startLimited starts node i under a limit of nofile descriptors, with
// prlimit when the machine has it (util-linux), else through the shell's
// ulimit.
func (c *testCluster) startLimited(i int, nofile int) {
	c.t.Helper()
	var cmd *exec.Cmd
	if path, err := exec.LookPath("prlimit"); err == nil {
		cmd = exec.Command(path, fmt.Sprintf("--nofile=%d", nofile), clustdBin, "run", "--config", c.cfgPath[i])
	} else {
		cmd = exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" run --config "$1"`, nofile), clustdBin, c.cfgPath[i])
	}
	c.startCommand(i, cmd)
}

// flood opens n TCP connections to addr that send nothing, and returns a
// function that closes them all.
func flood(t *testing.T, addr string, n int) func() {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	var failed error
	for w := range 8 {
		wg.Go(func() {
			for k := w; k < n; k += 8 {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				mu.Lock()
				if err != nil {
					failed = err
				} else {
					conns = append(conns, conn)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		t.Logf("flood of %s: some connections failed: %v", addr, failed)
	}
	t.Logf("flood of %s: %d connections opened", addr, len(conns))
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// reachable reports whether node i sees member id as reachable.
func (c *testCluster) reachable(i int, id string) bool {
	st, err := c.status(i)
	if err != nil {
		return false
	}
	for _, m := range st.Members {
		if m.ID == id {
			return m.Reachable
		}
	}
	return false
}

// TestPeerFloodUnderDescriptorLimit holds 2,000 idle connections on a
// node's peer port while every daemon runs with 1,024 descriptors. Its
// peer listener once died of EMFILE, and a restarted peer could then never
// reach it again. Elections and failover must keep working through the
// flood, and once it ends a restarted peer must reconnect within a second.
func TestPeerFloodUnderDescriptorLimit(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	for i := range c.ids {
		c.startLimited(i, 1024)
	}
	m, _, _ := c.waitMaster(15 * time.Second)
	// Flood a follower: the one whose vote the next election needs.
	f := c.others(m)[0]
	g := c.others(m, f)[0]
	stop := flood(t, c.peerAddr[f], 2000)

	// Failover: the master dies, f and g elect one of them.
	c.kill(m)
	m2, st2, d := c.waitMaster(15*time.Second, f, g)
	t.Logf("failover during the flood: %s master in term %d after %v", c.ids[m2], st2.Term, d)
	// The old master comes back and must reach the flooded node.
	c.startLimited(m, 1024)
	c.waitFor(15*time.Second, fmt.Sprintf("restarted %s to be reachable from flooded %s", c.ids[m], c.ids[f]), func() bool {
		return c.reachable(f, c.ids[m]) && c.reachable(m, c.ids[f])
	})
	if n := c.mustMetric(f, "clustd_connections_shed_total", "listener=peer"); n == 0 {
		t.Errorf("flooded %s shed no connection", c.ids[f])
	}

	stop()
	other := c.others(f)[0]
	if other == m2 {
		other = c.others(f, m2)[0]
	}
	c.kill(other)
	// Until f notices, it may still count the killed node as reachable.
	c.waitFor(10*time.Second, fmt.Sprintf("%s to see %s gone", c.ids[f], c.ids[other]), func() bool {
		return !c.reachable(f, c.ids[other])
	})
	restarted := time.Now()
	c.startLimited(other, 1024)
	// The restarted node dials the port that was flooded, and f dials it.
	d, ok := poll(10*time.Second, func() bool { return c.reachable(other, c.ids[f]) && c.reachable(f, c.ids[other]) })
	if !ok {
		t.Fatalf("after the flood, restarted %s never reached %s", c.ids[other], c.ids[f])
	}
	t.Logf("after the flood, restarted %s reached %s %v after its start", c.ids[other], c.ids[f], time.Since(restarted).Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("after the flood, restarted %s took %v to reach %s, want within 1s", c.ids[other], d, c.ids[f])
	}
	if lines := c.logLines(f, 0, "peer listener cannot accept"); len(lines) > 0 {
		t.Logf("%s ran out of descriptors at times (and recovered):\n%s", c.ids[f], strings.Join(lines, "\n"))
	}
}

// TestStatusAnswersAmongIdleHTTPConnections holds 1,000 idle connections
// on the local listener of a daemon limited to 512 descriptors, so that
// the flood alone could exhaust them; clustd status must still answer
// within a second.
func TestStatusAnswersAmongIdleHTTPConnections(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileDefault)
	c.startLimited(0, 512)
	c.start(1)
	c.start(2)
	c.waitMaster(15 * time.Second)
	flood(t, c.httpAddr[0], 1000)
	for k := range 3 {
		start := time.Now()
		out, err := exec.Command(clustdBin, "status", "--addr", c.httpAddr[0]).CombinedOutput()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("clustd status among 1,000 idle connections: %v\n%s", err, out)
		}
		t.Logf("clustd status #%d answered in %v", k+1, took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("clustd status took %v among 1,000 idle connections, want within 1s", took)
		}
		if !strings.Contains(string(out), "role:") {
			t.Fatalf("clustd status printed no role:\n%s", out)
		}
	}
}

// copyNode writes a configuration for a second daemon claiming node i's
// member id, with its own data directory and ports, as a careless copy of
// i's file would be.
func (c *testCluster) copyNode(i int) (cfgPath, httpAddr string) {
	c.t.Helper()
	b, err := os.ReadFile(c.cfgPath[i])
	if err != nil {
		c.t.Fatal(err)
	}
	ports := freePorts(c.t, 2)
	id := c.ids[i]
	text := strings.Replace(string(b), fmt.Sprintf("data_dir: %q", id+".data"), fmt.Sprintf("data_dir: %q", id+"-copy.data"), 1)
	text = strings.Replace(text, fmt.Sprintf("listen: %q", c.httpAddr[i]), fmt.Sprintf("listen: \"127.0.0.1:%d\"", ports[1]), 1)
	text += fmt.Sprintf("listen: \"127.0.0.1:%d\"\n", ports[0])
	cfgPath = filepath.Join(c.dir, id+"-copy.yml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return cfgPath, fmt.Sprintf("127.0.0.1:%d", ports[1])
}

func (c *testCluster) statusAt(ctx context.Context, addr string) (api.Status, error) {
	cl := &api.Client{Addr: addr}
	st, err := cl.Status(ctx)
	if err != nil {
		return api.Status{}, err
	}
	return *st, nil
}

// TestDuplicateMemberRefusedUnderPauses starts a second daemon with a copy
// of a node's configuration, checks that it is refused and reported on
// both ends, then pauses the master 50 times with SIGSTOP and SIGCONT: at
// no time may a term have two masters, and the copy must never be master.
func TestDuplicateMemberRefusedUnderPauses(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	c.startAll()
	m, _, _ := c.waitMaster(15 * time.Second)
	b := c.others(m)[0]
	cfgPath, copyHTTP := c.copyNode(b)
	copyLog := filepath.Join(c.dir, c.ids[b]+"-copy.log")
	cp := c.spawn(copyLog, "run", "--config", cfgPath)
	t.Cleanup(func() {
		cp.Kill()
		if t.Failed() {
			log, _ := os.ReadFile(copyLog)
			t.Logf("----- log of the copy of %s -----\n%s", c.ids[b], log)
		}
	})

	var peerSaw, copySaw api.Duplicate
	c.waitFor(15*time.Second, "the duplicate to be reported on both ends", func() bool {
		st, err := c.status(m)
		if err != nil || len(st.Duplicates) == 0 {
			return false
		}
		peerSaw = st.Duplicates[0]
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cst, err := c.statusAt(ctx, copyHTTP)
		if err != nil || len(cst.Duplicates) == 0 {
			return false
		}
		copySaw = cst.Duplicates[0]
		return true
	})
	t.Logf("master %s reports %+v; the copy reports %+v", c.ids[m], peerSaw, copySaw)
	if peerSaw.Member != c.ids[b] || peerSaw.Live == "" || peerSaw.Refused == "" {
		t.Errorf("master's report %+v does not name member %s and both addresses", peerSaw, c.ids[b])
	}
	if copySaw.Member != c.ids[b] || copySaw.Peer == "" {
		t.Errorf("copy's report %+v does not name its member id and the refusing peer", copySaw)
	}
	if n := c.mustMetric(m, "clustd_duplicate_members_total"); n < 1 {
		t.Errorf("clustd_duplicate_members_total on %s is %v", c.ids[m], n)
	}
	if lines := c.logLines(m, 0, "level=ERROR", "second live daemon", "live=", "refused="); len(lines) == 0 {
		t.Errorf("master %s logged no error naming both addresses", c.ids[m])
	}
	copyText, _ := os.ReadFile(copyLog)
	if !strings.Contains(string(copyText), "level=ERROR") || !strings.Contains(string(copyText), "another live daemon") {
		t.Errorf("the copy logged no error about being refused:\n%s", copyText)
	}
	if out, err := exec.Command(clustdBin, "status", "--addr", c.httpAddr[m]).CombinedOutput(); err != nil || !strings.Contains(string(out), "DUPLICATE MEMBER") {
		t.Errorf("clustd status does not show the duplicate (%v):\n%s", err, out)
	}

	// 50 pauses of whoever is master, each shorter than the time after
	// which a silent instance may be replaced, some long enough to fail
	// over.
	p := c.startPoller()
	var copyMaster []api.Status
	stopCopyPoll := make(chan struct{})
	var copyPoll sync.WaitGroup
	copyPoll.Go(func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			st, err := c.statusAt(ctx, copyHTTP)
			cancel()
			if err == nil && st.Role == "master" {
				copyMaster = append(copyMaster, st)
			}
			select {
			case <-stopCopyPoll:
				return
			case <-time.After(pollEvery):
			}
		}
	})
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	failovers := 0
	for cycle := range 50 {
		var cur int
		c.waitFor(15*time.Second, fmt.Sprintf("a master before pause %d", cycle+1), func() bool {
			var ok bool
			cur, _, ok = c.master()
			return ok
		})
		pause := time.Duration(50+rnd.IntN(350)) * time.Millisecond
		c.signal(cur, syscall.SIGSTOP)
		time.Sleep(pause)
		c.signal(cur, syscall.SIGCONT)
		if next, _, ok := c.master(); ok && next != cur {
			failovers++
		}
	}
	samples := p.close()
	close(stopCopyPoll)
	copyPoll.Wait()
	t.Logf("50 pauses of the master, %d seen to fail over", failovers)

	byTerm := map[uint64]map[int]bool{}
	for _, s := range samples {
		if s.st.Role != "master" {
			continue
		}
		if byTerm[s.st.Term] == nil {
			byTerm[s.st.Term] = map[int]bool{}
		}
		byTerm[s.st.Term][s.node] = true
	}
	for term, nodes := range byTerm {
		if len(nodes) > 1 {
			var names []string
			for i := range nodes {
				names = append(names, c.ids[i])
			}
			t.Errorf("term %d had two masters: %v", term, names)
		}
	}
	if len(copyMaster) > 0 {
		t.Errorf("the copy of %s reported master %d times, first %+v", c.ids[b], len(copyMaster), copyMaster[0])
	}
	checkNoOverlap(t, c, samples)
}

// heartbeatResp encodes an election heartbeat acknowledgement frame as
// node/wire.go lays it out.
func heartbeatResp(from, to string, term uint64, sent time.Duration) []byte {
	b := []byte{frameMessage, byte(election.MsgHeartbeatResp), 0}
	b = binary.AppendUvarint(b, term)
	b = binary.AppendVarint(b, int64(sent))
	b = binary.AppendVarint(b, 0)
	b = binary.AppendUvarint(b, 0)
	b = append(b, byte(len(from)))
	b = append(b, from...)
	b = append(b, byte(len(to)))
	return append(b, to...)
}

// TestForgedHeartbeatAckExtendsNothing: a holder of the cluster secret,
// authenticated as a member that is not running, acknowledges rounds the
// master never sent while the only real follower is paused. The master
// must lose its lease as if nobody answered.
func TestForgedHeartbeatAckExtendsNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	const fake = 2
	c.start(0)
	c.start(1)
	m, st, _ := c.waitMaster(15*time.Second, 0, 1)
	f := 1 - m
	cfg, err := config.Load(c.cfgPath[fake])
	if err != nil {
		t.Fatal(err)
	}
	s, _ := dialAs(t, c.peerAddr[m], cfg.Secret, transport.Hello{Node: c.ids[fake], ClusterHash: cfg.MembersHash(), Instance: transport.NewInstance()}, c.ids[m])
	defer s.Close()
	// The ack is checked as a real message: a wrong layout would be
	// dropped as undecodable and prove nothing.
	before := c.mustMetric(m, "clustd_frames_dropped_total", "reason=decode")
	stop := make(chan struct{})
	var sent sync.WaitGroup
	sent.Go(func() {
		for k := 0; ; k++ {
			// Rounds in the far future, and near the master's clock.
			stamps := []time.Duration{time.Duration(1) << 61, time.Duration(time.Now().UnixNano()) + time.Duration(k)*time.Millisecond}
			for _, at := range stamps {
				if s.Send(heartbeatResp(c.ids[fake], c.ids[m], st.Term, at)) != nil {
					return
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	defer func() {
		close(stop)
		sent.Wait()
	}()
	c.signal(f, syscall.SIGSTOP)
	defer c.signal(f, syscall.SIGCONT)
	c.waitFor(10*time.Second, fmt.Sprintf("%s to lose its lease with only forged acknowledgements", c.ids[m]), func() bool {
		s, err := c.status(m)
		return err == nil && (s.Role != "master" || s.LeaseMS <= 0)
	})
	if after := c.mustMetric(m, "clustd_frames_dropped_total", "reason=decode"); after != before {
		t.Fatalf("the forged acknowledgements did not decode (%v dropped): the test proves nothing", after-before)
	}
}
