package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/internal/tlstest"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// TestDuplicateMemberRefused starts a second daemon with a copy of a
// follower's configuration (its own data directory and ports) and checks
// that the peers refuse it, say so in status and metrics, and that the
// second daemon reports being refused.
func TestDuplicateMemberRefused(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	f := (m + 1) % 3
	orig := tc.cfgs[f]
	ports := freePorts(t, 2)
	data, err := os.ReadFile(orig.Path)
	if err != nil {
		t.Fatal(err)
	}
	yml := string(data)
	yml = strings.Replace(yml, fmt.Sprintf("data_dir: %s.data", orig.ID), fmt.Sprintf("data_dir: %s-copy.data", orig.ID), 1)
	yml = strings.Replace(yml, "http:\n  listen: "+orig.HTTPListen, fmt.Sprintf("http:\n  listen: 127.0.0.1:%d", ports[1]), 1)
	yml += fmt.Sprintf("listen: 127.0.0.1:%d\n", ports[0])
	path := filepath.Join(filepath.Dir(orig.Path), orig.ID+"-copy.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dup.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		s := tc.daemons[m].Status()
		ds := dup.Status()
		seen := len(s.Duplicates) > 0 && s.Duplicates[0].Member == orig.ID && s.Duplicates[0].Live != "" && s.Duplicates[0].Refused != ""
		told := len(ds.Duplicates) > 0 && ds.Duplicates[0].Member == orig.ID && ds.Duplicates[0].Peer != ""
		if seen && told {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("duplicate of %s not reported within 15s:\nmaster n%d sees %+v\nthe copy sees %+v", orig.ID, m+1, s.Duplicates, ds.Duplicates)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The copy is never heard as a member; the original still is, and
	// the cluster keeps its master.
	if ds := dup.Status(); ds.Role == "master" {
		t.Fatalf("the copy became master: %+v", ds)
	}
	for _, ms := range tc.daemons[m].Status().Members {
		if ms.ID == orig.ID && !ms.Reachable {
			t.Fatalf("the original %s is no longer reachable from the master", orig.ID)
		}
	}
	if got := tc.waitMaster(-1); got != m {
		t.Fatalf("master moved from n%d to n%d", m+1, got+1)
	}
}

func TestMemberAddressMustBeLocal(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	base := fmt.Sprintf("id: a\ndata_dir: a.data\nsecret: %q\nmembers:\n  - id: a\n    address: 192.0.2.10:%d\n  - id: b\n    address: 127.0.0.1:1\n  - id: c\n    address: 127.0.0.1:2\nhttp:\n  listen: 127.0.0.1:%d\n",
		strings.Repeat("ab", 32), ports[0], ports[1])
	path := filepath.Join(dir, "a.yml")
	os.WriteFile(path, []byte(base), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "not an address of this machine") || !strings.Contains(err.Error(), "set listen explicitly") {
		t.Fatalf("New with a foreign member address: %v", err)
	}
	os.WriteFile(path, []byte(base+fmt.Sprintf("listen: 127.0.0.1:%d\n", ports[0])), 0o600)
	if cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New with listen set explicitly: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx)
}

// TestLocalListenerTLS: with a certificate the local listener speaks
// HTTPS only.
func TestLocalListenerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlstest.Write(t, dir)
	ports := freePorts(t, 2)
	yml := fmt.Sprintf("id: a\ndata_dir: a.data\nsecret: %q\nmembers:\n  - id: a\n    address: 127.0.0.1:%d\n  - id: b\n    address: 127.0.0.1:1\n  - id: c\n    address: 127.0.0.1:2\nhttp:\n  listen: 127.0.0.1:%d\n  tls_cert_file: %s\n  tls_key_file: %s\n",
		strings.Repeat("ab", 32), ports[0], ports[1], certFile, keyFile)
	path := filepath.Join(dir, "a.yml")
	os.WriteFile(path, []byte(yml), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Get("https://" + d.HTTPAddr().String() + "/v1/status")
	if err != nil {
		t.Fatalf("HTTPS status: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS status: %s", resp.Status)
	}
	// Drivers' websockets work over it too: the challenge arrives.
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := dialer.Dial("wss://"+d.HTTPAddr().String()+driverproto.Path, nil)
	if err != nil {
		t.Fatalf("driver websocket over TLS: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	ws.Close()
	if m, derr := driverproto.Decode(b); err != nil || derr != nil || m.Type != driverproto.TypeChallenge {
		t.Fatalf("first driver message over TLS: %q, %v, %v", b, err, derr)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + d.HTTPAddr().String() + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on a TLS listener")
		}
	}
}

// TestVersion1Member: an older daemon's handshake (version 1, no instance
// id) is served while no instance of that member with an id is live, and
// refused while one is.
func TestVersion1Member(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	f := (m + 1) % 3
	dialV1 := func() (*transport.Session, error) {
		conn, err := net.Dial("tcp", tc.cfgs[m].Self().Address)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hello := transport.Hello{Node: tc.cfgs[f].ID, ClusterHash: tc.cfgs[f].MembersHash(), Version: transport.V1}
		return transport.Client(ctx, conn, tc.cfgs[f].Secret, hello, tc.cfgs[m].ID)
	}
	if s, err := dialV1(); !errors.Is(err, transport.ErrDuplicate) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("version 1 as n%d while its daemon is up: %v, want a refusal as a duplicate", f+1, err)
	}
	tc.stop(f)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := dialV1()
		if err == nil {
			s.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("version 1 as n%d after its daemon stopped: %v", f+1, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.start(f)
	if got := tc.waitMaster(-1); got != m {
		t.Fatalf("master moved to n%d", got+1)
	}
}

// TestDialFallsBackToVersion1: a peer that speaks only handshake version
// 1 (an older clustd, here a stand-in) hangs up on version 2; the daemon
// dials again in version 1 and gets its session.
func TestDialFallsBackToVersion1(t *testing.T) {
	tc := newTestCluster(t, 3)
	m := tc.waitMaster(-1)
	f := (m + 1) % 3
	tc.stop(f)
	ln, err := net.Listen("tcp", tc.cfgs[f].Self().Address)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	old := transport.Hello{Node: tc.cfgs[f].ID, ClusterHash: tc.cfgs[f].MembersHash(), Version: transport.V1}
	got := make(chan transport.Hello, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := transport.Server(ctx, conn, tc.cfgs[f].Secret, old, nil)
				if err != nil {
					return
				}
				defer s.Close()
				select {
				case got <- s.Peer():
				default:
				}
				s.Recv()
			}()
		}
	}()
	select {
	case p := <-got:
		if p.Node != tc.cfgs[m].ID || p.Version != transport.V1 {
			t.Fatalf("the version 1 stand-in got a session from %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("n%d never got a version 1 session to the stand-in for n%d", m+1, f+1)
	}
}
