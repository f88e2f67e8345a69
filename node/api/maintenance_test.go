package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// windowDaemon is a daemon whose maintenance ends by itself.
type windowDaemon struct {
	fakeDaemon
	got []MaintenanceRequest
}

func (d *windowDaemon) SetMaintenanceFor(_ context.Context, on bool, dur time.Duration, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := MaintenanceRequest{On: on, Reason: reason}
	if dur > 0 {
		r.For = dur.String()
	}
	d.got = append(d.got, r)
	return nil
}

func TestMaintenanceWindow(t *testing.T) {
	for _, c := range []struct {
		name, target, body string
		code               int
		want               MaintenanceRequest
		errSub             string
	}{
		{"for and reason", "/v1/maintenance", `{"on":true,"for":"2h","reason":"kernel upgrade"}`, 200, MaintenanceRequest{On: true, For: "2h0m0s", Reason: "kernel upgrade"}, ""},
		{"old body", "/v1/maintenance", `{"on":true}`, 200, MaintenanceRequest{On: true}, ""},
		{"query", "/v1/maintenance?on=off", ``, 200, MaintenanceRequest{}, ""},
		{"bad for", "/v1/maintenance", `{"on":true,"for":"soon"}`, 400, MaintenanceRequest{}, `"for": "soon" is not a duration`},
		{"too long", "/v1/maintenance", `{"on":true,"for":"200h"}`, 400, MaintenanceRequest{}, "168h0m0s"},
		{"too short", "/v1/maintenance", `{"on":true,"for":"10ms"}`, 400, MaintenanceRequest{}, "from 1s"},
		{"negative", "/v1/maintenance", `{"on":true,"for":"-1h"}`, 400, MaintenanceRequest{}, "is not a duration"},
		{"for with off", "/v1/maintenance", `{"on":false,"for":"1h"}`, 400, MaintenanceRequest{}, `go with {"on": true} only`},
		{"control in reason", "/v1/maintenance", `{"on":true,"reason":"a\nb"}`, 400, MaintenanceRequest{}, "control character"},
		{"long reason", "/v1/maintenance", `{"on":true,"reason":"` + strings.Repeat("x", 201) + `"}`, 400, MaintenanceRequest{}, "at most 200"},
		{"misspelt", "/v1/maintenance", `{"on":true,"For":"1h"}`, 400, MaintenanceRequest{}, "malformed JSON body"},
	} {
		d := &windowDaemon{}
		srv := httptest.NewServer(NewHandler(HandlerOptions{Daemon: d, Token: testToken}))
		req, _ := http.NewRequest("POST", srv.URL+c.target, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != c.code || !strings.Contains(e.Error, c.errSub) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, e.Error, c.code, c.errSub)
			continue
		}
		if c.code == 200 && (len(d.got) != 1 || d.got[0] != c.want) {
			t.Errorf("%s: daemon got %+v, want %+v", c.name, d.got, c.want)
		}
		if c.code != 200 && len(d.got) != 0 {
			t.Errorf("%s: refused request reached the daemon: %+v", c.name, d.got)
		}
	}
}
