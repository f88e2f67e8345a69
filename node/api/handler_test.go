package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdminToken(t *testing.T) {
	// Computed independently: HMAC-SHA256(key=testSecret, "clustd admin token v1").
	const want = "06766d77306380569b4c2f8fa3b489af4f652d2a9d10280eaf14f794cdd90dfc"
	if got := AdminToken([]byte(testSecret)); got != want {
		t.Fatalf("AdminToken = %s, want %s", got, want)
	}
	if AdminToken([]byte(testSecret+"x")) == want {
		t.Fatal("a different secret gives the same token")
	}
}

func TestStatusRoute(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(request{method: "GET", target: "/v1/status"})
	if rec.Code != http.StatusOK {
		t.Fatalf("code %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got Status
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleStatus()) {
		t.Errorf("status\n got %+v\nwant %+v", got, sampleStatus())
	}
	// The keys are an interface scripts rely on.
	for _, k := range []string{`"node"`, `"role"`, `"term"`, `"master"`, `"lease_ms"`, `"eligible"`, `"maintenance"`, `"healthy"`, `"witness"`, `"reason"`, `"since_ms"`, `"members"`, `"last_seen_ms"`, `"rtt_ms"`, `"reachable"`, `"self"`, `"priority"`, `"address"`, `"id"`} {
		if !strings.Contains(rec.Body.String(), k) {
			t.Errorf("status JSON lacks key %s", k)
		}
	}

	if rec := e.do(request{method: "HEAD", target: "/v1/status"}); rec.Code != http.StatusOK {
		t.Errorf("HEAD: code %d", rec.Code)
	}
}

func TestStatusEmptyMembersIsList(t *testing.T) {
	e := newEnv(t, nil)
	e.d.status = Status{Node: "n1", Role: "follower"}
	rec := e.do(request{method: "GET", target: "/v1/status"})
	if !strings.Contains(rec.Body.String(), `"members": []`) {
		t.Errorf("members should be [] not null: %s", rec.Body)
	}
}

func TestRoutes(t *testing.T) {
	type want struct {
		code      int
		errSub    string   // substring of the Error body; "" for success
		transfers []string // daemon calls expected
		maint     []bool
	}
	big := `{"to": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tests := []struct {
		name string
		req  request
		want want
	}{
		// Transfer: body, query and defaults.
		{"transfer empty body", request{method: "POST", target: "/v1/transfer", token: testToken}, want{code: 200, transfers: []string{""}}},
		{"transfer body to", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"n2"}`}, want{code: 200, transfers: []string{"n2"}}},
		{"transfer body empty object", request{method: "POST", target: "/v1/transfer", token: testToken, body: " {} \n"}, want{code: 200, transfers: []string{""}}},
		{"transfer body to null", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":null}`}, want{code: 200, transfers: []string{""}}},
		{"transfer query", request{method: "POST", target: "/v1/transfer?to=n2", token: testToken}, want{code: 200, transfers: []string{"n2"}}},
		{"transfer query and same body", request{method: "POST", target: "/v1/transfer?to=n2", token: testToken, body: `{"to":"n2"}`}, want{code: 200, transfers: []string{"n2"}}},
		{"transfer query and empty body object", request{method: "POST", target: "/v1/transfer?to=n2", token: testToken, body: `{}`}, want{code: 200, transfers: []string{"n2"}}},
		{"transfer query and other body", request{method: "POST", target: "/v1/transfer?to=n2", token: testToken, body: `{"to":"n3"}`}, want{code: 400, errSub: "give the target once"}},
		{"transfer empty query", request{method: "POST", target: "/v1/transfer?to=", token: testToken}, want{code: 400, errSub: "?to= is empty"}},
		{"transfer repeated query", request{method: "POST", target: "/v1/transfer?to=a&to=b", token: testToken}, want{code: 400, errSub: "given 2 times"}},
		{"transfer unknown query", request{method: "POST", target: "/v1/transfer?too=n2", token: testToken}, want{code: 400, errSub: `unknown query parameter "too"`}},
		{"transfer bad escape", request{method: "POST", target: "/v1/transfer?to=%zz", token: testToken}, want{code: 400, errSub: "malformed query string"}},
		{"transfer invalid id", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"<n2>"}`}, want{code: 400, errSub: "not a valid node id"}},
		{"transfer invalid id query", request{method: "POST", target: "/v1/transfer?to=a%20b", token: testToken}, want{code: 400, errSub: "not a valid node id"}},
		{"transfer long id", request{method: "POST", target: "/v1/transfer?to=" + strings.Repeat("a", 65), token: testToken}, want{code: 400, errSub: "not a valid node id"}},
		{"transfer unknown field", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"target":"n2"}`}, want{code: 400, errSub: `unknown field "target"`}},
		{"transfer case-variant key", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"To":"n2"}`}, want{code: 400, errSub: `unknown field "To"`}},
		{"transfer duplicate key", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"n2","to":"n3"}`}, want{code: 400, errSub: `field "to" is given twice`}},
		{"transfer wrong type", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":2}`}, want{code: 400, errSub: `"to" must be a string`}},
		{"transfer syntax", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"n2",}`}, want{code: 400, errSub: "malformed JSON body"}},
		{"transfer truncated", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"n2"`}, want{code: 400, errSub: "ends too early"}},
		{"transfer trailing data", request{method: "POST", target: "/v1/transfer", token: testToken, body: `{"to":"n2"} {}`}, want{code: 400, errSub: "unexpected data after the object"}},
		{"transfer not an object", request{method: "POST", target: "/v1/transfer", token: testToken, body: `"n2"`}, want{code: 400, errSub: "must be a JSON object"}},
		{"transfer body too large", request{method: "POST", target: "/v1/transfer", token: testToken, body: big}, want{code: 413, errSub: "larger than 65536 bytes"}},

		// Maintenance: body and query forms; no default.
		{"maintenance body on", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{"on":true}`}, want{code: 200, maint: []bool{true}}},
		{"maintenance body off", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{"on":false}`}, want{code: 200, maint: []bool{false}}},
		{"maintenance query on", request{method: "POST", target: "/v1/maintenance?on=on", token: testToken}, want{code: 200, maint: []bool{true}}},
		{"maintenance query true", request{method: "POST", target: "/v1/maintenance?on=true", token: testToken}, want{code: 200, maint: []bool{true}}},
		{"maintenance query off", request{method: "POST", target: "/v1/maintenance?on=off", token: testToken}, want{code: 200, maint: []bool{false}}},
		{"maintenance query FALSE", request{method: "POST", target: "/v1/maintenance?on=FALSE", token: testToken}, want{code: 200, maint: []bool{false}}},
		{"maintenance query and same body", request{method: "POST", target: "/v1/maintenance?on=off", token: testToken, body: `{"on":false}`}, want{code: 200, maint: []bool{false}}},
		{"maintenance query and other body", request{method: "POST", target: "/v1/maintenance?on=off", token: testToken, body: `{"on":true}`}, want{code: 400, errSub: "give the value once"}},
		{"maintenance bad query", request{method: "POST", target: "/v1/maintenance?on=yes", token: testToken}, want{code: 400, errSub: "want on, off, true or false"}},
		{"maintenance nothing", request{method: "POST", target: "/v1/maintenance", token: testToken}, want{code: 400, errSub: "say whether to turn maintenance on or off"}},
		{"maintenance empty object", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{}`}, want{code: 400, errSub: `lacks "on"`}},
		{"maintenance null", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{"on":null}`}, want{code: 400, errSub: `lacks "on"`}},
		{"maintenance ambiguous keys", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{"on":true,"ON":false}`}, want{code: 400, errSub: `unknown field "ON"`}},
		{"maintenance wrong type", request{method: "POST", target: "/v1/maintenance", token: testToken, body: `{"on":"yes"}`}, want{code: 400, errSub: `"on" must be true or false`}},
		{"maintenance body too large", request{method: "POST", target: "/v1/maintenance", token: testToken, body: big}, want{code: 413, errSub: "larger than"}},

		// Authentication comes before anything is decoded.
		{"transfer no token", request{method: "POST", target: "/v1/transfer?to=n2"}, want{code: 401, errSub: "needs the admin token"}},
		{"transfer wrong token", request{method: "POST", target: "/v1/transfer?to=n2", token: strings.Repeat("0", 64)}, want{code: 401, errSub: "wrong admin token"}},
		{"transfer token prefix", request{method: "POST", target: "/v1/transfer?to=n2", token: testToken[:10]}, want{code: 401, errSub: "wrong admin token"}},
		{"maintenance no token", request{method: "POST", target: "/v1/maintenance?on=on"}, want{code: 401, errSub: "--config FILE or --secret-file FILE"}},
		{"maintenance basic auth", request{method: "POST", target: "/v1/maintenance?on=on", header: map[string]string{"Authorization": "Basic " + testToken}}, want{code: 401, errSub: "needs the admin token"}},
		{"lower-case scheme", request{method: "POST", target: "/v1/maintenance?on=on", header: map[string]string{"Authorization": "bearer " + testToken}}, want{code: 200, maint: []bool{true}}},
		{"no token big body", request{method: "POST", target: "/v1/transfer", body: big}, want{code: 401, errSub: "admin token"}},

		// Methods and paths.
		{"GET transfer", request{method: "GET", target: "/v1/transfer", token: testToken}, want{code: 405, errSub: "method GET is not allowed on /v1/transfer; use POST"}},
		{"PUT maintenance", request{method: "PUT", target: "/v1/maintenance", token: testToken}, want{code: 405, errSub: "use POST"}},
		{"POST status", request{method: "POST", target: "/v1/status"}, want{code: 405, errSub: "use GET"}},
		{"DELETE page", request{method: "DELETE", target: "/"}, want{code: 405, errSub: "use GET"}},
		{"unknown path", request{method: "GET", target: "/v1/nothing"}, want{code: 404, errSub: `no such endpoint "/v1/nothing"`}},
		{"trailing slash", request{method: "GET", target: "/v1/status/"}, want{code: 404, errSub: "no such endpoint"}},
		{"metrics without gatherer", request{method: "GET", target: "/metrics"}, want{code: 404, errSub: "no such endpoint"}},
		{"driver without handler", request{method: "GET", target: "/v1/driver"}, want{code: 404, errSub: "no such endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.do(tt.req)
			if rec.Code != tt.want.code {
				t.Fatalf("code %d, want %d; body %s", rec.Code, tt.want.code, rec.Body)
			}
			if tt.want.errSub != "" {
				if msg := errorBody(t, rec); !strings.Contains(msg, tt.want.errSub) {
					t.Errorf("error %q lacks %q", msg, tt.want.errSub)
				}
			} else {
				var s Status
				if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Node != "n1" {
					t.Errorf("a successful mutation should answer with the status: %v %s", err, rec.Body)
				}
			}
			transfers, maint := e.d.calls()
			if !slices.Equal(transfers, tt.want.transfers) || !slices.Equal(maint, tt.want.maint) {
				t.Errorf("daemon got transfers %q maintenance %v, want %q %v", transfers, maint, tt.want.transfers, tt.want.maint)
			}
		})
	}
}

func TestMethodNotAllowedHeader(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(request{method: "DELETE", target: "/v1/status"})
	if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow %q", got)
	}
	rec = e.do(request{method: "GET", target: "/v1/transfer"})
	if got := rec.Header().Get("Allow"); got != "POST" {
		t.Errorf("Allow %q", got)
	}
}

func TestUnauthorizedHeader(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(request{method: "POST", target: "/v1/transfer"})
	if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

func TestAuthFailedHook(t *testing.T) {
	n := 0
	e := newEnv(t, func(o *HandlerOptions) { o.AuthFailed = func() { n++ } })
	e.do(request{method: "POST", target: "/v1/transfer"})
	e.do(request{method: "POST", target: "/v1/maintenance?on=on", token: "wrong"})
	e.do(request{method: "POST", target: "/v1/maintenance?on=on", token: testToken})
	e.do(request{method: "GET", target: "/v1/status"})
	if n != 2 {
		t.Errorf("AuthFailed called %d times, want 2", n)
	}
}

func TestNoTokenConfiguredRefusesAll(t *testing.T) {
	e := newEnv(t, func(o *HandlerOptions) { o.Token = "" })
	for _, tok := range []string{"", "x"} {
		rec := e.do(request{method: "POST", target: "/v1/maintenance?on=on", token: tok})
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("token %q: code %d", tok, rec.Code)
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, "no admin token configured") {
			t.Errorf("error %q", msg)
		}
	}
	if _, maint := e.d.calls(); len(maint) != 0 {
		t.Errorf("daemon called: %v", maint)
	}
}

func TestDaemonErrors(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: the master is n2; run the transfer there", ErrNotMaster), http.StatusConflict},
		{fmt.Errorf("%w: n9", ErrUnknownTarget), http.StatusBadRequest},
		{fmt.Errorf("%w: cannot transfer to itself", ErrBadRequest), http.StatusBadRequest},
		{fmt.Errorf("%w: w is a witness", ErrNotEligible), http.StatusConflict},
		{fmt.Errorf("%w: to n3", ErrBusy), http.StatusConflict},
		{fmt.Errorf("%w: shutting down", ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("waiting for drivers: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fmt.Errorf("disk on fire"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		e := newEnv(t, nil)
		e.d.err = tt.err
		for _, req := range []request{
			{method: "POST", target: "/v1/transfer?to=n2", token: testToken},
			{method: "POST", target: "/v1/maintenance?on=on", token: testToken},
		} {
			rec := e.do(req)
			if rec.Code != tt.code {
				t.Errorf("%v: %s: code %d, want %d", tt.err, req.target, rec.Code, tt.code)
			}
			if msg := errorBody(t, rec); msg != tt.err.Error() {
				t.Errorf("error body %q, want the daemon's text %q", msg, tt.err.Error())
			}
		}
		if got := StatusCode(tt.err); got != tt.code {
			t.Errorf("StatusCode(%v) = %d", tt.err, got)
		}
	}
	if got := StatusCode(nil); got != http.StatusOK {
		t.Errorf("StatusCode(nil) = %d", got)
	}
}

func TestMutationsAreLogged(t *testing.T) {
	e := newEnv(t, nil)
	e.do(request{method: "POST", target: "/v1/transfer?to=n2", token: testToken})
	e.do(request{method: "POST", target: "/v1/transfer", token: testToken})
	e.d.err = fmt.Errorf("%w: the master is n3", ErrNotMaster)
	e.do(request{method: "POST", target: "/v1/maintenance?on=on", token: testToken})
	e.do(request{method: "POST", target: "/v1/maintenance?on=on", token: "bad"})
	e.do(request{method: "POST", target: "/v1/transfer?to=%3Cx%3E", token: testToken})
	log := e.log.String()
	for _, want := range []string{
		`level=INFO msg="admin transfer done" to=n2`,
		`msg="admin transfer done" to="(best eligible)"`,
		`level=WARN msg="admin maintenance failed" on=true`,
		`status=409 error="this node is not the master: the master is n3"`,
		`level=WARN msg="admin request refused" op=maintenance`,
		`reason="wrong token"`,
		`msg="admin request refused" op=transfer`,
		`status=400`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "bad") {
		t.Errorf("a presented token should never be logged:\n%s", log)
	}
}

func TestMetricsRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "clustd_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	e := newEnv(t, func(o *HandlerOptions) { o.Gatherer = reg })
	rec := e.do(request{method: "GET", target: "/metrics"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "clustd_test_total 3") {
		t.Fatalf("code %d body %s", rec.Code, rec.Body)
	}
	rec = e.do(request{method: "POST", target: "/metrics"})
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: code %d", rec.Code)
	}
}

func TestDriverMount(t *testing.T) {
	var paths []string
	drv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	e := newEnv(t, func(o *HandlerOptions) { o.Driver = drv })
	for _, p := range []string{"/v1/driver", "/v1/driver/events"} {
		if rec := e.do(request{method: "GET", target: p}); rec.Code != http.StatusTeapot {
			t.Errorf("%s: code %d", p, rec.Code)
		}
	}
	if want := []string{"GET /v1/driver", "GET /v1/driver/events"}; !slices.Equal(paths, want) {
		t.Errorf("driver saw %q, want %q", paths, want)
	}
	if rec := e.do(request{method: "GET", target: "/v1/drivers"}); rec.Code != http.StatusNotFound {
		t.Errorf("/v1/drivers: code %d", rec.Code)
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"a", "n-1", "node_2.example", strings.Repeat("z", 64), "A9"} {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range []string{"", " a", "a b", "é", "a/b", "<x>", strings.Repeat("z", 65), "a\x00"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func TestNewHandlerNeedsDaemon(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHandler with a nil Daemon did not panic")
		}
	}()
	NewHandler(HandlerOptions{})
}
