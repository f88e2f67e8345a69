package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzMutations sends random queries and bodies to the mutation endpoints.
// Whatever arrives, the handler must not panic, must answer with JSON, and
// may call the daemon only with a value that passed validation and that the
// request really asked for, as an independent reading of it confirms.
func FuzzMutations(f *testing.F) {
	seeds := []struct {
		maintenance, auth bool
		query, body       string
	}{
		{false, true, "", ""},
		{false, true, "to=n2", ""},
		{false, true, "", `{"to":"n2"}`},
		{false, true, "to=n2", `{"to":"n2"}`},
		{false, true, "to=n2", `{"to":"n3"}`},
		{false, true, "to=", `{}`},
		{false, true, "to=a&to=b", ""},
		{false, true, "to=%zz", ""},
		{false, true, "x=1", `{"to":null}`},
		{false, true, "", `{"to":"<script>"}`},
		{false, true, "", `{"TO":"n2"}`},
		{false, true, "", `{"to":"n2","to":"n3"}`},
		{false, true, "", `{"to":"\u00e9"}`},
		{false, true, "", "{\"to\":\"\xff\"}"},
		{false, true, "", `[]`},
		{false, true, "", `{"to":"n2"} {}`},
		{false, false, "to=n2", ""},
		{true, true, "on=on", ""},
		{true, true, "on=OFF", `{"on":false}`},
		{true, true, "on=true", `{"on":false}`},
		{true, true, "", `{"on":true}`},
		{true, true, "", `{"on":null}`},
		{true, true, "", `{"on":"true"}`},
		{true, true, "", `{}`},
		{true, true, "", ""},
		{true, true, "on=1", ""},
		{true, true, "", `{"on":true,"ON":false}`},
		{true, true, "", `{"on":true,"on":false}`},
		{true, true, ";on=on", ""},
		{true, false, "on=on", `{"on":true}`},
	}
	for _, s := range seeds {
		f.Add(s.maintenance, s.auth, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, maintenance, auth bool, query string, body []byte) {
		d := &fakeDaemon{status: sampleStatus()}
		h := NewHandler(HandlerOptions{Daemon: d, Token: testToken})
		path := "/v1/transfer"
		if maintenance {
			path = "/v1/maintenance"
		}
		// Built by hand: httptest.NewRequest refuses malformed targets, and
		// those are exactly what is interesting here.
		req := &http.Request{
			Method:     http.MethodPost,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "127.0.0.1:3001",
			RemoteAddr:    "127.0.0.1:40000",
			RequestURI:    path + "?" + query,
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		transfers, maint := d.calls()
		calls := len(transfers) + len(maint)
		switch {
		case calls > 1:
			t.Fatalf("the daemon was called %d times", calls)
		case calls == 0:
			var e Error
			if rec.Code < 400 || rec.Code >= 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("refused with code %d and body %q", rec.Code, rec.Body)
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("the daemon was called but the code is %d", rec.Code)
		}
		if !auth {
			t.Fatal("the daemon was called without the token")
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("the daemon was called on a malformed query %q", query)
		}
		var raw map[string]any
		bodyGiven := len(strings.TrimSpace(string(body))) > 0
		if bodyGiven {
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("the daemon was called on a body that is no JSON object: %q", body)
			}
		}
		if maintenance {
			on := maint[0]
			if v, ok := q["on"]; ok {
				want := strings.EqualFold(v[0], "on") || strings.EqualFold(v[0], "true")
				if len(v) != 1 || on != want {
					t.Fatalf("query %q gave on=%t", query, on)
				}
			}
			if bodyGiven {
				b, ok := raw["on"].(bool)
				if !ok || b != on {
					t.Fatalf("body %q gave on=%t", body, on)
				}
			}
			if _, ok := q["on"]; !ok && !bodyGiven {
				t.Fatal("maintenance was set without a value in the request")
			}
			return
		}
		to := transfers[0]
		if to != "" && !ValidID(to) {
			t.Fatalf("the daemon got the invalid target %q", to)
		}
		if v, ok := q["to"]; ok {
			if len(v) != 1 || v[0] != to {
				t.Fatalf("query %q gave target %q", query, to)
			}
			return
		}
		if got, _ := raw["to"].(string); to != got {
			t.Fatalf("body %q gave target %q", body, to)
		}
	})
}
