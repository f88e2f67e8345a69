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
		`<h1 id="title">clustd: node n1</h1>`,
		`<td id="role" class="master">master</td>`,
		`<td id="term">7</td>`,
		`<td id="lease">1.45s</td>`, // lease
		"3m12s ago (elected)",       // since
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
	if !strings.Contains(body, `<tr><th>lease</th><td id="lease">–</td></tr>`) {
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

// The page is self-contained and its script runs under the policy: the
// script's nonce is the policy's, fresh for each response, and the page
// names nothing outside this listener.
func TestPageSelfContained(t *testing.T) {
	e := newEnv(t, nil)
	var nonces []string
	for range 2 {
		rec := e.do(request{method: "GET", target: "/"})
		csp := rec.Header().Get("Content-Security-Policy")
		i := strings.Index(csp, "'nonce-")
		if i < 0 {
			t.Fatalf("no script nonce in %q", csp)
		}
		nonce := csp[i+len("'nonce-"):]
		nonce = nonce[:strings.Index(nonce, "'")]
		body := rec.Body.String()
		if !strings.Contains(body, `<script nonce="`+nonce+`">`) {
			t.Fatalf("the script does not carry the policy's nonce %q", nonce)
		}
		for _, bad := range []string{"http://", "https://", "src=\"", "<link rel=\"stylesheet"} {
			if strings.Contains(body, bad) {
				t.Errorf("page refers to something outside itself: %q", bad)
			}
		}
		nonces = append(nonces, nonce)
	}
	if nonces[0] == nonces[1] {
		t.Error("the nonce is the same for two responses")
	}
}
