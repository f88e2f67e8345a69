package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func newServer(t *testing.T) (*fakeDaemon, *httptest.Server) {
	t.Helper()
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return e.d, srv
}

func addrOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func TestClientAgainstHandler(t *testing.T) {
	d, srv := newServer(t)
	ctx := context.Background()
	c := &Client{Addr: addrOf(srv), Token: testToken}

	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*s, sampleStatus()) {
		t.Errorf("status\n got %+v\nwant %+v", *s, sampleStatus())
	}
	if err := c.Transfer(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Transfer(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Maintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Maintenance(ctx, false); err != nil {
		t.Fatal(err)
	}
	transfers, maint := d.calls()
	if want := []string{"n2", ""}; !slices.Equal(transfers, want) {
		t.Errorf("transfers %q, want %q", transfers, want)
	}
	if want := []bool{true, false}; !slices.Equal(maint, want) {
		t.Errorf("maintenance %v, want %v", maint, want)
	}

	// A URL works as well as HOST:PORT.
	c2 := &Client{Addr: srv.URL + "/", Token: testToken}
	if _, err := c2.Status(ctx); err != nil {
		t.Errorf("with URL address: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	d, srv := newServer(t)
	ctx := context.Background()

	// Without a token.
	err := (&Client{Addr: addrOf(srv)}).Transfer(ctx, "n2")
	var re *ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
	if !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "needs the admin token") {
		t.Errorf("no token: %v", err)
	}

	// The daemon's own error.
	d.mu.Lock()
	d.err = fmt.Errorf("%w: the master is n3", ErrNotMaster)
	d.mu.Unlock()
	err = (&Client{Addr: addrOf(srv), Token: testToken}).Maintenance(ctx, true)
	want := addrOf(srv) + " answered 409 Conflict: this node is not the master: the master is n3"
	if err == nil || err.Error() != want {
		t.Errorf("daemon error: %v, want %q", err, want)
	}

	// Validation in the handler.
	err = (&Client{Addr: addrOf(srv), Token: testToken}).Transfer(ctx, "no such/id")
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || !strings.Contains(re.Message, "not a valid node id") {
		t.Errorf("bad id: %v", err)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = (&Client{Addr: addr}).Status(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	want := "the clustd daemon at " + addr + " is not running (or not listening there)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	if strings.Contains(err.Error(), "Get ") {
		t.Errorf("error repeats the method and URL: %q", err)
	}
}

func TestClientForeignServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			fmt.Fprint(w, "<html>hello</html>")
		case "/v1/transfer":
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Client{Addr: addrOf(srv), Token: testToken}
	ctx := context.Background()
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "is not a clustd status") {
		t.Errorf("status from a foreign server: %v", err)
	}
	var re *ResponseError
	if err := c.Transfer(ctx, ""); !errors.As(err, &re) || re.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("a redirect should not be followed: %v", err)
	}
	if err := c.Maintenance(ctx, true); err == nil || !strings.Contains(err.Error(), "404 Not Found: an answer that is not from the clustd admin API") {
		t.Errorf("maintenance from a foreign server: %v", err)
	}
}

// blockingDaemon holds a transfer until its context ends.
type blockingDaemon struct {
	fakeDaemon
	started chan struct{}
}

func (d *blockingDaemon) Transfer(ctx context.Context, _ string) error {
	close(d.started)
	<-ctx.Done()
	return ctx.Err()
}

func TestClientContextCancelled(t *testing.T) {
	d := &blockingDaemon{started: make(chan struct{})}
	srv := httptest.NewServer(NewHandler(HandlerOptions{Daemon: d, Token: testToken}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-d.started
		cancel()
	}()
	err := (&Client{Addr: addrOf(srv), Token: testToken}).Transfer(ctx, "n2")
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "no answer from the clustd daemon at") {
		t.Errorf("cancelled: %v", err)
	}
}

func TestClientBadAddress(t *testing.T) {
	for _, addr := range []string{"", "localhost", "ftp://x:1", "http://", "::1"} {
		_, err := (&Client{Addr: addr}).Status(context.Background())
		if err == nil || strings.Contains(err.Error(), "not running") {
			t.Errorf("address %q: %v", addr, err)
		}
	}
}
