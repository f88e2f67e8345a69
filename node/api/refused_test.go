package api

import (
	"strings"
	"testing"
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
