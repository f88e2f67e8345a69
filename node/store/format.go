package store

import (
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

const (
	magic         = "clustd-state"
	formatVersion = "v1"
	crcField      = " crc32c="
	// maxVoteLen bounds a node id; it is also what bounds the size of a
	// valid state file.
	maxVoteLen = 64
	// maxFileSize is larger than any valid state line (about 130 bytes), so
	// that anything bigger can be reported as not a state file without
	// reading all of it.
	maxFileSize = 512
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HardState is the part of a node's election state that must survive a
// restart: the latest term the node has seen and the node it voted for in
// that term.
type HardState struct {
	// Term is the current term. It never decreases.
	Term uint64
	// Vote is the id of the node this node voted for in Term, or empty if it
	// has not voted in Term.
	Vote string
}

// CorruptError reports a state file that exists but cannot be trusted:
// unreadable, truncated, failing its checksum, of an unknown version or
// otherwise malformed. Open returns it instead of starting from a zero state,
// because forgetting a vote could let the node vote twice in one term.
type CorruptError struct {
	// Path is the state file.
	Path string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error when the file could not be read, or nil.
	Err error
}

// Error tells what is wrong with the state file and how an operator can
// recover safely.
func (e *CorruptError) Error() string {
	fix := "Keep"
	if e.Err != nil {
		fix = "If the file itself is intact, fix what keeps it from being read (for example its permissions) " +
			"and start again; otherwise keep"
	}
	return fmt.Sprintf("state file %s %s. clustd refuses to start: resetting the term and vote could let "+
		"this node vote twice in one term. %s this node stopped for at least one election timeout, then "+
		"remove %s (or restore it from a backup) and start it again",
		e.Path, e.Reason, fix, e.Path)
}

// Unwrap returns the error that kept the file from being read, if any.
func (e *CorruptError) Unwrap() error { return e.Err }

// validID reports whether id may be stored as a vote. The character set keeps
// the file a single space-separated line; the length keeps it small.
func validID(id string) bool {
	if len(id) > maxVoteLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// format encodes hs as a state file. hs.Vote must satisfy validID.
func format(hs HardState) []byte {
	content := magic + " " + formatVersion + " term=" + strconv.FormatUint(hs.Term, 10) + " vote=" + hs.Vote
	sum := crc32.Checksum([]byte(content), castagnoli)
	return fmt.Appendf(nil, "%s%s%08x\n", content, crcField, sum)
}

// parse decodes the contents of the state file at path. Every failure is a
// *CorruptError naming path.
func parse(path string, data []byte) (HardState, error) {
	hs, reason := decode(data)
	if reason != "" {
		return HardState{}, &CorruptError{Path: path, Reason: reason}
	}
	return hs, nil
}

// decode does the work of parse and returns the reason for a failure instead
// of an error, so that parse alone decides how failures are reported.
func decode(data []byte) (HardState, string) {
	if len(data) == 0 {
		return HardState{}, "is empty (a crash or a full disk may have truncated it)"
	}
	if len(data) > maxFileSize {
		return HardState{}, fmt.Sprintf("is too large to be a clustd state file (more than %d bytes)", maxFileSize)
	}
	s := string(data)
	// The magic is checked before the line structure so that a file that is
	// not a state file at all is reported as such, not as truncated.
	notState := fmt.Sprintf("is not a clustd state file (it does not start with %q)", magic+" ")
	if !strings.HasPrefix(s, magic) {
		return HardState{}, notState
	}
	line, ok := strings.CutSuffix(s, "\n")
	if !ok {
		return HardState{}, "is truncated (it does not end with a newline; a crash or a full disk may have cut it short)"
	}
	if strings.ContainsAny(line, "\n\r") {
		return HardState{}, "has more than one line"
	}
	rest, ok := strings.CutPrefix(line, magic+" ")
	if !ok {
		return HardState{}, notState
	}
	version, _, _ := strings.Cut(rest, " ")
	if version != formatVersion {
		return HardState{}, fmt.Sprintf("has unknown format version %s (this clustd reads only %s; "+
			"was the file written by a newer clustd?)", quote(version), formatVersion)
	}

	i := strings.LastIndex(line, crcField)
	if i < 0 {
		return HardState{}, "has no checksum (no" + crcField + " field; it may have been truncated)"
	}
	content, sumText := line[:i], line[i+len(crcField):]
	want, ok := parseCRC(sumText)
	if !ok {
		return HardState{}, fmt.Sprintf("has a malformed checksum %s (want 8 lowercase hexadecimal digits)", quote(sumText))
	}
	if got := crc32.Checksum([]byte(content), castagnoli); got != want {
		return HardState{}, fmt.Sprintf("has a bad checksum (the file says %08x, its contents give %08x): "+
			"it has been damaged since it was written", want, got)
	}

	// The checksum matched, so what follows catches files that were written
	// wrongly rather than damaged later.
	fields := strings.Split(content, " ")
	if len(fields) != 4 {
		return HardState{}, fmt.Sprintf("has %d fields before the checksum, want 4 (%s %s term=N vote=ID)",
			len(fields), magic, formatVersion)
	}
	termText, ok := strings.CutPrefix(fields[2], "term=")
	if !ok {
		return HardState{}, fmt.Sprintf("has %s where term=N belongs", quote(fields[2]))
	}
	term, ok := parseTerm(termText)
	if !ok {
		return HardState{}, fmt.Sprintf("has a malformed term %s (want a decimal number without sign or leading zeros)", quote(termText))
	}
	vote, ok := strings.CutPrefix(fields[3], "vote=")
	if !ok {
		return HardState{}, fmt.Sprintf("has %s where vote=ID belongs", quote(fields[3]))
	}
	if !validID(vote) {
		return HardState{}, fmt.Sprintf("has a malformed vote %s (want at most %d of A-Z a-z 0-9 . _ -)", quote(vote), maxVoteLen)
	}
	return HardState{Term: term, Vote: vote}, ""
}

// parseTerm accepts only the canonical decimal form, so that each term has
// one encoding and a damaged digit cannot hide behind a sign or a leading
// zero.
func parseTerm(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// parseCRC accepts exactly eight lowercase hexadecimal digits, the form
// format writes.
func parseCRC(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 16, 32)
	return uint32(n), err == nil
}

// quote renders a piece of a damaged file for an error message: escaped, so
// that control bytes cannot garble a log line, and shortened, so that one
// message stays readable.
func quote(s string) string {
	const limit = 40
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}
