package vip

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"10.0.0.100/24", "10.0.0.100/24", ""},
		{" 10.0.0.100 ", "10.0.0.100/32", ""},
		{"2001:db8::100/64", "2001:db8::100/64", ""},
		{"2001:db8::100", "2001:db8::100/128", ""},
		{"10.0.0.300/24", "", "prefix length"},
		{"10.0.0.1/33", "", "prefix length"},
		{"eth0", "", "prefix length"},
		{"0.0.0.0/0", "", "not an address"},
		{"224.0.0.1/32", "", "not an address"},
		{"127.0.0.2/8", "", "not an address"},
		{"fe80::1%eth0/64", "", ""},
	} {
		p, err := ParseAddress(c.in)
		switch {
		case c.want != "" && (err != nil || p.String() != c.want):
			t.Errorf("ParseAddress(%q) = %v, %v; want %s", c.in, p, err, c.want)
		case c.want == "" && err == nil:
			t.Errorf("ParseAddress(%q) = %v; want an error", c.in, p)
		case c.want == "" && !strings.Contains(err.Error(), c.err):
			t.Errorf("ParseAddress(%q): %v; want it to say %q", c.in, err, c.err)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	a := netip.MustParsePrefix("10.0.0.100/24")
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"no interface", Options{Addresses: []netip.Prefix{a}}, "no interface"},
		{"no address", Options{Interface: "eth0"}, "no address"},
		{"twice", Options{Interface: "eth0", Addresses: []netip.Prefix{a, a}}, "twice"},
		{"negative count", Options{Interface: "eth0", Addresses: []netip.Prefix{a}, GARPCount: -1}, "negative"},
		{"no interval", Options{Interface: "eth0", Addresses: []netip.Prefix{a}, GARPCount: 3}, "interval"},
	} {
		c.opts.SkipCapCheck = true
		if _, err := New(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestNewWithoutTheInterface(t *testing.T) {
	d, err := New(Options{Interface: "clustd-no-such", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/24")}, SkipCapCheck: true})
	if err != nil {
		t.Fatalf("an interface that is not there yet: %v; want a driver that looks again later", err)
	}
	if st := d.Status(); len(st.Held) != 0 || st.Master {
		t.Fatalf("status %+v; want nothing held", st)
	}
}

func TestCapsNamesWhatIsMissing(t *testing.T) {
	eff, err := effectiveCaps()
	if err != nil {
		t.Skipf("SKIPPED: no /proc/self/status: %v", err)
	}
	err = checkCaps(true)
	if eff&(1<<capNetAdmin) != 0 && eff&(1<<capNetRaw) != 0 {
		if err != nil {
			t.Fatalf("with both capabilities: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "CAP_NET_") {
		t.Fatalf("without the capabilities: %v; want an error naming them", err)
	}
}

func TestHandlerShowsStatusAndMetrics(t *testing.T) {
	d, err := New(Options{Interface: "clustd-no-such", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/24")}, SkipCapCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	d.setStatus(func(st *Status) {
		st.Held, st.Master, st.Term = []string{"10.0.0.100/24"}, true, 7
		st.LastAnnounce, st.LastAnnounceTerm, st.Announcements = time.Unix(1700000000, 0), 7, 3
	})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	var st Status
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Held) != 1 || st.Held[0] != "10.0.0.100/24" || st.LastAnnounceTerm != 7 || st.LastAnnounce.Unix() != 1700000000 {
		t.Errorf("/status = %+v", st)
	}
	m := get("/metrics")
	for _, want := range []string{
		`clustd_vip_address_held{address="10.0.0.100/24",interface="clustd-no-such"} 1`,
		"clustd_vip_last_announce_timestamp_seconds 1.7e+09",
		"clustd_vip_announcements_total 3",
		"clustd_vip_master 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}
}
