package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clustd/clustd/election"
)

const testSecret = "0123456789abcdef0123456789abcdef0123456789" // 42 bytes

// testDir returns a directory holding a valid secret file named "secret",
// a short one named "short", and the path a config file there would have.
func testDir(t testing.TB) (dir, cfgPath string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short"), []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "clustd.yml")
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// base is a valid configuration; error cases append to or edit it. Its
// lines are numbered in comments because the tests assert line numbers.
var base = []string{
	"id: a",                      // 1
	"data_dir: data",             // 2
	"secret_file: secret",        // 3
	"members:",                   // 4
	"  - id: a",                  // 5
	"    address: 10.0.0.1:7946", // 6
	"  - id: b",                  // 7
	"    address: 10.0.0.2:7946", // 8
	"  - id: w",                  // 9
	"    address: 10.0.0.3:7946", // 10
	"    witness: true",          // 11
}

// with returns base with line n (1-based) replaced by repl, which may hold
// several lines; n beyond the end appends.
func with(n int, repl ...string) string {
	ls := append([]string(nil), base...)
	if n > len(ls) {
		return lines(append(ls, repl...)...)
	}
	ls = append(ls[:n-1], append(repl, ls[n:]...)...)
	return lines(ls...)
}

func TestParseValid(t *testing.T) {
	dir, path := testDir(t)
	c, err := Parse(path, []byte(lines(base...)))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:            path,
		ID:              "a",
		Listen:          "10.0.0.1:7946",
		Advertise:       "10.0.0.1:7946",
		DataDir:         filepath.Join(dir, "data"),
		Secret:          []byte(testSecret),
		SecretFile:      filepath.Join(dir, "secret"),
		DriversSecret:   []byte(testSecret),
		Members:         []Member{{"a", "10.0.0.1:7946", false, 0}, {"b", "10.0.0.2:7946", false, 0}, {"w", "10.0.0.3:7946", true, 0}},
		Timing:          election.MustProfile(election.ProfileDefault),
		PreemptHoldDown: 30 * time.Second,
		HTTPListen:      "127.0.0.1:3001",
		DemoteTimeout:   30 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
	}
	if got, w := fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", want); got != w {
		t.Errorf("got  %s\nwant %s", got, w)
	}
	if c.Self() != c.Members[0] {
		t.Errorf("Self() = %+v", c.Self())
	}
}

