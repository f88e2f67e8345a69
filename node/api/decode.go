package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/clustd/clustd/node/config"
)

// ValidID reports whether s is a well-formed node id, by the rule the
// configuration enforces on member ids. Checking it here keeps arbitrary
// bytes from reaching the daemon and its logs.
func ValidID(s string) bool { return config.ValidID(s) }

// requestError is a request the handler refuses before the daemon sees it.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeTransferRequest returns the validated target and role of a
// transfer request; an empty target is "the best eligible node", an empty
// role the first role. Each may come from the JSON body or from the query
// (?to=ID, ?role=NAME), which is easier to type with curl; if both give
// one they must agree.
func decodeTransferRequest(w http.ResponseWriter, r *http.Request) (TransferRequest, *requestError) {
	qRole, inRoleQuery, rerr := queryParam(r, "role", "to")
	if rerr != nil {
		return TransferRequest{}, rerr
	}
	if inRoleQuery && qRole == "" {
		return TransferRequest{}, badRequest("?role= is empty: name the role, or leave the parameter out for the first role")
	}
	qTo, inQuery, rerr := queryParam(r, "to", "role")
	if rerr != nil {
		return TransferRequest{}, rerr
	}
	if inQuery && qTo == "" {
		return TransferRequest{}, badRequest("?to= is empty: name the target node, or leave the parameter out to let the master pick the best eligible node")
	}
	var body TransferRequest
	inBody, rerr := decodeBody(w, r, &body, []string{"to", "role"}, `{"to": "ID"}`)
	if rerr != nil {
		return TransferRequest{}, rerr
	}
	to := body.To
	if inQuery {
		if inBody && body.To != "" && body.To != qTo {
			return TransferRequest{}, badRequest("the query says to=%s but the body says %s; give the target once", quoteShort(qTo), quoteShort(body.To))
		}
		to = qTo
	}
	if to != "" && !ValidID(to) {
		return TransferRequest{}, badRequest("%s is not a valid node id: use 1 to 64 of the characters A-Z a-z 0-9 . _ -", quoteShort(to))
	}
	role := body.Role
	if inRoleQuery {
		if inBody && body.Role != "" && body.Role != qRole {
			return TransferRequest{}, badRequest("the query says role=%s but the body says %s; give the role once", quoteShort(qRole), quoteShort(body.Role))
		}
		role = qRole
	}
	if role != "" && !validRoleName(role) {
		return TransferRequest{}, badRequest("%s is not a role name: use 1 to 32 of the characters A-Z a-z 0-9 _ -, starting with a letter or digit", quoteShort(role))
	}
	return TransferRequest{To: to, Role: role}, nil
}

