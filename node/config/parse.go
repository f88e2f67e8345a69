package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/internal/secretfile"
	"go.yaml.in/yaml/v3"
)

// fieldKey is one key of a configuration mapping: its name as written in
// the file and how its value is read into T. The unknown-key check and the
// decoding both read the same table, so adding a key is one entry.
type fieldKey[T any] struct {
	name   string
	decode func(p *parser, into T, k, v *yaml.Node, name string) error
}

// The keys each mapping accepts, in the order the documentation lists them;
// error messages quote them in this order.
var (
	rootKeys = []fieldKey[*rawConfig]{
		{"id", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.id(&r.id, v, name)
		}},
		{"listen", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.address(&r.listen, v, name, ruleListen)
		}},
		{"advertise", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.address(&r.advertise, v, name, ruleDial)
		}},
		{"data_dir", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.dataDir, v, name)
		}},
		{"secret_file", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.secretFile, v, name)
		}},
		{"secret", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.str(&r.secret, v, name)
		}},
		{"drivers_secret_file", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.driversSecretFile, v, name)
		}},
		{"admin_token_file", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.adminTokenFile, v, name)
		}},
		{"members", func(p *parser, r *rawConfig, k, v *yaml.Node, _ string) error {
			r.membersKey = k
			return p.members(&r.members, k, v)
		}},
		{"timing", func(p *parser, r *rawConfig, k, v *yaml.Node, name string) error {
			r.timingKey = k
			return decodeKeys(p, v, name, timingKeys, r)
		}},
		{"preempt", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return decodeKeys(p, v, name, preemptKeys, r)
		}},
		{"http", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return decodeKeys(p, v, name, httpKeys, r)
		}},
		{"drivers", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return decodeKeys(p, v, name, driversKeys, r)
		}},
		{"demote_timeout", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.demoteTimeout, v, name, maxOtherDuration)
		}},
		{"log_level", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.choice(&r.logLevel, v, name, logLevels)
		}},
		{"log_format", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.choice(&r.logFormat, v, name, logFormats)
		}},
		{"seed_driver_grace", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.seed.grace, v, name, maxOtherDuration)
		}},
	}
	memberKeys = []fieldKey[*rawMember]{
		{"id", func(p *parser, m *rawMember, _, v *yaml.Node, name string) error {
			return p.id(&m.id, v, name)
		}},
		{"address", func(p *parser, m *rawMember, _, v *yaml.Node, name string) error {
			return p.address(&m.addr, v, name, ruleDial)
		}},
		{"witness", func(p *parser, m *rawMember, _, v *yaml.Node, name string) error {
			return p.boolean(&m.witness, v, name)
		}},
		{"priority", func(p *parser, m *rawMember, _, v *yaml.Node, name string) error {
			return p.priority(&m.priority, v, name)
		}},
	}
	timingKeys = []fieldKey[*rawConfig]{
		{"profile", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.profile(&r.profile, v, name)
		}},
		{"heartbeat", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.heartbeat, v, name, maxTimingDuration)
		}},
		{"election_timeout_min", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.electionMin, v, name, maxTimingDuration)
		}},
		{"election_timeout_max", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.electionMax, v, name, maxTimingDuration)
		}},
		{"rank_step", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.step, v, name, maxTimingDuration)
		}},
		{"max_clock_drift", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.drift(&r.drift, v, name)
		}},
		{"stop_budget", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.stopBudget(&r.stopBudget, v, name)
		}},
	}
	preemptKeys = []fieldKey[*rawConfig]{
		{"enabled", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.boolean(&r.preempt, v, name)
		}},
		{"hold_down", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.duration(&r.holdDown, v, name, maxOtherDuration)
		}},
	}
	httpKeys = []fieldKey[*rawConfig]{
		{"listen", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.address(&r.httpListen, v, name, ruleListen)
		}},
		{"allow_non_loopback", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.boolean(&r.allowNonLoopback, v, name)
		}},
		{"seed_drivers", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.boolean(&r.seed.enabled, v, name)
		}},
		{"tls_cert_file", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.tlsCertFile, v, name)
		}},
		{"tls_key_file", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.nonEmpty(&r.tlsKeyFile, v, name)
		}},
	}
	driversKeys = []fieldKey[*rawConfig]{
		{"required", func(p *parser, r *rawConfig, _, v *yaml.Node, name string) error {
			return p.driverNames(&r.requiredDrivers, v, name)
		}},
	}

	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// keyNames lists the names of keys, in order.
