package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(request{method: "GET", target: "/"})
	if rec.Code != http.StatusOK {
		t.Fatalf("code %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<meta http-equiv="refresh" content="2">`,
		"<h1>clustd: node n1</h1>",
		`<td class="master">master</td>`,
		"<td>7</td>",
		"<td>1.45s</td>",      // lease
		"3m12s ago (elected)", // since
		"n1 (this node)",
		"10.0.0.2:7946",
		"20ms ago",
		"0.40 ms",
		"never", // w was never heard from
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestPageFollowerShowsNoLease(t *testing.T) {
	e := newEnv(t, nil)
	e.d.status = Status{Node: "n2", Role: "follower", Master: "", LeaseMS: 0}
	body := e.do(request{method: "GET", target: "/"}).Body.String()
	if !strings.Contains(body, "<tr><th>lease</th><td>–</td></tr>") {
		t.Errorf("a follower's page should show no lease:\n%s", body)
	}
	if !strings.Contains(body, "none known") {
		t.Errorf("an unknown master should say so:\n%s", body)
	}
}

func TestPageEscapesHostileValues(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	e := newEnv(t, nil)
	e.d.status = Status{
		Node: evil, Role: `master" onmouseover="alert(1)`, Master: evil, Reason: evil,
		Members: []MemberStatus{{ID: evil, Address: `"><img src=x onerror=alert(1)>`}},
	}
	body := e.do(request{method: "GET", target: "/"}).Body.String()
	for _, bad := range []string{"<script>", "<img", `" onmouseover="`} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains unescaped %q:\n%s", bad, body)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("page lacks the escaped id:\n%s", body)
	}
}

func TestPageOnlyAtRoot(t *testing.T) {
	e := newEnv(t, nil)
	if rec := e.do(request{method: "GET", target: "/index.html"}); rec.Code != http.StatusNotFound {
		t.Errorf("/index.html: code %d", rec.Code)
	}
	if rec := e.do(request{method: "HEAD", target: "/"}); rec.Code != http.StatusOK {
		t.Errorf("HEAD /: code %d", rec.Code)
	}
}
