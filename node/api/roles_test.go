package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPageShowsRoles(t *testing.T) {
	e := newEnv(t, nil)
	e.d.status = Status{Node: "n1", Role: "master", Master: "n1", Term: 4, LeaseMS: 900,
		Roles: []RoleStatus{{Name: "web", Role: "master", Term: 4, Master: "n1", LeaseMS: 900}, {Name: "db", Role: "follower", Term: 9, Master: "n2"}}}
	body := e.do(request{method: "GET", target: "/"}).Body.String()
	for _, want := range []string{`<tbody id="roles">`, "<td>web</td>", `<td class="follower">follower</td>`, "<td>9</td>", "<td>n2</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page of a node with two roles lacks %q:\n%s", want, body)
		}
	}
	e.d.status.Roles = e.d.status.Roles[:1]
	if body := e.do(request{method: "GET", target: "/"}).Body.String(); strings.Contains(body, `<tbody id="roles">`) {
		t.Error("the page of a node with one role shows a table of roles")
	}
}

func TestStatusRolesJSON(t *testing.T) {
	b, err := json.Marshal(Status{Roles: []RoleStatus{{Name: "web", Role: "master", Term: 4, Master: "n1", LeaseMS: 900}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"roles":[{"name":"web","role":"master","term":4,"master":"n1","lease_ms":900}]`; !strings.Contains(string(b), want) {
		t.Errorf("status JSON %s lacks %s", b, want)
	}
}

func TestTransferRoleRequest(t *testing.T) {
	for _, tc := range []struct {
		target, body string
		code         int
		err          string
	}{
		{"/v1/transfer?role=web&to=n2", "", 400, "no roles to choose from"},
		{"/v1/transfer", `{"role": "web"}`, 400, "no roles to choose from"},
		{"/v1/transfer?role=", "", 400, "?role= is empty"},
		{"/v1/transfer?role=a.b", "", 400, "is not a role name"},
		{"/v1/transfer?role=a", `{"role": "b"}`, 400, "give the role once"},
		{"/v1/transfer?rol=a", "", 400, "unknown query parameter"},
	} {
		e := newEnv(t, nil)
		rec := e.do(request{method: "POST", target: tc.target, body: tc.body, token: testToken})
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.err) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.target, tc.body, rec.Code, rec.Body.String(), tc.code, tc.err)
		}
	}
}