func keyNames[T any](keys []fieldKey[T]) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

// decodeKeys reads the mapping n, found at path, into into: each key is
// decoded by its entry in keys, and any other key is an error.
func decodeKeys[T any](p *parser, n *yaml.Node, path string, keys []fieldKey[T], into T) error {
	return p.mapping(n, path, keyNames(keys), func(key string, k, v *yaml.Node) error {
		for _, f := range keys {
			if f.name == key {
				return f.decode(p, into, k, v, joinField(path, key))
			}
		}
		return nil // unreachable: mapping refuses keys not in the list
	})
}

// field is one decoded value and where it came from. Keeping the node lets
// checks that run after the whole file is read (such as "id must be one of
// members") still point at the right line.
type field[T any] struct {
	v   T
	n   *yaml.Node // the value's node if the key is present, even when null
	set bool       // present with a non-null value
}

type rawMember struct {
	node     *yaml.Node
	id       field[string]
	addr     field[hostPort]
	witness  field[bool]
	priority field[int]
}

type rawConfig struct {
	root                                *yaml.Node
	id, dataDir, secretFile, secret     field[string]
	driversSecretFile, adminTokenFile   field[string]
	listen, advertise, httpListen       field[hostPort]
	members                             field[[]rawMember]
	membersKey, timingKey               *yaml.Node
	profile                             field[string]
	heartbeat, electionMin, electionMax field[time.Duration]
	step                                field[time.Duration]
	stopBudget                          field[time.Duration]
	drift                               field[float64]
	preempt, allowNonLoopback           field[bool]
	holdDown, demoteTimeout             field[time.Duration]
	logLevel, logFormat                 field[string]
	requiredDrivers                     field[[]string]
	tlsCertFile, tlsKeyFile             field[string]
	seed                                rawSeed
}

type parser struct {
	file  string  // the name errors use
	path  string  // the path relative files are resolved against
	scope Secrets // which secret files to read
}

