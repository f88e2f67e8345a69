package localcluster

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// LogTail returns the last n lines of the file at path, for failure
// reports, or a line saying why it cannot. It reads only the file's last
// 16 KiB, so a long run's log costs no more than a short one's.
func LogTail(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	const window = 16 << 10
	fi, err := f.Stat()
	if err != nil {
		return []string{err.Error()}
	}
	off := max(fi.Size()-window, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, window))
	if err != nil {
		return []string{err.Error()}
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{"(empty)"}
	}
	lines := strings.Split(string(b), "\n")
	if off > 0 {
		lines = lines[1:] // the first may be cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