// validRoleName is config.ValidRoleName, which this package cannot import.
func validRoleName(s string) bool {
	if len(s) < 1 || len(s) > 32 || s[0] == '-' || s[0] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decodeMaintenance returns whether maintenance is to be turned on, and for
// how long and why. Unlike a transfer's target, "on" has no default: a body
// that forgets it must not quietly turn maintenance off.
func decodeMaintenance(w http.ResponseWriter, r *http.Request) (MaintenanceRequest, *requestError) {
	on, body, rerr := decodeMaintenanceOn(w, r)
	if rerr != nil {
		return MaintenanceRequest{}, rerr
	}
	req := MaintenanceRequest{On: on, For: body.For, Reason: body.Reason}
	if !on && (req.For != "" || req.Reason != "") {
		return req, badRequest(`"for" and "reason" go with {"on": true} only`)
	}
	if req.For != "" {
		d, err := time.ParseDuration(req.For)
		if err != nil || d < time.Second || d > MaxMaintenance {
			return req, badRequest(`"for": %s is not a duration from 1s to %v, such as "2h"`, quoteShort(req.For), MaxMaintenance)
		}
	}
	if len(req.Reason) > MaxMaintenanceReason {
		return req, badRequest(`"reason" is %d bytes long; at most %d`, len(req.Reason), MaxMaintenanceReason)
	}
	for _, c := range req.Reason {
		if !unicode.IsPrint(c) {
			return req, badRequest(`"reason" holds a control character; one line of text, please`)
		}
	}
	return req, nil
}

// maintenanceBody is what a POST /v1/maintenance body may hold.
type maintenanceBody struct {
	On     *bool  `json:"on"`
	For    string `json:"for"`
	Reason string `json:"reason"`
}

func decodeMaintenanceOn(w http.ResponseWriter, r *http.Request) (bool, maintenanceBody, *requestError) {
	var body maintenanceBody
	qOn, inQuery, rerr := queryParam(r, "on")
	if rerr != nil {
		return false, body, rerr
	}
	var fromQuery bool
	if inQuery {
		switch strings.ToLower(qOn) {
		case "true", "on":
			fromQuery = true
		case "false", "off":
			fromQuery = false
		default:
			return false, body, badRequest("?on=%s: want on, off, true or false", quoteShort(qOn))
		}
	}
	inBody, rerr := decodeBody(w, r, &body, []string{"on", "for", "reason"}, `{"on": true}`)
	if rerr != nil {
		return false, body, rerr
	}
	if inBody && body.On == nil {
		return false, body, badRequest(`the body lacks "on": send {"on": true} or {"on": false}`)
	}
	switch {
	case inBody && inQuery && *body.On != fromQuery:
		return false, body, badRequest("the query says on=%s but the body says %t; give the value once", quoteShort(qOn), *body.On)
	case inBody:
		return *body.On, body, nil
	case inQuery:
		return fromQuery, body, nil
	}
	return false, body, badRequest(`say whether to turn maintenance on or off: send {"on": true} or {"on": false}, or use ?on=on or ?on=off`)
}

// queryParam returns the one query parameter an endpoint accepts. Anything
// else in the query is refused: a misspelt parameter silently ignored would
// turn "transfer to n2" into "transfer anywhere".
func queryParam(r *http.Request, name string, others ...string) (value string, ok bool, _ *requestError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", false, badRequest("malformed query string: %v", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k != name && !slices.Contains(others, k) {
			if len(others) > 0 {
				return "", false, badRequest("unknown query parameter %s; the ones accepted here are %q and %q", quoteShort(k), name, strings.Join(others, ", "))
			}
			return "", false, badRequest("unknown query parameter %s; the only one accepted here is %q", quoteShort(k), name)
		}
		if n := len(q[k]); n != 1 {
			return "", false, badRequest("query parameter %q is given %d times; give it once", k, n)
		}
	}
	vs, ok := q[name]
	if !ok {
		return "", false, nil
	}
	return vs[0], true, nil
}

// decodeBody reads a JSON object into v and reports whether there was a
// body at all; an empty body is not an error, the caller decides what it
// means. fields are the keys the object may hold; example shows a valid
// body in error messages.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, fields []string, example string) (bool, *requestError) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, &requestError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the request body is larger than %d bytes; a valid one looks like %s", MaxBodyBytes, example)}
		}
		return false, badRequest("cannot read the request body: %v", err)
	}
	// Only JSON's own whitespace: bytes.TrimSpace would also drop Unicode
	// spaces that the JSON decoder rightly rejects.
	data = bytes.Trim(data, " \t\r\n")
	if len(data) == 0 {
		return false, nil
	}
	if data[0] != '{' {
		return false, badRequest("the body must be a JSON object, like %s", example)
	}
	if rerr := checkKeys(data, fields); rerr != nil {
		return false, badRequest("malformed JSON body: %s; a valid one looks like %s", rerr.msg, example)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, badRequest("malformed JSON body: %s; a valid one looks like %s", describeJSONError(err), example)
	}
	return true, nil
}

// checkKeys checks that data is one JSON object, and nothing after it,
// whose keys are among fields, each at most once and spelt exactly. The
// standard decoder alone would let {"on": true, "ON": false} through as
// false, since it matches keys case-insensitively and keeps the last
// duplicate: an ambiguous request must be refused, not guessed at.
func checkKeys(data []byte, fields []string) *requestError {
	dec := json.NewDecoder(bytes.NewReader(data))
	malformed := func(err error) *requestError { return badRequest("%s", describeJSONError(err)) }
	if _, err := dec.Token(); err != nil {
		return malformed(err)
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed(err)
		}
		key, ok := tok.(string)
		if !ok {
			return badRequest("expected a field name, found %v", tok)
		}
		switch {
		case !slices.Contains(fields, key):
			return badRequest("unknown field %s (the only one is %q)", quoteShort(key), fields[0])
		case seen[key]:
			return badRequest("field %q is given twice", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return malformed(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("unexpected data after the object")
	}
	return nil
}

// describeJSONError rewords the decoder's errors for an operator, who knows
// the field names but not Go's types.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.As(err, &te):
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Pointer:
			if te.Type.Elem().Kind() == reflect.Bool {
				want = "true or false"
			}
		}
		field := te.Field
		if field == "" {
			return fmt.Sprintf("expected %s, found a JSON %s", want, te.Value)
		}
		return fmt.Sprintf("%q must be %s, not a JSON %s", field, want, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends too early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// quoteShort quotes s for an error message, shortened so that a hostile
// request cannot make the answer, or the log line, arbitrarily long.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
