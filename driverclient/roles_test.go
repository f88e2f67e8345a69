package driverclient

import (
	"context"
	"testing"

	"github.com/gorilla/websocket"
)

// A driver of a role names it in its hello, under the MAC, and drops a
// connection that sends it another role's state before acting on it.
func TestRoleDriver(t *testing.T) {
	d := newFakeDaemon(t)
	acted := make(chan State, 4)
	h := start(t, d, TriggerFunc(func(_ context.Context, s State) error { acted <- s; return nil }), func(o *Options) { o.Role = "web" })
	dc := h.conn()
	if dc.hello.RoleName != "web" {
		t.Fatalf("hello role_name %q, want web", dc.hello.RoleName)
	}
	// The fake daemon checked the MAC with HelloMACRole: the role is
	// covered.
	st := followerState(1, "n2")
	st.RoleName = "db"
	dc.state(1, st)
	dc.closed()
	if dc.closeCode != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want %d", dc.closeCode, websocket.ClosePolicyViolation)
	}
	select {
	case s := <-acted:
		if s.RoleName == "db" {
			t.Fatalf("acted on another role's state %+v", s)
		}
	default:
	}
	dc2 := h.conn()
	st.RoleName = "web"
	dc2.state(1, st)
	dc2.ackOK(1)
	if s := <-acted; s.RoleName != "web" {
		t.Errorf("acted on %+v", s)
	}
}

func TestRoleOption(t *testing.T) {
	if _, err := New(Options{Secret: make([]byte, 32), Name: "x", Role: "a.b"}, TriggerFunc(func(context.Context, State) error { return nil })); err == nil {
		t.Error("Role a.b accepted")
	}
}
