package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef0123456789"

var testToken = AdminToken([]byte(testSecret))

// fakeDaemon records the calls it gets and answers with err.
type fakeDaemon struct {
	mu        sync.Mutex
	status    Status
	err       error
	transfers []string
	maint     []bool
}

func (d *fakeDaemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *fakeDaemon) Transfer(_ context.Context, target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.transfers = append(d.transfers, target)
	return d.err
}

func (d *fakeDaemon) SetMaintenance(_ context.Context, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maint = append(d.maint, on)
	return d.err
}

func (d *fakeDaemon) calls() (transfers []string, maint []bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.transfers...), append([]bool(nil), d.maint...)
}

func sampleStatus() Status {
	return Status{
		Node: "n1", Role: "master", Term: 7, Master: "n1", LeaseMS: 1450,
		Eligible: true, Healthy: true, Reason: "elected", SinceMS: 192000,
		Members: []MemberStatus{
			{ID: "n1", Address: "10.0.0.1:7946", Priority: 100, Self: true, Reachable: true, LastSeenMS: 0},
			{ID: "n2", Address: "10.0.0.2:7946", Priority: 100, Reachable: true, LastSeenMS: 20, RTTMS: 0.4},
			{ID: "w", Address: "10.0.0.3:7946", Witness: true, LastSeenMS: -1},
		},
	}
}

// syncBuffer is a bytes.Buffer safe for the logger of a live server.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	d   *fakeDaemon
	h   http.Handler
	log *syncBuffer
}

func newEnv(t testing.TB, mod func(*HandlerOptions)) *testEnv {
	t.Helper()
	e := &testEnv{d: &fakeDaemon{status: sampleStatus()}, log: &syncBuffer{}}
	opts := HandlerOptions{
		Daemon: e.d,
		Token:  testToken,
		Logger: slog.New(slog.NewTextHandler(e.log, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	e.h = NewHandler(opts)
	return e
}

// request is one request to the handler; token "" sends no Authorization.
type request struct {
	method, target, token, body string
	header                      map[string]string
}

func (e *testEnv) do(r request) *httptest.ResponseRecorder {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.target, body)
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// errorBody decodes an Error body, failing the test if the body is not one.
func errorBody(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %q", ct, rec.Body.String())
	}
	var e Error
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("body is not an api.Error (%v): %q", err, rec.Body.String())
	}
	return e.Error
}