func (p *parser) errAt(n *yaml.Node, field, format string, args ...any) *Error {
	e := &Error{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

var yamlUnknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// aliasLine returns the line of the first *name in data, or 0.
func aliasLine(data []byte, name string) int {
	for i := 0; ; {
		j := bytes.Index(data[i:], []byte("*"+name))
		if j < 0 {
			return 0
		}
		i += j + 1 + len(name)
		if i == len(data) || bytes.IndexByte([]byte(" \t\r\n,]}"), data[i]) >= 0 {
			return 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
}

var yamlLineError = regexp.MustCompile(`(?s)^yaml: (?:line ([0-9]+): )?(.*)$`)

// yamlParserProblems are the messages of the YAML library's parser stage.
// The library numbers their lines from 0 while numbering the scanner's from 1
// (and leaves the number out when it is 0), so telling them apart is the only
// way to report the right line.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlScannerProblems begin the scanner's messages. A scanner or parser
// message without a line number is about line 1; the library's other
// messages (bad UTF-8, control characters, unknown anchors) carry no
// position at all.
var yamlScannerProblems = []string{
	"block sequence entries are not allowed",
	"exceeded max depth",
	"could not find expected",
	"did not find expected",
	"did not find the expected",
	"found a tab character",
	"found an indentation indicator",
	"found character that cannot start any token",
	"found extremely long version number",
	"found invalid Unicode character escape code",
	"found unexpected",
	"found unknown",
	"mapping keys are not allowed",
	"mapping values are not allowed",
}

// yamlError moves the line number the YAML library puts in its message into
// Error.Line, so that syntax errors read like every other error.
func (p *parser) yamlError(err error, data []byte) *Error {
	e := &Error{File: p.file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	m := yamlLineError.FindStringSubmatch(err.Error())
	if m == nil {
		return e
	}
	line := 0
	if a := yamlUnknownAnchor.FindStringSubmatch(m[2]); a != nil {
		// The library does not say where; the first use is a good guess.
		e.Line = aliasLine(data, a[1])
		return e
	}
	if m[1] != "" {
		n, convErr := strconv.Atoi(m[1])
		if convErr != nil {
			return e
		}
		line = n
	}
	problem := m[2]
	switch {
	case yamlParserProblems[problem]:
		line++
	case line == 0:
		for _, prefix := range yamlScannerProblems {
			if strings.HasPrefix(problem, prefix) {
				line = 1
				break
			}
		}
	}
	e.Line, e.Msg = line, "invalid YAML: "+problem
	return e
}

// document parses data into a node tree and returns its top-level mapping.
func (p *parser) document(data []byte) (root *yaml.Node, err error) {
	// A configuration file is operator input, and bad input must never
	// crash the daemon. The YAML library reports errors by panicking
	// internally and could, on some input nobody has tried yet, let a
	// panic escape; turn that into an error too.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Error{File: p.file, Msg: fmt.Sprintf("invalid YAML: the parser failed: %v", r)}
		}
	}()
	empty := &Error{File: p.file, Msg: "the file is empty; expected a clustd configuration (clustd init writes one)"}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, empty
		}
		return nil, p.yamlError(err, data)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, p.yamlError(err, data)
	default:
		return nil, &Error{File: p.file, Line: extra.Line, Msg: "a second YAML document; the file must hold exactly one"}
	}
	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, empty
		}
		n = n.Content[0]
	}
	n = deref(n)
	if n == nil || isNull(n) {
		empty.Line = doc.Line
		return nil, empty
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "", "the top level must be a mapping of fields such as id and members, not %s", describe(n))
	}
	return n, nil
}

// deref follows aliases. The node tree is walked only as deep as the schema
// goes, so an alias that points back at its own ancestor cannot loop.
//
// The result carries the alias's position, so that an error about a value
// that came through an alias points at the line using it; errors inside an
// aliased mapping or list still point at the lines where those are written.
func deref(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		return n
	}
	use := n
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 8 {
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	c := *n
	c.Line, c.Column = use.Line, use.Column
	return &c
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what was found where something else was expected.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// mapping walks the mapping n, handing each known key to each in document
// order. A null n counts as an absent section. Unknown and repeated keys are
// errors: either would make a value silently not apply.
func (p *parser) mapping(n *yaml.Node, path string, known []string, each func(key string, k, v *yaml.Node) error) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errAt(n, path, "must be a mapping with the fields %s, not %s", strings.Join(known, ", "), describe(n))
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			return p.errAt(n.Content[i], path, "keys must be plain field names such as %s", known[0])
		}
		if k.ShortTag() == "!!merge" {
			return p.errAt(k, joinField(path, "<<"), "merge keys are not supported; write the fields out")
		}
		name := k.Value
		if !plainKey(name) {
			name = strconv.Quote(name)
		}
		name = joinField(path, name)
		if v == nil {
			return p.errAt(n.Content[i+1], name, "alias could not be resolved")
		}
		if first, dup := seen[k.Value]; dup {
			return p.errAt(k, name, "repeated; it was already set on line %d", first)
		}
		seen[k.Value] = k.Line
		found := false
		for _, f := range known {
			if f == k.Value {
				found = true
				break
			}
		}
		if !found {
			return p.errAt(k, name, "unknown field; expected one of %s", strings.Join(known, ", "))
		}
		if err := each(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) str(f *field[string], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return p.errAt(v, name, "must be a string, not %s", describe(v))
	}
	f.v, f.set = v.Value, true
	return nil
}

