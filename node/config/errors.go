package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is a problem with a configuration file. Its message has the form
// FILE:LINE: FIELD: WHAT, which editors and terminals turn into a link to
// the offending line.
type Error struct {
	// File is the configuration file's path as given to Load or Parse.
	File string
	// Line is 1-based, or 0 when the problem belongs to no single line,
	// such as a file that cannot be read.
	Line int
	// Field is the dotted path of the field, like members[1].address, or
	// empty when the problem concerns the file as a whole.
	Field string
	// Msg says what is wrong and, where it helps, what is expected.
	Msg string
	// Err is the underlying error, if any, so that callers can use
	// errors.Is, for instance with fs.ErrNotExist for a missing secret file.
	Err error
}

// Error returns FILE:LINE: FIELD: MSG, leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexField(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}
