// Package secretfile reads clustd's secret files — the peer secret, the
// drivers secret and the admin token — the one strict way that the
// daemon, the admin commands and the driver library share.
//
// A secret file must be a regular file owned by the user reading it and
// readable by nobody else (mode 0600 or 0400), as ssh demands of private
// keys: a secret that others can read is no longer a secret, and an error
// now is better than a cluster anyone on the machine can join. The error
// names the file and the command that fixes it.
package secretfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize bounds a secret file: a larger file is not a secret file.
const MaxSize = 64 << 10

// ErrTooOpen means the file is readable or writable by group or others.
var ErrTooOpen = errors.New("secret file permissions are too open")

// ErrNotOwner means the file belongs to another user than the reader.
var ErrNotOwner = errors.New("secret file is owned by another user")

// Read returns the contents of the secret file at path, less one final
// line ending (which editors and echo add unasked, and which would make
// otherwise equal secrets differ between nodes). Errors start with path.
func Read(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, pathless(err))
	}
	// Opening a FIFO or a device named by mistake could block for ever.
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, pathless(err))
	}
	defer f.Close()
	// Check what was opened, not what the name pointed at a moment ago.
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, pathless(err))
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, pathless(err))
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; is it a secret file?", path, MaxSize)
	}
	return TrimNewline(b), nil
}

// Check refuses a secret file, described by fi, that is not a regular file,
// that group or others may access, or that another user owns.
func Check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: %w: mode %04o lets group or others at it; a secret must be readable by its owner only: run chmod 600 %s",
			path, ErrTooOpen, perm, shellQuote(path))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if euid := os.Geteuid(); int(st.Uid) != euid {
			return fmt.Errorf("%s: %w (uid %d), not by the user reading it (uid %d): run chown %d %s, or run clustd as its owner",
				path, ErrNotOwner, st.Uid, euid, euid, shellQuote(path))
		}
	}
	return nil
}

// TrimNewline removes one final line ending.
func TrimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// pathless drops the operation and path that *fs.PathError repeats.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// shellQuote quotes s for a POSIX shell when it needs quoting, so that the
// suggested command can be pasted as it is.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("_-./:=@%+,"), c) >= 0
	}
	if safe {
		return s
	}
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'\''`...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(append(out, '\''))
}