func (p *parser) nonEmpty(f *field[string], v *yaml.Node, name string) error {
	if err := p.str(f, v, name); err != nil {
		return err
	}
	if f.set && f.v == "" {
		return p.errAt(v, name, "must not be empty")
	}
	return nil
}

// maxDriverName is the longest driver name a driver's hello may carry.
const maxDriverName = 96

// driverNames reads a list of driver names (drivers.required).
func (p *parser) driverNames(f *field[[]string], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return p.errAt(v, name, "must be a list of driver names (the --name each driver runs with), not %s", describe(v))
	}
	seen := map[string]bool{}
	for _, item := range v.Content {
		item = deref(item)
		if item == nil || item.Kind != yaml.ScalarNode || isNull(item) {
			return p.errAt(v, name, "each entry must be a driver name")
		}
		n := item.Value
		ok := len(n) >= 1 && len(n) <= maxDriverName
		for i := 0; i < len(n) && ok; i++ {
			c := n[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		}
		if !ok {
			return p.errAt(item, name, "%q is not a driver name: use 1 to %d of the characters A-Z a-z 0-9 . _ -", n, maxDriverName)
		}
		if seen[n] {
			return p.errAt(item, name, "%q is listed twice", n)
		}
		seen[n] = true
		f.v = append(f.v, n)
	}
	f.set = true
	return nil
}

// id reads a node id. An unquoted null, Null or NULL is YAML's empty value,
// which would otherwise surface as a baffling "required".
func (p *parser) id(f *field[string], v *yaml.Node, name string) error {
	if isNull(v) && strings.EqualFold(v.Value, "null") {
		return p.errAt(v, name, "%s is YAML for \"no value\"; quote it (\"%s\") to use it as an id", v.Value, v.Value)
	}
	if err := p.str(f, v, name); err != nil {
		return err
	}
	if f.set && !ValidID(f.v) {
		return p.errAt(v, name, "%q is not a valid id: use 1 to 64 of the characters A-Z a-z 0-9 . _ -", f.v)
	}
	return nil
}

// ValidID reports whether s is a well-formed node id: 1 to 64 of the
// characters A-Z a-z 0-9 . _ -.
func ValidID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (p *parser) choice(f *field[string], v *yaml.Node, name string, choices []string) error {
	if err := p.str(f, v, name); err != nil {
		return err
	}
	if !f.set {
		return nil
	}
	for _, c := range choices {
		if f.v == c {
			return nil
		}
	}
	return p.errAt(v, name, "%q is not one of %s", f.v, strings.Join(choices, ", "))
}

func (p *parser) boolean(f *field[bool], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		switch strings.ToLower(v.Value) {
		case "true":
			f.v, f.set = true, true
			return nil
		case "false":
			f.v, f.set = false, true
			return nil
		}
	}
	return p.errAt(v, name, "%s is not true or false", describe(v))
}

func (p *parser) duration(f *field[time.Duration], v *yaml.Node, name string, max time.Duration) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return p.errAt(v, name, "%s is not a duration (like 50ms or 1s)", describe(v))
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		return p.errAt(v, name, "%q is not a duration (like 50ms or 1s)", v.Value)
	}
	if d <= 0 {
		return p.errAt(v, name, "%q must be positive", v.Value)
	}
	if d > max {
		return p.errAt(v, name, "%q is longer than the limit of %v", v.Value, max)
	}
	f.v, f.set = d, true
	return nil
}

func (p *parser) priority(f *field[int], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		// Decimal, even where YAML 1.1 would read a leading zero as octal:
		// a priority of 010 means ten to whoever wrote it.
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err == nil {
			if n < 0 || n > MaxPriority {
				return p.errAt(v, name, "%d is outside 0..%d", n, MaxPriority)
			}
			f.v, f.set = int(n), true
			return nil
		}
		if errors.Is(err, strconv.ErrRange) {
			return p.errAt(v, name, "%s is outside 0..%d", v.Value, MaxPriority)
		}
	}
	return p.errAt(v, name, "%s is not a whole number from 0 to %d", describe(v), MaxPriority)
}

