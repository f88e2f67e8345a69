package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

const testPath = "/var/lib/clustd/state"

// withCRC completes content with its checksum, computed independently of
// format, so that tests can build files that pass the checksum but are
// otherwise wrong.
func withCRC(content string) string {
	sum := crc32.Checksum([]byte(content), crc32.MakeTable(crc32.Castagnoli))
	return fmt.Sprintf("%s crc32c=%08x\n", content, sum)
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		data string
		want HardState
	}{
		{"zero", "clustd-state v1 term=0 vote= crc32c=c86ce1e6\n", HardState{}},
		{"voted", "clustd-state v1 term=7 vote=b crc32c=ed8096d3\n", HardState{Term: 7, Vote: "b"}},
		{"max term, every id character class",
			"clustd-state v1 term=18446744073709551615 vote=node-1.example_A crc32c=1d393a01\n",
			HardState{Term: 1<<64 - 1, Vote: "node-1.example_A"}},
		{"longest id", withCRC("clustd-state v1 term=3 vote=" + strings.Repeat("x", 64)),
			HardState{Term: 3, Vote: strings.Repeat("x", 64)}},
		{"term without vote", withCRC("clustd-state v1 term=12 vote="), HardState{Term: 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(testPath, []byte(tt.data))
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.data, err)
			}
			if got != tt.want {
				t.Fatalf("parse(%q) = %+v, want %+v", tt.data, got, tt.want)
			}
			// The encoding is canonical: format must give back the very same bytes.
			if enc := string(format(got)); enc != tt.data {
				t.Fatalf("format(%+v) = %q, want %q", got, enc, tt.data)
			}
		})
	}
}

func TestParseCorrupt(t *testing.T) {
	const good = "clustd-state v1 term=7 vote=b crc32c=ed8096d3\n"
	tests := []struct {
		name   string
		data   string
		reason string // must appear in the error message
	}{
		{"empty", "", "is empty"},
		{"too large", good + strings.Repeat("x", maxFileSize), "too large"},
		{"not a state file", "term=7 vote=b\n", "not a clustd state file"},
		{"binary garbage", "\x00\x01\x02", "not a clustd state file"},
		{"magic without separator", "clustd-statev1 term=7\n", "not a clustd state file"},
		{"truncated mid-checksum", good[:len(good)-5], "truncated"},
		{"truncated before newline", good[:len(good)-1], "truncated"},
		{"truncated after magic", "clustd-state", "truncated"},
		{"two lines", good + good, "more than one line"},
		{"carriage return", strings.TrimSuffix(good, "\n") + "\r\n", "more than one line"},
		{"unknown version", "clustd-state v2 term=7 vote=b crc32c=ed8096d3\n", `unknown format version "v2"`},
		{"missing version", "clustd-state term=7 vote=b crc32c=ed8096d3\n", "unknown format version"},
		{"no checksum", "clustd-state v1 term=7 vote=b\n", "no checksum"},
		{"short checksum", "clustd-state v1 term=7 vote=b crc32c=ed8096d\n", "malformed checksum"},
		{"uppercase checksum", "clustd-state v1 term=7 vote=b crc32c=ED8096D3\n", "malformed checksum"},
		{"checksum with trailing space", "clustd-state v1 term=7 vote=b crc32c=ed8096d3 \n", "malformed checksum"},
		{"bad checksum", "clustd-state v1 term=7 vote=b crc32c=ed8096d4\n", "bad checksum"},
		{"flipped term digit", "clustd-state v1 term=8 vote=b crc32c=ed8096d3\n", "bad checksum"},
		{"flipped vote", "clustd-state v1 term=7 vote=c crc32c=ed8096d3\n", "bad checksum"},
		{"extra field", withCRC("clustd-state v1 term=7 vote=b extra=1"), "5 fields"},
		{"double space", withCRC("clustd-state v1 term=7  vote=b"), "5 fields"},
		{"missing vote", withCRC("clustd-state v1 term=7"), "3 fields"},
		{"fields swapped", withCRC("clustd-state v1 vote=b term=7"), "where term=N belongs"},
		{"term empty", withCRC("clustd-state v1 term= vote=b"), "malformed term"},
		{"term leading zero", withCRC("clustd-state v1 term=007 vote=b"), "malformed term"},
		{"term negative", withCRC("clustd-state v1 term=-1 vote=b"), "malformed term"},
		{"term plus sign", withCRC("clustd-state v1 term=+7 vote=b"), "malformed term"},
		{"term overflows", withCRC("clustd-state v1 term=18446744073709551616 vote=b"), "malformed term"},
		{"vote key wrong", withCRC("clustd-state v1 term=7 voted=b"), "where vote=ID belongs"},
		{"vote bad character", withCRC("clustd-state v1 term=7 vote=b!"), "malformed vote"},
		{"vote too long", withCRC("clustd-state v1 term=7 vote=" + strings.Repeat("x", 65)), "malformed vote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := parse(testPath, []byte(tt.data))
			if err == nil {
				t.Fatalf("parse(%q) = %+v, want an error", tt.data, hs)
			}
			checkCorrupt(t, err, testPath, tt.reason)
		})
	}
}

// checkCorrupt asserts that err is a *CorruptError for path whose message
// says what is wrong (reason), names the file and tells how to recover.
func checkCorrupt(t *testing.T, err error, path, reason string) {
	t.Helper()
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *CorruptError", err, err)
	}
	if ce.Path != path {
		t.Errorf("CorruptError.Path = %q, want %q", ce.Path, path)
	}
	msg := err.Error()
	for _, want := range []string{
		path,
		reason,
		"refuses to start",
		"vote twice in one term",
		"at least one election timeout",
		"remove " + path,
		"backup",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("clustd-state v1 term=7 vote=b crc32c=ed8096d3\n"), uint64(7), "b")
	f.Add([]byte("clustd-state v1 term=0 vote= crc32c=c86ce1e6\n"), uint64(0), "")
	f.Add([]byte("clustd-state v1 term=18446744073709551615 vote=node-1.example_A crc32c=1d393a01\n"), uint64(1<<64-1), "node-1.example_A")
	f.Add([]byte("clustd-state v2 term=7 vote=b crc32c=ed8096d3\n"), uint64(1), "a")
	f.Add([]byte("clustd-state v1 term=007 vote=b crc32c=a4bc4964\n"), uint64(42), "x.y_z-0")
	f.Add([]byte("clustd-state v1 term=7 vote=b crc32c=ed8096d3\nclustd-state"), uint64(3), "bad id!")
	f.Add([]byte(""), uint64(0), strings.Repeat("x", 65))
	f.Fuzz(func(t *testing.T, data []byte, term uint64, vote string) {
		hs, err := parse(testPath, data)
		if err != nil {
			if _, ok := errors.AsType[*CorruptError](err); !ok {
				t.Fatalf("parse(%q) returned %T, want *CorruptError", data, err)
			}
		} else if enc := format(hs); string(enc) != string(data) {
			// Strict parsing means only format's own output is accepted.
			t.Fatalf("parse accepted %q as %+v, which formats as %q", data, hs, enc)
		}

		if !validID(vote) {
			return
		}
		x := HardState{Term: term, Vote: vote}
		got, err := parse(testPath, format(x))
		if err != nil || got != x {
			t.Fatalf("parse(format(%+v)) = %+v, %v", x, got, err)
		}
	})
}
