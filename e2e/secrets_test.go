package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/transport"
)

// TestOpenSecretFilesRefused loosens each secret file in turn: the
// daemon, a driver and the admin commands each refuse the file they read,
// with the chmod that fixes it.
func TestOpenSecretFilesRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, profileFast)
	secret := filepath.Join(c.dir, "secret")
	drivers := filepath.Join(c.dir, "drivers.secret")
	token := filepath.Join(c.dir, "admin.token")
	cases := []struct {
		file string
		args []string
	}{
		{secret, []string{"run", "--config", c.cfgPath[0]}},
		{drivers, []string{"driver", "shell", "--config", c.cfgPath[0], "--on-master", "true", "--on-standby", "true"}},
		{token, []string{"transfer", "--config", c.cfgPath[0]}},
		{token, []string{"maintenance", "--token-file", token, "on"}},
		{secret, []string{"transfer", "--secret-file", secret}},
	}
	for _, tc := range cases {
		if err := os.Chmod(tc.file, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, clustdBin, tc.args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("clustd %s with %s at 0644: %v, want exit status 1\n%s", strings.Join(tc.args, " "), tc.file, err, out)
		}
		if want := "chmod 600 " + tc.file; !strings.Contains(string(out), want) {
			t.Errorf("clustd %s with %s at 0644 does not say %q:\n%s", strings.Join(tc.args, " "), tc.file, want, out)
		}
		os.Chmod(tc.file, 0o600)
	}
}

// TestDriversSecretOpensNothingElse gives the holder of the drivers
// secret, and nothing else, a try at the peer port and at the admin API:
// both must refuse it, while it still serves a driver.
func TestDriversSecretOpensNothingElse(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, profileFast)
	c.startAll()
	m, _, _ := c.waitMaster(15 * time.Second)
	driversSecret, err := os.ReadFile(filepath.Join(c.dir, "drivers.secret"))
	if err != nil {
		t.Fatal(err)
	}
	driversSecret = []byte(strings.TrimSpace(string(driversSecret)))
	cfg, err := config.LoadFor(c.cfgPath[m], config.NoSecrets)
	if err != nil {
		t.Fatal(err)
	}

	// A peer handshake as a member, proving the drivers secret.
	conn, err := net.Dial("tcp", c.peerAddr[m])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other := c.ids[c.others(m)[0]]
	_, err = transport.Client(ctx, conn, driversSecret, transport.Hello{Node: other, ClusterHash: cfg.MembersHash(), Instance: transport.NewInstance()}, c.ids[m])
	if err == nil || !(errors.Is(err, transport.ErrPeerClosed) || errors.Is(err, transport.ErrAuth)) {
		t.Fatalf("a peer handshake with the drivers secret: %v; want it refused", err)
	}

	// Admin requests with a token derived from the drivers secret, and
	// with the drivers secret itself as the token.
	for _, tok := range []string{api.AdminToken(driversSecret), string(driversSecret)} {
		cl := &api.Client{Addr: c.httpAddr[m], Token: tok}
		err := cl.Transfer(ctx, "")
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 401 {
			t.Fatalf("a transfer with a token from the drivers secret: %v; want 401", err)
		}
	}
	out, err := exec.Command(clustdBin, "transfer", "--addr", c.httpAddr[m], "--secret-file", filepath.Join(c.dir, "drivers.secret")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("clustd transfer --secret-file drivers.secret: %v\n%s", err, out)
	}
	if st, err := c.status(m); err != nil || st.Role != "master" {
		t.Fatalf("after the attempts, %s: %+v %v", c.ids[m], st, err)
	}
	// The admin token does what the drivers secret cannot.
	out, err = exec.Command(clustdBin, "maintenance", "--addr", c.httpAddr[m], "--token-file", filepath.Join(c.dir, "admin.token"), "on").CombinedOutput()
	if err != nil {
		t.Fatalf("clustd maintenance with the admin token file: %v\n%s", err, out)
	}
}