func (p *parser) drift(f *field[float64], v *yaml.Node, name string) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		if tag := v.ShortTag(); tag == "!!float" || tag == "!!int" {
			x, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
			if err == nil {
				if !(x >= 0 && x < 0.5) {
					return p.errAt(v, name, "%s is outside [0, 0.5); 0.05 means clock rates stay within ±5%% of real time", v.Value)
				}
				f.v, f.set = x, true
				return nil
			}
		}
	}
	return p.errAt(v, name, "%s is not a number (like 0.05 for ±5%%)", describe(v))
}

// addrUseError is an address that is well formed but unfit for its use.
type addrUseError string

func (e addrUseError) Error() string { return string(e) }

func (p *parser) address(f *field[hostPort], v *yaml.Node, name string, rule addrRule) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return p.errAt(v, name, "must be HOST:PORT, not %s", describe(v))
	}
	a, err := parseHostPort(v.Value, rule)
	if err != nil {
		var use addrUseError
		if errors.As(err, &use) {
			return p.errAt(v, name, "%q: %v", v.Value, err)
		}
		return p.errAt(v, name, "%q is not HOST:PORT (%v)", v.Value, err)
	}
	f.v, f.set = a, true
	return nil
}

// decode reads every field, checking each on its own; checks that involve
// several fields wait for resolve, so that errors come in file order as far
// as possible.
func (p *parser) decode(root *yaml.Node) (*rawConfig, error) {
	r := &rawConfig{root: root}
	if err := decodeKeys(p, root, "", rootKeys, r); err != nil {
		return nil, err
	}
	return r, nil
}

// profile reads timing.profile, which must name a profile election knows.
func (p *parser) profile(f *field[string], v *yaml.Node, name string) error {
	if err := p.str(f, v, name); err != nil || !f.set {
		return err
	}
	if _, err := election.ProfileTiming(f.v); err != nil {
		return p.errAt(v, name, "%q is not a timing profile; expected %s or %s", f.v, election.ProfileDefault, election.ProfileFast)
	}
	return nil
}

// stopBudget reads timing.stop_budget. Unlike other durations it may be
// zero: a choice for services that stop at once.
func (p *parser) stopBudget(f *field[time.Duration], v *yaml.Node, name string) error {
	if s := strings.TrimSpace(v.Value); v.Kind == yaml.ScalarNode && (s == "0" || s == "0s" || s == "0ms") {
		f.n, f.v, f.set = v, 0, true
		return nil
	}
	return p.duration(f, v, name, election.MaxStopBudget)
}

// members reads the member list. Errors about the list as a whole point at
// its key: a block list's own position is that of its first entry.
func (p *parser) members(f *field[[]rawMember], k, v *yaml.Node) error {
	f.n = v
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return p.errAt(v, "members", "must be a list of members (each with id and address), not %s", describe(v))
	}
	if len(v.Content) == 0 {
		return p.errAt(k, "members", "the list is empty; list every node of the cluster, this one included")
	}
	if len(v.Content) > MaxMembers {
		return p.errAt(k, "members", "%d members; at most %d are supported", len(v.Content), MaxMembers)
	}
	ids := make(map[string]int, len(v.Content))
	addrs := make(map[string]int, len(v.Content))
	for i, item := range v.Content {
		name := indexField("members", i)
		n := deref(item)
		if n == nil {
			return p.errAt(item, name, "alias could not be resolved")
		}
		if isNull(n) {
			return p.errAt(n, name, "empty entry; a member needs an id and an address")
		}
		m := rawMember{node: n}
		if err := decodeKeys(p, n, name, memberKeys, &m); err != nil {
			return err
		}
		if !m.id.set {
			return p.errAt(orNode(m.id.n, n), name+".id", "required")
		}
		if !m.addr.set {
			return p.errAt(orNode(m.addr.n, n), name+".address", "required; the HOST:PORT peers connect to")
		}
		if j, dup := ids[m.id.v]; dup {
			return p.errAt(m.id.n, name+".id", "%q is already the id of members[%d]", m.id.v, j)
		}
		ids[m.id.v] = i
		a := m.addr.v.String()
		if j, dup := addrs[a]; dup {
			return p.errAt(m.addr.n, name+".address", "%q is already the address of members[%d]", a, j)
		}
		addrs[a] = i
		f.v = append(f.v, m)
	}
	f.set = true
	return nil
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

