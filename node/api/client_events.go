package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clustd/clustd/node/journal"
)

// Events reads the daemon's journal: since is as ParseSince reads it,
// limit 0 takes the daemon's default.
func (c *Client) Events(ctx context.Context, since string, limit int, failovers bool) (*Events, error) {
	var out Events
	if err := c.do(ctx, http.MethodGet, "/v1/events"+eventsParams(since, limit, failovers), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func eventsParams(since string, limit int, failovers bool) string {
	v := url.Values{}
	if since != "" {
		v.Set("since", since)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if failovers {
		v.Set("failovers", "1")
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// maxStreamLine bounds one line of the event stream; a status with many
// members is a few kilobytes.
const maxStreamLine = 1 << 20

// Follow reads the daemon's event stream and calls fn for each journal
// event, oldest first, until ctx ends or fn fails. When the stream breaks
// (the daemon restarted, say) it reconnects, resuming after the last event
// it passed on, and calls lost, if not nil, with the error.
func (c *Client) Follow(ctx context.Context, since string, limit int, failovers bool, fn func(journal.Event) error, lost func(error)) error {
	base, err := c.baseURL()
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	var last uint64
	for {
		params := eventsParams(since, limit, failovers)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events/stream"+params, nil)
		if err != nil {
			return fmt.Errorf("daemon address %q: %v", c.Addr, err)
		}
		req.Header.Set("Accept", "text/event-stream")
		if last > 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
		}
		var fnErr error
		err = c.readStream(hc, req, func(ev journal.Event) error {
			last = ev.Seq
			fnErr = fn(ev)
			return fnErr
		})
		if ctx.Err() != nil {
			return nil
		}
		var re *ResponseError
		if fnErr != nil || errors.As(err, &re) && re.StatusCode/100 == 4 {
			return err
		}
		if lost != nil {
			lost(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// readStream reads one connection's events.
func (c *Client) readStream(hc *http.Client, req *http.Request, fn func(journal.Event) error) error {
	resp, err := hc.Do(req)
	if err != nil {
		return c.transportError(req.Context(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &ResponseError{Addr: c.Addr, StatusCode: resp.StatusCode, Message: e.Error}
		}
		return &ResponseError{Addr: c.Addr, StatusCode: resp.StatusCode, Message: "an answer that is not from the clustd admin API: " + snippet(data)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamLine)
	var name string
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 && (name == "" || name == "message") {
				var ev journal.Event
				if err := json.Unmarshal(data.Bytes(), &ev); err != nil {
					return fmt.Errorf("the event stream from %s carried a malformed event: %v", c.Addr, err)
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			name = ""
			data.Reset()
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the event stream from %s broke: %w", c.Addr, err)
	}
	return fmt.Errorf("the event stream from %s ended", c.Addr)
}