func TestParseEverything(t *testing.T) {
	dir, path := testDir(t)
	drivers := filepath.Join(dir, "drivers")
	if err := os.WriteFile(drivers, []byte(strings.Repeat("d", 32)+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := lines(
		"id: b",
		"listen: 0.0.0.0:7000",
		"advertise: node-b.example.:7000",
		"data_dir: /var/lib/clustd",
		"secret: "+testSecret,
		"drivers_secret_file: "+drivers,
		"members:",
		"  - {id: a, address: '[::1]:07000', priority: 5}",
		"  - id: b",
		"    address: Node-B.Example:7000",
		"    priority: 1000",
		"    witness: false",
		"timing:",
		"  profile: fast",
		"  election_timeout_max: 300ms",
		"  max_clock_drift: 0.1",
		"preempt:",
		"  enabled: true",
		"  hold_down: 1m",
		"http:",
		"  listen: 10.0.0.2:8080",
		"  allow_non_loopback: true",
		"demote_timeout: 2s",
		"log_level: debug",
		"log_format: json",
	)
	c, err := Parse(path, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	fast := election.MustProfile(election.ProfileFast)
	fast.ElectionMax = 300 * time.Millisecond
	fast.MaxClockDrift = 0.1
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, "0.0.0.0:7000"},
		{"Advertise", c.Advertise, "node-b.example:7000"},
		{"DataDir", c.DataDir, "/var/lib/clustd"},
		{"Secret", string(c.Secret), testSecret},
		{"DriversSecret", string(c.DriversSecret), strings.Repeat("d", 32)},
		{"Members", fmt.Sprint(c.Members), "[{a [::1]:7000 false 5} {b node-b.example:7000 false 1000}]"},
		{"Timing", c.Timing, fast},
		{"Preempt", c.Preempt, true},
		{"PreemptHoldDown", c.PreemptHoldDown, time.Minute},
		{"HTTPListen", c.HTTPListen, "10.0.0.2:8080"},
		{"DemoteTimeout", c.DemoteTimeout, 2 * time.Second},
		{"LogLevel", c.LogLevel, "debug"},
		{"LogFormat", c.LogFormat, "json"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseRelativeToConfigFile(t *testing.T) {
	dir, _ := testDir(t)
	sub := filepath.Join(dir, "etc")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(sub, "clustd.yml"), []byte(lines(append([]string{"id: a", "data_dir: ../state", "secret_file: ../secret"}, base[3:]...)...)))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "state") {
		t.Errorf("DataDir = %q", c.DataDir)
	}
	// The secret file is looked for next to the configuration file.
	_, err = Parse(filepath.Join(sub, "clustd.yml"), []byte(lines(base...)))
	if want := filepath.Join(sub, "secret") + ": no such file"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error containing %q", err, want)
	}
}

func TestParseAliases(t *testing.T) {
	_, path := testDir(t)
	ok := lines(
		"id: &self a",
		"data_dir: data",
		"secret_file: secret",
		"members:",
		"  - {id: *self, address: &addr '10.0.0.1:1'}",
		"  - &b {id: b, address: '10.0.0.2:1'}",
	)
	if c, err := Parse(path, []byte(ok)); err != nil || c.Members[0].Address != "10.0.0.1:1" {
		t.Errorf("got %+v, %v", c, err)
	}
	// An error in a value used through an alias points at the alias.
	src := lines(
		"id: a",
		"data_dir: &d data",
		"secret_file: secret",
		"members:",
		"  - &m {id: a, address: '10.0.0.1:1'}",
		"  - {id: b, address: '10.0.0.2:1'}",
		"log_level: *d",
	)
	_, err := Parse(path, []byte(src))
	if err == nil || !strings.Contains(err.Error(), `clustd.yml:7: log_level: "data" is not one of`) {
		t.Errorf("got %v", err)
	}
}

// errorCases each break one thing. The error must name the file, the line
// and the field, and say what is wrong.
var errorCases = []struct {
	name  string
	src   string
	line  int
	field string
	msg   string
}{
	{"unknown field", with(12, "lisen: 1.2.3.4:5"), 12, "lisen", "unknown field; expected one of id, listen,"},
	{"unknown member field", with(7, "  - id: b", "    adress: x"), 8, "members[1].adress", "unknown field; expected one of id, address, witness, priority"},
	{"unknown timing field", with(12, "timing:", "  heartbaet: 10ms"), 13, "timing.heartbaet", "unknown field"},
	{"odd key", with(12, "\"a b\": 1"), 12, `"a b"`, "unknown field"},
	{"complex key", with(12, "? [x]", ": 1"), 12, "", "keys must be plain field names"},
	{"merge key", with(12, "<<: {log_level: info}"), 12, "<<", "merge keys are not supported"},
	{"repeated key", with(12, "data_dir: other"), 12, "data_dir", "repeated; it was already set on line 2"},
	{"repeated member key", with(8, "    address: 10.0.0.2:7946", "    address: 10.0.0.4:7946"), 9, "members[1].address", "repeated; it was already set on line 8"},

	{"id missing", with(1, "# no id"), 2, "id", "required; it names this node and must be one of the members (a, b, w)"},
	{"id empty", with(1, "id:"), 1, "id", "required"},
	{"id null word", with(1, "id: null"), 1, "id", `quote it ("null")`},
	{"id not a member", with(1, "id: z"), 1, "id", `"z" is not among the members (a, b, w)`},
	{"id bad", with(1, "id: a/b"), 1, "id", `"a/b" is not a valid id`},
	{"id a list", with(1, "id: [a]"), 1, "id", "must be a string, not a list"},

	{"members missing", lines(base[:3]...), 1, "members", "required; list every node"},
	{"members null", lines(append(base[:4:4], "log_level: info")...), 4, "members", "required"},
	{"members not a list", lines(append(base[:3:3], "members: a")...), 4, "members", `must be a list of members (each with id and address), not "a"`},
	{"members empty", lines(append(base[:3:3], "members: []")...), 4, "members", "the list is empty"},
	{"members too many", lines(append(base[:3:3], "members: ["+strings.Repeat("{id: x, address: 'h:1'},", 65)+"]")...), 4, "members", "65 members; at most 64 are supported"},
	{"member null", with(12, "  -"), 12, "members[3]", "empty entry"},
	{"member not a mapping", with(12, "  - a"), 12, "members[3]", `must be a mapping with the fields id, address, witness, priority, not "a"`},
	{"member id missing", with(7, "  - witness: false"), 7, "members[1].id", "required"},
	{"member id bad", with(7, "  - id: b c"), 7, "members[1].id", `"b c" is not a valid id: use 1 to 64 of the characters A-Z a-z 0-9 . _ -`},
	{"member id too long", with(7, "  - id: "+strings.Repeat("b", 65)), 7, "members[1].id", "is not a valid id"},
	{"member id repeated", with(7, "  - id: a"), 7, "members[1].id", `"a" is already the id of members[0]`},
	{"member address missing", with(8), 7, "members[1].address", "required; the HOST:PORT peers connect to"},
	{"member address missing port", with(8, `    address: "10.0.0.2"`), 8, "members[1].address", `"10.0.0.2" is not HOST:PORT (missing port)`},
	{"member address empty", with(8, `    address: ""`), 8, "members[1].address", `"" is not HOST:PORT (empty)`},
	{"member address no host", with(8, `    address: ":7946"`), 8, "members[1].address", "(missing host)"},
	{"member address port zero", with(8, "    address: 10.0.0.2:0"), 8, "members[1].address", "(port 0 is outside 1..65535)"},
	{"member address port big", with(8, "    address: 10.0.0.2:65536"), 8, "members[1].address", "(port 65536 is outside 1..65535)"},
	{"member address port name", with(8, "    address: 10.0.0.2:http"), 8, "members[1].address", `(port "http" is not a number)`},
	{"member address bad ip", with(8, "    address: 10.0.0.256:1"), 8, "members[1].address", `invalid IP address "10.0.0.256"`},
	{"member address bare ipv6", with(8, "    address: fe80::1:7946"), 8, "members[1].address", "write an IPv6 address as [ADDR]:PORT"},
	{"member address bad host", with(8, "    address: a..b:1"), 8, "members[1].address", "empty label"},
	{"member address host chars", with(8, "    address: a!b:1"), 8, "members[1].address", "neither an IP address nor a host name"},
	{"member address unspecified", with(8, "    address: 0.0.0.0:7946"), 8, "members[1].address", `"0.0.0.0:7946": 0.0.0.0 means every interface`},
	{"member address repeated", with(8, "    address: 10.0.0.1:07946"), 8, "members[1].address", `"10.0.0.1:7946" is already the address of members[0]`},
	{"member address a mapping", with(8, "    address: {host: x}"), 8, "members[1].address", "must be HOST:PORT, not a mapping"},
	{"witness not bool", with(11, "    witness: yes"), 11, "members[2].witness", `"yes" is not true or false`},
	{"witness quoted", with(11, `    witness: "true"`), 11, "members[2].witness", `"true" is not true or false`},
	{"priority too big", with(12, "    priority: 1001"), 12, "members[2].priority", "1001 is outside 0..1000"},
	{"priority negative", with(12, "    priority: -1"), 12, "members[2].priority", "-1 is outside 0..1000"},
	{"priority huge", with(12, "    priority: 18446744073709551615"), 12, "members[2].priority", "is outside 0..1000"},
	{"priority word", with(12, "    priority: high"), 12, "members[2].priority", `"high" is not a whole number from 0 to 1000`},
	{"priority fraction", with(12, "    priority: 1.5"), 12, "members[2].priority", "is not a whole number"},
	{"priority hex", with(12, "    priority: 0x10"), 12, "members[2].priority", "is not a whole number"},
	{"all witnesses", lines(append(base[:4:4], "  - {id: a, address: 'h:1', witness: true}", "  - {id: b, address: 'h:2', witness: true}")...), 4, "members", "every member is a witness"},

	{"data_dir missing", with(2, "# none"), 1, "data_dir", "required; the directory where this node keeps its term and vote"},
	{"data_dir empty", with(2, `data_dir: ""`), 2, "data_dir", "must not be empty"},
	{"secret both", with(12, "secret: "+testSecret), 12, "secret", "set only one of secret_file and secret"},
	{"secret both, file later", with(3, "secret: "+testSecret) + "secret_file: secret\n", 12, "secret_file", "set only one of secret_file and secret"},
	{"secret missing", with(3, "# none"), 1, "secret_file", "required (or an inline secret)"},
	{"secret file missing", with(3, "secret_file: nope"), 3, "secret_file", "nope: no such file or directory"},
	{"secret file a directory", with(3, "secret_file: ."), 3, "secret_file", "not a regular file"},
	{"secret file short", with(3, "secret_file: short"), 3, "secret_file", "short holds 9 bytes (not counting a final newline); a secret must be at least 32"},
	{"secret inline short", with(3, "secret: hunter2"), 3, "secret", "the secret is 7 bytes long; it must be at least 32"},
	{"drivers secret short", with(12, "drivers_secret_file: short"), 12, "drivers_secret_file", "a secret must be at least 32"},
	{"drivers secret missing", with(12, "drivers_secret_file: nope"), 12, "drivers_secret_file", "no such file or directory"},

	{"timing not a mapping", with(12, "timing: fast"), 12, "timing", `must be a mapping with the fields profile, heartbeat`},
	{"timing profile", with(12, "timing:", "  profile: slow"), 13, "timing.profile", `"slow" is not a timing profile; expected default or fast`},
	{"heartbeat not a duration", with(12, "timing:", "  heartbeat: 5x"), 13, "timing.heartbeat", `"5x" is not a duration (like 50ms or 1s)`},
	{"heartbeat without unit", with(12, "timing:", "  heartbeat: 50"), 13, "timing.heartbeat", `"50" is not a duration`},
	{"heartbeat zero", with(12, "timing:", "  heartbeat: 0s"), 13, "timing.heartbeat", `"0s" must be positive`},
	{"heartbeat negative", with(12, "timing:", "  heartbeat: -5ms"), 13, "timing.heartbeat", `"-5ms" must be positive`},
	{"heartbeat a list", with(12, "timing:", "  heartbeat: [1s]"), 13, "timing.heartbeat", `a list is not a duration`},
	{"election min too long", with(12, "timing:", "  election_timeout_min: 2h"), 13, "timing.election_timeout_min", `"2h" is longer than the limit of 1h0m0s`},
	{"election max", with(12, "timing:", "  election_timeout_max: 1"), 13, "timing.election_timeout_max", "is not a duration"},
	{"rank step", with(12, "timing:", "  rank_step: 0"), 13, "timing.rank_step", "must be positive"},
	{"stop budget negative", with(12, "timing:", "  stop_budget: -1s"), 13, "timing.stop_budget", `"-1s" must be positive`},
	{"stop budget too long", with(12, "timing:", "  stop_budget: 11m"), 13, "timing.stop_budget", "longer than the limit of 10m0s"},
	{"drift too big", with(12, "timing:", "  max_clock_drift: 0.5"), 13, "timing.max_clock_drift", "0.5 is outside [0, 0.5)"},
	{"drift negative", with(12, "timing:", "  max_clock_drift: -0.1"), 13, "timing.max_clock_drift", "is outside [0, 0.5)"},
	{"drift nan", with(12, "timing:", "  max_clock_drift: .nan"), 13, "timing.max_clock_drift", `".nan" is not a number`},
	{"drift word", with(12, "timing:", "  max_clock_drift: 5%"), 13, "timing.max_clock_drift", `"5%" is not a number`},
	{"timing inconsistent", with(12, "log_level: info", "timing:", "  profile: fast", "  heartbeat: 50ms"), 13, "timing", "heartbeat 50ms must be at most a third of election timeout min 100ms"},
	{"timing min above max", with(12, "timing:", "  election_timeout_min: 2s"), 12, "timing", "election timeout min 2s must be below max 1s"},

	{"preempt enabled", with(12, "preempt:", "  enabled: 1"), 13, "preempt.enabled", `"1" is not true or false`},
	{"preempt hold down", with(12, "preempt:", "  hold_down: soon"), 13, "preempt.hold_down", `"soon" is not a duration`},
	{"preempt hold down too long", with(12, "preempt:", "  hold_down: 25h"), 13, "preempt.hold_down", "longer than the limit of 24h0m0s"},
	{"preempt unknown", with(12, "preempt:", "  enable: true"), 13, "preempt.enable", "unknown field; expected one of enabled, hold_down"},
	{"listen bad", with(12, "listen: 7946"), 12, "listen", `"7946" is not HOST:PORT (missing port)`},
	{"advertise unspecified", with(12, "advertise: '[::]:1'"), 12, "advertise", ":: means every interface"},
	{"advertise no host", with(12, "advertise: :1"), 12, "advertise", "(missing host)"},
	{"http listen bad", with(12, "http:", "  listen: localhost"), 13, "http.listen", "missing port"},
	{"http listen public", with(12, "http:", "  listen: 0.0.0.0:3001"), 13, "http.listen", `"0.0.0.0:3001" is not a loopback address`},
	{"http listen all", with(12, "http:", "  listen: :3001"), 13, "http.listen", "needs http.allow_non_loopback: true"},
	{"http listen name", with(12, "http:", "  listen: myhost:3001"), 13, "http.listen", "is not a loopback address"},
	{"http allow not bool", with(12, "http:", "  allow_non_loopback: sure"), 13, "http.allow_non_loopback", "is not true or false"},
	{"http collides", with(12, "listen: 0.0.0.0:3001"), 12, "http.listen", `"127.0.0.1:3001" (the default) collides with the peer listen address "0.0.0.0:3001"`},
	{"demote timeout", with(12, "demote_timeout: -1s"), 12, "demote_timeout", "must be positive"},
	{"log level", with(12, "log_level: verbose"), 12, "log_level", `"verbose" is not one of debug, info, warn, error`},
	{"log format", with(12, "log_format: xml"), 12, "log_format", `"xml" is not one of text, json`},

	{"yaml flow", with(12, "timing: [a", "log_level: info"), 12, "", "invalid YAML: did not find expected ',' or ']'"},
	{"yaml block", with(12, "- a"), 12, "", "invalid YAML: did not find expected key"},
	{"yaml token", with(12, "log_level: @x"), 12, "", "invalid YAML: found character that cannot start any token"},
	{"yaml colon", with(12, "log_level info", "log_format: text"), 12, "", "invalid YAML: could not find expected ':'"},
	{"yaml first line", "@x: 1\n", 1, "", "invalid YAML: found character that cannot start any token"},
	{"yaml control character", with(12, "log_level: \x01"), 0, "", "invalid YAML: control characters are not allowed"},
	{"yaml end of file", "[a\n", 2, "", "invalid YAML: did not find expected ',' or ']'"},
	{"yaml anchor", with(12, "log_level: *nope"), 12, "", "invalid YAML: unknown anchor 'nope' referenced"},
	{"top level a list", "- a\n- b\n", 1, "", "the top level must be a mapping"},
	{"top level a string", "\n\nhello\n", 3, "", `the top level must be a mapping of fields such as id and members, not "hello"`},
	{"two documents", with(12, "---", "id: b"), 12, "", "a second YAML document"},
}

func TestParseErrors(t *testing.T) {
	_, path := testDir(t)
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(path, []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; got %+v\nsource:\n%s", c, tc.src)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if ce.File != path || ce.Line != tc.line || ce.Field != tc.field {
				t.Errorf("got file %q line %d field %q; want %q, %d, %q\nerror: %v", ce.File, ce.Line, ce.Field, path, tc.line, tc.field, err)
			}
			prefix := path + ": "
			if tc.line > 0 {
				prefix = fmt.Sprintf("%s:%d: ", path, tc.line)
			}
			if tc.field != "" {
				prefix += tc.field + ": "
			}
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.msg) {
				t.Errorf("error\n  %s\nwant prefix\n  %s\nand to contain\n  %s", msg, prefix, tc.msg)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	_, path := testDir(t)
	for _, src := range []string{"", "\n", "# nothing\n", "~\n", "---\n"} {
		_, err := Parse(path, []byte(src))
		if err == nil || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), "the file is empty") {
			t.Errorf("Parse(%q) = %v", src, err)
		}
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	_, path := testDir(t)
	const s = "shortsecretvalue"
	for _, src := range []string{with(3, "secret: "+s), with(3, "secret: "+s, "secret_file: secret")} {
		_, err := Parse(path, []byte(src))
		if err == nil || strings.Contains(err.Error(), s) {
			t.Errorf("error %v: want an error that does not quote the secret", err)
		}
	}
}