// resolve checks what involves more than one field, applies defaults and
// reads the secrets.
func (p *parser) resolve(r *rawConfig) (*Config, error) {
	self, err := p.resolveSelf(r)
	if err != nil {
		return nil, err
	}
	if !r.dataDir.set {
		return nil, p.errAt(orNode(r.dataDir.n, r.root), "data_dir", "required; the directory where this node keeps its term and vote")
	}
	c := &Config{
		Path:            p.path,
		ID:              r.id.v,
		DataDir:         p.resolvePath(r.dataDir.v),
		Preempt:         r.preempt.v,
		PreemptHoldDown: DefaultPreemptHoldDown,
		DemoteTimeout:   DefaultDemoteTimeout,
		LogLevel:        DefaultLogLevel,
		LogFormat:       DefaultLogFormat,
	}
	if err := p.loadSecrets(r, c); err != nil {
		return nil, err
	}
	if r.secretFile.set {
		c.SecretFile = p.resolvePath(r.secretFile.v)
	}
	if r.driversSecretFile.set {
		c.DriversSecretFile = p.resolvePath(r.driversSecretFile.v)
	}
	if c.Timing, err = p.resolveTiming(r); err != nil {
		return nil, err
	}
	c.Members = make([]Member, len(r.members.v))
	for i, m := range r.members.v {
		c.Members[i] = Member{ID: m.id.v, Address: m.addr.v.String(), Witness: m.witness.v, Priority: m.priority.v}
	}
	c.RequiredDrivers = r.requiredDrivers.v
	if err := p.resolveListeners(r, c, r.members.v[self].addr.v); err != nil {
		return nil, err
	}
	if r.holdDown.set {
		c.PreemptHoldDown = r.holdDown.v
	}
	if r.demoteTimeout.set {
		c.DemoteTimeout = r.demoteTimeout.v
	}
	if r.logLevel.set {
		c.LogLevel = r.logLevel.v
	}
	if r.logFormat.set {
		c.LogFormat = r.logFormat.v
	}
	if err := p.resolveSeed(r, c); err != nil {
		return nil, err
	}
	return c, nil
}

// resolveSelf checks the member list against id and returns this node's
// index in it.
func (p *parser) resolveSelf(r *rawConfig) (int, error) {
	if !r.members.set {
		return -1, p.errAt(orNode(r.members.n, r.root), "members", "required; list every node of the cluster, this one included")
	}
	ms := r.members.v
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.id.v
	}
	if !r.id.set {
		return -1, p.errAt(orNode(r.id.n, r.root), "id", "required; it names this node and must be one of the members (%s)", strings.Join(ids, ", "))
	}
	self := -1
	for i, m := range ms {
		if m.id.v == r.id.v {
			self = i
		}
	}
	if self < 0 {
		return -1, p.errAt(r.id.n, "id", "%q is not among the members (%s)", r.id.v, strings.Join(ids, ", "))
	}
	voters := 0
	for _, m := range ms {
		if !m.witness.v {
			voters++
		}
	}
	if voters == 0 {
		return -1, p.errAt(r.membersKey, "members", "every member is a witness; at least one must be able to become master")
	}
	return self, nil
}

