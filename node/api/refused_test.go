package api

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/journal"
)

func TestLogRefusedHook(t *testing.T) {
	seen := map[string]bool{}
	var asked []string
	e := newEnv(t, func(o *HandlerOptions) {
		o.LogRefused = func(remote string) bool {
			asked = append(asked, remote)
			first := !seen[remote]
			seen[remote] = true
			return first
		}
	})
	for range 20 {
		e.do(request{method: "POST", target: "/v1/transfer", token: "wrong"})
		e.do(request{method: "POST", target: "/v1/maintenance?on=maybe", token: testToken})
	}
	if len(asked) != 40 {
		t.Fatalf("LogRefused asked %d times for 40 refusals", len(asked))
	}
	if n := strings.Count(e.log.String(), "admin request refused"); n != 1 {
		t.Fatalf("%d refusals logged from one source, want 1:\n%s", n, e.log.String())
	}
}

// TestEventStreamOutlivesServerTimeouts: the daemon's listener has read
// and write timeouts; an event stream must go on past them.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	j, err := journal.Open(journal.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	srv := httptest.NewUnstartedServer(NewHandler(HandlerOptions{Daemon: &fakeDaemon{status: sampleStatus()}, Journal: j}))
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stop := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer stop.Stop()
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	statuses := 0
	for sc.Scan() {
		if sc.Text() == "event: status" {
			statuses++
		}
		// Status events come every statusEvery (1s): the third is well
		// past both timeouts.
		if statuses == 3 {
			break
		}
	}
	if statuses < 3 {
		t.Fatalf("the stream ended after %v and %d status events: %v", time.Since(start).Round(time.Millisecond), statuses, sc.Err())
	}
}
