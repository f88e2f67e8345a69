package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxResponseBytes bounds what the client reads of an answer. A status with
// the largest member list is a few tens of kilobytes; anything near the
// bound is not from a clustd daemon.
const maxResponseBytes = 4 << 20

// Client talks to a daemon's admin API.
type Client struct {
	// Addr is the daemon's local listener as HOST:PORT, or a base URL such
	// as http://HOST:PORT.
	Addr string
	// Token is sent as the bearer token when not empty; transfers and
	// maintenance need it (see AdminToken).
	Token string
	// HTTP makes the requests. When nil, a client is used that ignores
	// proxy settings, since a proxy would receive the token and cannot
	// reach another machine's loopback anyway, and that does not follow
	// redirects.
	HTTP *http.Client
}

// defaultHTTP is the client used when Client.HTTP is nil. It has no overall
// timeout because a transfer may rightly wait for drivers to demote; callers
// bound requests with their context.
var defaultHTTP = &http.Client{
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        2,
		IdleConnTimeout:     30 * time.Second,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ResponseError is an error answer from the daemon.
type ResponseError struct {
	// Addr is the daemon's address as the client was given it.
	Addr string
	// StatusCode is the HTTP status code.
	StatusCode int
	// Message is the daemon's explanation, the Error body's text.
	Message string
}

// Error returns "ADDR answered CODE TEXT: MESSAGE".
func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s answered %d %s: %s", e.Addr, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Transfer asks the master to hand its role to the member to, or to the best
// eligible member when to is empty. It returns when the daemon has answered.
func (c *Client) Transfer(ctx context.Context, to string) error {
	return c.do(ctx, http.MethodPost, "/v1/transfer", TransferRequest{To: to}, nil)
}

// TransferRole is Transfer of the role named role; an empty role sends
// the request Transfer sends, which daemons from before roles understand.
func (c *Client) TransferRole(ctx context.Context, role, to string) error {
	return c.do(ctx, http.MethodPost, "/v1/transfer", TransferRequest{To: to, Role: role}, nil)
}

// Maintenance turns the daemon's maintenance mode on or off.
func (c *Client) Maintenance(ctx context.Context, on bool) error {
	return c.do(ctx, http.MethodPost, "/v1/maintenance", MaintenanceRequest{On: on}, nil)
}

// MaintenanceWith sends a whole maintenance request: on for how long and
// why, or off.
func (c *Client) MaintenanceWith(ctx context.Context, req MaintenanceRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/maintenance", req, nil)
}

// baseURL turns Addr into the URL that paths are appended to.
func (c *Client) baseURL() (string, error) {
	a := strings.TrimSpace(c.Addr)
	if a == "" {
		return "", errors.New("no daemon address given")
	}
	if !strings.Contains(a, "://") {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", fmt.Errorf("daemon address %q is not HOST:PORT: %v", c.Addr, err)
		}
		return "http://" + a, nil
	}
	u, err := url.Parse(a)
	if err != nil {
		return "", fmt.Errorf("daemon address %q is not a valid URL: %v", c.Addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("daemon address %q: want HOST:PORT or http://HOST:PORT", c.Addr)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	base, err := c.baseURL()
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("daemon address %q: %v", c.Addr, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading the answer of the clustd daemon at %s: %w", c.Addr, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("the answer from %s is larger than %d bytes; is that a clustd daemon?", c.Addr, maxResponseBytes)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &ResponseError{Addr: c.Addr, StatusCode: resp.StatusCode, Message: e.Error}
		}
		return &ResponseError{Addr: c.Addr, StatusCode: resp.StatusCode, Message: "an answer that is not from the clustd admin API: " + snippet(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("the answer from %s is not a clustd status (%v): %s", c.Addr, err, snippet(data))
		}
	}
	return nil
}

// transportError explains a request that got no answer. Connection refused
// is by far the most common case and has a plain cause worth stating.
func (c *Client) transportError(ctx context.Context, err error) error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err // drop the repeated method and URL
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("the clustd daemon at %s is not running (or not listening there): %w", c.Addr, inner)
	case ctx.Err() != nil:
		return fmt.Errorf("no answer from the clustd daemon at %s: %w", c.Addr, ctx.Err())
	}
	return fmt.Errorf("cannot reach the clustd daemon at %s: %w", c.Addr, inner)
}

// snippet shows the start of an unexpected answer, printable and short.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty body)"
	}
	return quoteShort(s)
}