// resolveTiming applies the timing fields set over the profile's and
// checks the result as a whole.
func (p *parser) resolveTiming(r *rawConfig) (election.Timing, error) {
	t, err := election.ProfileTiming(r.profile.v)
	if err != nil {
		// Unreachable: decode has checked the profile name.
		return t, p.errAt(r.profile.n, "timing.profile", "%v", err)
	}
	if r.heartbeat.set {
		t.Heartbeat = r.heartbeat.v
	}
	if r.electionMin.set {
		t.ElectionMin = r.electionMin.v
	}
	if r.electionMax.set {
		t.ElectionMax = r.electionMax.v
	}
	if r.step.set {
		t.Step = r.step.v
	}
	if r.drift.set {
		t.MaxClockDrift = r.drift.v
	}
	if r.stopBudget.set {
		t.StopBudget = r.stopBudget.v
	}
	if err := t.Validate(); err != nil {
		return t, p.errAt(orNode(r.timingKey, r.root), "timing", "%v", err)
	}
	return t, nil
}

// resolveListeners sets the peer listener, the advertised address and the
// local HTTP listener, which default to this member's own address (own) and
// DefaultHTTPListen, and checks that they do not collide.
func (p *parser) resolveListeners(r *rawConfig, c *Config, own hostPort) error {
	listen := own
	if r.listen.set {
		listen = r.listen.v
	}
	c.Listen = listen.String()
	c.ListenSet = r.listen.set
	c.Advertise = own.String()
	if r.advertise.set {
		c.Advertise = r.advertise.v.String()
	}

	httpListen, err := parseHostPort(DefaultHTTPListen, ruleListen)
	if err != nil {
		return err // unreachable: the default is well formed
	}
	if r.httpListen.set {
		httpListen = r.httpListen.v
	}
	httpNode := orNode(r.httpListen.n, r.root)
	if !r.allowNonLoopback.v && !httpListen.isLoopback() {
		return p.errAt(httpNode, "http.listen", "%q is not a loopback address; it serves drivers and the admin API, so exposing it beyond this machine needs http.allow_non_loopback: true", httpListen.String())
	}
	if httpListen.overlaps(listen) {
		what := "the default"
		if r.httpListen.set {
			what = "set here"
		}
		return p.errAt(orNode(r.httpListen.n, orNode(r.listen.n, r.root)), "http.listen", "%q (%s) collides with the peer listen address %q", httpListen.String(), what, listen.String())
	}
	c.HTTPListen = httpListen.String()
	return p.httpTLS(r, c, httpListen.isLoopback())
}

// httpTLS checks and loads the local listener's certificate. Listening
// beyond loopback needs one: the drivers' and admin's traffic, the admin
// token included, would otherwise cross the network in clear.
func (p *parser) httpTLS(r *rawConfig, c *Config, loopback bool) error {
	switch {
	case r.tlsCertFile.set != r.tlsKeyFile.set:
		missing, given, givenName := "http.tls_key_file", r.tlsCertFile, "http.tls_cert_file"
		if r.tlsKeyFile.set {
			missing, given, givenName = "http.tls_cert_file", r.tlsKeyFile, "http.tls_key_file"
		}
		return p.errAt(given.n, missing, "required with %s: give both the certificate and its key", givenName)
	case !r.tlsCertFile.set && !loopback:
		return p.errAt(orNode(r.allowNonLoopback.n, r.root), "http.allow_non_loopback",
			"listening beyond loopback (%s) needs TLS, or the admin token and drivers' traffic cross the network in clear: set http.tls_cert_file and http.tls_key_file", c.HTTPListen)
	case !r.tlsCertFile.set:
		return nil
	}
	c.TLSCertFile = p.resolvePath(r.tlsCertFile.v)
	c.TLSKeyFile = p.resolvePath(r.tlsKeyFile.v)
	if p.scope != AllSecrets {
		return nil
	}
	certPEM, err := readFileLimited(c.TLSCertFile, maxSecretFileSize)
	if err != nil {
		return p.errAt(r.tlsCertFile.n, "http.tls_cert_file", "%s: %s", c.TLSCertFile, describeIOError(err))
	}
	keyPEM, err := p.secretFromFile(r.tlsKeyFile, "http.tls_key_file")
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return p.errAt(r.tlsKeyFile.n, "http.tls_key_file", "%s and %s are not a certificate and its key: %v", c.TLSCertFile, c.TLSKeyFile, err)
	}
	c.TLSCertificate = &cert
	return nil
}

