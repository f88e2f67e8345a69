package common

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
)

// MaxLine is the longest line LogLines logs as one record; a longer one is
// split, so that a command printing megabytes without a newline cannot make
// the driver buffer them all.
const MaxLine = 16 << 10

// LogLines logs every line read from r as one record at level, with the
// line under "line" after attrs, until r ends. It is meant for a command's
// stdout or stderr, so that its output lands in the driver's structured log
// next to what the driver itself says.
func LogLines(r io.Reader, log *slog.Logger, level slog.Level, msg string, attrs ...any) {
	br := bufio.NewReaderSize(r, MaxLine)
	args := append(attrs[:len(attrs):len(attrs)], "line", "")
	for {
		b, err := br.ReadSlice('\n')
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		// Blank lines carry nothing but would cost a log record each.
		if len(b) > 0 {
			args[len(args)-1] = string(b)
			log.Log(context.Background(), level, msg, args...)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