func TestSecretTrimsOneNewline(t *testing.T) {
	dir, path := testDir(t)
	two := filepath.Join(dir, "two")
	if err := os.WriteFile(two, []byte(testSecret+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(path, []byte(with(3, "secret_file: two")))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Secret) != testSecret+"\n" {
		t.Errorf("Secret = %q", c.Secret)
	}
}

func TestLoad(t *testing.T) {
	dir, path := testDir(t)
	if err := os.WriteFile(path, []byte(lines(base...)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.ID != "a" {
		t.Errorf("got %+v", c)
	}

	missing := filepath.Join(dir, "missing.yml")
	_, err = Load(missing)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != missing+": cannot read configuration: no such file or directory" {
		t.Errorf("Load(missing) = %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) = %v", err)
	}
	big := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}
}

func TestMembersHash(t *testing.T) {
	_, path := testDir(t)
	parse := func(src string) [32]byte {
		t.Helper()
		c, err := Parse(path, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return c.MembersHash()
	}
	h := parse(lines(base...))
	same := []string{
		lines(slices.Concat(base[:4], base[6:8], base[4:6], base[8:])...), // member order does not matter
		with(1, "id: b"),                       // which node reads it does not matter
		with(6, "    address: 10.0.0.1:07946"), // nor how an address is spelt
		with(12, "timing: {heartbeat: 100ms}"), // nor restating a profile value
		with(12, "log_level: debug"),
	}
	if parse(with(12, "timing: {max_clock_drift: -0.0}")) != parse(with(12, "timing: {max_clock_drift: 0}")) {
		t.Error("the sign of a zero drift changes the hash")
	}
	for i, src := range same {
		if parse(src) != h {
			t.Errorf("same[%d]: hash differs\n%s", i, src)
		}
	}
	differ := []string{
		with(6, "    address: 10.0.0.9:7946"),
		with(7, "  - id: c"),
		with(12, "    priority: 1"),
		with(11, "    witness: false"),
		with(12, "  - id: x", "    address: 10.0.0.4:1"),
		with(12, "timing: {profile: fast}"),
		with(12, "timing: {rank_step: 60ms}"),
		with(12, "timing: {max_clock_drift: 0.06}"),
		with(12, "timing: {stop_budget: 0s}"),
		with(12, "timing: {stop_budget: 1s}"),
	}
	for i, src := range differ {
		if parse(src) == h {
			t.Errorf("differ[%d]: hash unchanged\n%s", i, src)
		}
	}
}