// secrets returns the peer secret from exactly one of secret_file and secret.
func (p *parser) secrets(r *rawConfig) ([]byte, error) {
	switch {
	case r.secretFile.set && r.secret.set:
		later, name := r.secret.n, "secret"
		if r.secretFile.n.Line > later.Line {
			later, name = r.secretFile.n, "secret_file"
		}
		return nil, p.errAt(later, name, "set only one of secret_file and secret")
	case r.secretFile.set:
		return p.secretFromFile(r.secretFile, "secret_file")
	case r.secret.set:
		// The value never appears in messages: errors end up in logs.
		s := trimNewline([]byte(r.secret.v))
		if len(s) < MinSecretLen {
			return nil, p.errAt(r.secret.n, "secret", "the secret is %d bytes long; it must be at least %d (clustd init writes a suitable secret file)", len(s), MinSecretLen)
		}
		return s, nil
	}
	return nil, p.errAt(orNode(r.secretFile.n, orNode(r.secret.n, r.root)), "secret_file", "required (or an inline secret); clustd init writes a suitable secret file")
}

// loadSecrets reads the secret files p.scope asks for. A drivers secret
// or an admin token without a file of its own is the peer secret (or the
// token derived from it), as before those files existed; then the peer
// secret is read for them.
func (p *parser) loadSecrets(r *rawConfig, c *Config) error {
	var err error
	c.InlineSecret = r.secret.set
	if r.adminTokenFile.set {
		c.AdminTokenFile = p.resolvePath(r.adminTokenFile.v)
	}
	needPeer := p.scope == AllSecrets ||
		(p.scope == DriversSecretOnly && !r.driversSecretFile.set) ||
		(p.scope == AdminTokenOnly && !r.adminTokenFile.set)
	if needPeer {
		if c.Secret, err = p.secrets(r); err != nil {
			return err
		}
	}
	if p.scope == NoSecrets {
		return nil
	}
	if p.scope != AdminTokenOnly {
		c.DriversSecret = c.Secret
		if r.driversSecretFile.set {
			if c.DriversSecret, err = p.secretFromFile(r.driversSecretFile, "drivers_secret_file"); err != nil {
				return err
			}
		}
	}
	if p.scope != DriversSecretOnly && r.adminTokenFile.set {
		tok, err := p.secretFromFile(r.adminTokenFile, "admin_token_file")
		if err != nil {
			return err
		}
		for _, b := range tok {
			if b <= ' ' || b > '~' {
				return p.errAt(r.adminTokenFile.n, "admin_token_file", "%s holds a character that cannot go in an HTTP header; an admin token is printable ASCII without spaces (clustd init writes one)", p.resolvePath(r.adminTokenFile.v))
			}
		}
		c.AdminToken = string(tok)
	}
	return nil
}

func (p *parser) secretFromFile(f field[string], name string) ([]byte, error) {
	path := p.resolvePath(f.v)
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, &Error{File: p.file, Line: f.n.Line, Field: name, Msg: err.Error(), Err: err}
	}
	if len(b) < MinSecretLen {
		return nil, p.errAt(f.n, name, "%s holds %d bytes (not counting a final newline); a secret must be at least %d", path, len(b), MinSecretLen)
	}
	return b, nil
}

// trimNewline removes one final line ending, which editors and echo add
// without being asked and which would otherwise make otherwise identical
// secrets differ between nodes.
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// resolvePath makes s absolute, taking a relative s as relative to the
// configuration file's directory: the daemon's working directory is
// arbitrary, the file's location is what the author had in mind.
func (p *parser) resolvePath(s string) string {
	if !filepath.IsAbs(s) {
		s = filepath.Join(filepath.Dir(p.path), s)
	}
	if abs, err := filepath.Abs(s); err == nil {
		s = abs
	}
	return filepath.Clean(s)
}
