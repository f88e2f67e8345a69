package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clustd/clustd/internal/localcluster"
)

// TestImportSeedRuns converts three 2018 daemons' config.yml with clustd
// import-seed and runs the result: the nodes elect a master, and each
// accepts the 2018 drivers at the old port's root path, on 127.0.0.1,
// while its peers use the machine's own address.
func TestImportSeedRuns(t *testing.T) {
	t.Parallel()
	base := freePorts(t, 3)[0]
	dir := t.TempDir()
	const secret = "vxLjIO8pOjvcA48RlXWCy8D/RIr/2S0y/gF1ncypHDjM9oINXfRkUW2wN/tKmjYF"
	// Three "machines" on this one: 127.0.0.2 stands for each one's own
	// address, and each keeps its own port so their local listeners on
	// 127.0.0.1 do not collide.
	url := func(i int) string { return fmt.Sprintf("ws://127.0.0.2:%d", base+i) }
	var args []string
	for i := range 3 {
		var machines strings.Builder
		for j := range 3 {
			if j != i {
				fmt.Fprintf(&machines, "    - %s\n", url(j))
			}
		}
		old := fmt.Sprintf("server:\n  bind_address: 0.0.0.0\n  bind_port: %d\n  remote_address: %s\ncluster:\n  secret: '%s'\n  id: web-%d\n  machines:\n%s",
			base+i, url(i), secret, i+1, machines.String())
		path := filepath.Join(dir, fmt.Sprintf("old-%d.yml", i+1))
		if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	conf := filepath.Join(dir, "clustd")
	out, err := exec.Command(clustdBin, append(append([]string{"import-seed"}, args...), "--dir", conf)...).CombinedOutput()
	if err != nil {
		t.Fatalf("clustd import-seed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "not carried over:") || !strings.Contains(string(out), `server.bind_address: "0.0.0.0" is not carried over`) {
		t.Fatalf("import-seed does not say what it could not carry over:\n%s", out)
	}

	var ids, local, configs []string
	for i := range 3 {
		id := fmt.Sprintf("web-%d", i+1)
		ids = append(ids, id)
		local = append(local, fmt.Sprintf("127.0.0.1:%d", base+i))
		configs = append(configs, filepath.Join(conf, id+".yml"))
	}
	c := adopt(t, localcluster.Open(clustdBin, conf, ids, configs, local))
	c.startAll()
	c.waitMaster(30*time.Second, 0, 1, 2)

	for i := range 3 {
		// The status page still answers at /.
		page, err := c.get(t.Context(), i, "/")
		if err != nil || !strings.Contains(string(page), "clustd: node "+c.ids[i]) {
			t.Fatalf("%s: GET /: %v\n%s", c.ids[i], err, page)
		}
		// A 2018 driver's upgrade reaches the seed driver server: a
		// metadata header under another secret is refused as such.
		h := http.Header{}
		h.Set("metadata", base64.StdEncoding.EncodeToString(make([]byte, 40)))
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+c.httpAddr[i]+"/", h)
		if err == nil {
			ws.Close()
			t.Fatalf("%s: a driver with the wrong secret was accepted", c.ids[i])
		}
		var body []byte
		if resp != nil {
			body, _ = io.ReadAll(resp.Body)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "does not decrypt") {
			t.Fatalf("%s: wrong secret: %v %s", c.ids[i], err, body)
		}
		if n := c.mustMetric(i, "clustd_seed_drivers_connected"); n != 0 {
			t.Errorf("%s: clustd_seed_drivers_connected = %v", c.ids[i], n)
		}
		if !strings.Contains(c.logText(i), "2018 (clustd-lib) drivers are accepted") {
			t.Errorf("%s: the log does not warn that 2018 drivers are accepted", c.ids[i])
		}
	}
}
