package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestSeedRouting(t *testing.T) {
	var seen []string
	seed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	e := newEnv(t, func(o *HandlerOptions) { o.Seed = seed })
	if rec := e.do(request{method: "GET", target: "/", header: map[string]string{"metadata": "x"}}); rec.Code != http.StatusTeapot {
		t.Errorf("GET / with a metadata header: code %d, want the seed handler's", rec.Code)
	}
	if rec := e.do(request{method: "GET", target: "/"}); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<h1") {
		t.Errorf("GET / without one: code %d, want the page", rec.Code)
	}
	if rec := e.do(request{method: "GET", target: "/v1/status", header: map[string]string{"metadata": "x"}}); rec.Code != http.StatusOK {
		t.Errorf("the header elsewhere: code %d", rec.Code)
	}
	if len(seen) != 1 {
		t.Errorf("seed handler saw %q", seen)
	}

	off := newEnv(t, nil)
	rec := off.do(request{method: "GET", target: "/", header: map[string]string{"metadata": "x"}})
	if rec.Code != http.StatusForbidden {
		t.Errorf("no seed handler: code %d, want 403", rec.Code)
	}
}

func TestSeedDriversListed(t *testing.T) {
	e := newEnv(t, nil)
	e.d.status.SeedDrivers = []SeedDriverStatus{{ID: "driver-shell-42", Remote: "127.0.0.1:50000", ToldMaster: true, Holding: true, SinceMS: 1500}}
	body := e.do(request{method: "GET", target: "/"}).Body.String()
	for _, want := range []string{"Legacy 2018 drivers", "driver-shell-42", "no lease", "unplanned failover", "1.5s ago"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(e.do(request{method: "GET", target: "/v1/status"}).Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	ds, _ := got["seed_drivers"].([]any)
	if len(ds) != 1 {
		t.Fatalf("seed_drivers = %v", got["seed_drivers"])
	}
	d := ds[0].(map[string]any)
	for _, k := range []string{"id", "remote", "told_master", "holding", "since_ms"} {
		if _, ok := d[k]; !ok {
			t.Errorf("seed driver lacks %q: %v", k, d)
		}
	}

	e.d.status.SeedDrivers = nil
	body = e.do(request{method: "GET", target: "/"}).Body.String()
	if strings.Contains(body, "Legacy 2018 drivers") {
		t.Error("the page shows the legacy section with no such driver")
	}
	got = nil
	json.Unmarshal(e.do(request{method: "GET", target: "/v1/status"}).Body.Bytes(), &got)
	if _, ok := got["seed_drivers"]; ok {
		t.Error("seed_drivers present with no such driver")
	}
}
