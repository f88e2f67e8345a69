package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/node/journal"
)

func eventsServer(t *testing.T, withJournal bool) (*httptest.Server, *journal.Journal) {
	t.Helper()
	var j *journal.Journal
	if withJournal {
		var err error
		if j, err = journal.Open(journal.Options{Dir: t.TempDir(), NoSync: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		for i := range 5 {
			j.Append(journal.Event{Kind: journal.KindRole, Node: "n1", Term: uint64(i + 1)})
		}
	}
	srv := httptest.NewServer(NewHandler(HandlerOptions{Daemon: &fakeDaemon{status: sampleStatus()}, Journal: j}))
	t.Cleanup(srv.Close)
	return srv, j
}

func TestEventsEndpoint(t *testing.T) {
	srv, _ := eventsServer(t, true)
	get := func(q string) (int, Events, string) {
		resp, err := http.Get(srv.URL + "/v1/events" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e Events
		var raw strings.Builder
		dec := json.NewDecoder(resp.Body)
		if resp.StatusCode == 200 {
			dec.Decode(&e)
		} else {
			var er Error
			dec.Decode(&er)
			raw.WriteString(er.Error)
		}
		return resp.StatusCode, e, raw.String()
	}
	code, e, _ := get("")
	if code != 200 || len(e.Events) != 5 || e.LastSeq != 5 || e.Node != "n1" {
		t.Fatalf("all: %d %+v", code, e)
	}
	if _, e, _ = get("?since=2&limit=2"); len(e.Events) != 2 || e.Events[0].Seq != 3 {
		t.Fatalf("since=2&limit=2: %+v", e.Events)
	}
	if _, e, _ = get("?limit=1"); len(e.Events) != 1 || e.Events[0].Seq != 5 {
		t.Fatalf("limit=1 gives the newest: %+v", e.Events)
	}
	if _, e, _ = get("?since=1h"); len(e.Events) != 5 {
		t.Fatalf("since=1h: %d events", len(e.Events))
	}
	if _, e, _ = get("?failovers=1"); len(e.Events) != 0 || e.Events == nil {
		t.Fatalf("failovers=1: %+v", e.Events)
	}
	for _, q := range []string{"?since=yesterday", "?limit=0", "?limit=x", "?failovers=maybe"} {
		if code, _, msg := get(q); code != 400 || msg == "" {
			t.Errorf("%s: %d %q", q, code, msg)
		}
	}
	srv2, _ := eventsServer(t, false)
	resp, err := http.Get(srv2.URL + "/v1/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a journal: %d", resp.StatusCode)
	}
}

// The stream resumes after Last-Event-ID and carries the status.
func TestEventStream(t *testing.T) {
	srv, j := eventsServer(t, true)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/events/stream", nil)
	req.Header.Set("Last-Event-ID", "3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var ids []string
	status := false
	deadline := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	recorded := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ids = append(ids, strings.TrimPrefix(line, "id: "))
		case line == "event: status":
			status = true
		case strings.HasPrefix(line, "data: {") && status && !recorded:
			var s Status
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil || s.Node != "n1" {
				t.Fatalf("status event %q: %v", line, err)
			}
			recorded = true
			j.Record(journal.Event{Kind: journal.KindStop, Node: "n1"})
		}
		if len(ids) == 3 {
			break
		}
	}
	if strings.Join(ids, ",") != "4,5,6" || !status {
		t.Fatalf("ids %v, status seen %v", ids, status)
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"", "12", "1h", "90m", "-1h", "2025-01-02T15:04:05Z", "yesterday", "18446744073709551616"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseSince(s, now)
		if err != nil {
			if !strings.Contains(err.Error(), "since") {
				t.Fatalf("error %q does not name the parameter", err)
			}
			return
		}
		if q.AfterSeq > 0 && !q.Since.IsZero() {
			t.Fatalf("%q gave both a sequence number and a time", s)
		}
	})
}
