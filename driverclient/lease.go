package driverclient

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Lease is what a driver may do, and until when, as the library sees it:
// the lease of the state Trigger was last called with, moved on by each
// renewal. Both deadlines are CLOCK_BOOTTIME readings, comparable with
// boottime.Now in any process of the host.
//
// A lease bounds when the next master's drivers may start, but only a
// process that keeps checking it is bound by it: a process that was frozen
// (a paused virtual machine, SIGSTOP of everything, a cgroup freeze) wakes
// up with no idea that time passed, and acts before any clustd process of
// its machine has noticed. So a service that must never act beside another
// master checks the lease just before each externally visible action, and
// gives the term to whatever it writes as a fencing token (see
// docs/drivers.md, "Whole-machine freezes").
type Lease struct {
	// Term is the term of the state: the fencing token.
	Term uint64
	// Deadline is when acting as master (starting new work) must stop, or
	// zero when the driver is not master.
	Deadline time.Duration
	// StopDeadline is when even finishing work in hand must stop (the
	// stop deadline: a lease-lost demote must be over by then, and the
	// next master's drivers may start soon after), or zero when no such
	// bound is known.
	StopDeadline time.Duration
}

// MayAct reports whether, at now, a process may still start work as
// master: now is before Deadline.
func (l Lease) MayAct(now time.Duration) bool { return l.Deadline > 0 && now < l.Deadline }

// MayFinish reports whether, at now, a process that is stopping may still
// finish work in hand: now is before StopDeadline (or before Deadline,
// which is never later, when no stop deadline is known).
func (l Lease) MayFinish(now time.Duration) bool {
	return l.MayAct(now) || (l.StopDeadline > 0 && now < l.StopDeadline)
}

// LeaseWatcher is a Driver that wants to know its lease. The library calls
// LeaseChanged from the goroutine that enforces the lease, so it must be
// quick and must not block: at each promote and demote before Trigger is
// called with it, at each renewal that moves a deadline while the driver
// acts on that state (a few times per lease), and with the zero Lease once
// the final demote of Run is done. A demote's lease has no Deadline: from
// the moment the library decides to demote, nothing may start as master.
type LeaseWatcher interface {
	LeaseChanged(Lease)
}

// The lease file: one key=value line per field, which a shell script can
// read as well as a program.
const (
	leaseKeyTerm     = "term"
	leaseKeyDeadline = "lease_deadline_ns"
	leaseKeyStop     = "stop_deadline_ns"
)

// MarshalLease is l as a lease file holds it:
//
//	term=7
//	lease_deadline_ns=81234567890
//	stop_deadline_ns=81284567890
func MarshalLease(l Lease) []byte {
	b := make([]byte, 0, 96)
	b = fmt.Appendf(b, "%s=%d\n%s=%d\n%s=%d\n", leaseKeyTerm, l.Term, leaseKeyDeadline, int64(l.Deadline), leaseKeyStop, int64(l.StopDeadline))
	return b
}

// ParseLease reads a lease file's contents. Every field must be there once,
// and nothing else: a service that misreads its lease must not act on it.
func ParseLease(b []byte) (Lease, error) {
	var l Lease
	seen := map[string]bool{}
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return Lease{}, fmt.Errorf("line %d: %q: want key=value", n+1, line)
		}
		k := string(key)
		if seen[k] {
			return Lease{}, fmt.Errorf("line %d: %s given twice", n+1, k)
		}
		seen[k] = true
		switch k {
		case leaseKeyTerm:
			t, err := strconv.ParseUint(string(val), 10, 64)
			if err != nil {
				return Lease{}, fmt.Errorf("line %d: %s: %v", n+1, k, err)
			}
			l.Term = t
		case leaseKeyDeadline, leaseKeyStop:
			v, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || v < 0 {
				return Lease{}, fmt.Errorf("line %d: %s %q: want nanoseconds of CLOCK_BOOTTIME", n+1, k, val)
			}
			if k == leaseKeyDeadline {
				l.Deadline = time.Duration(v)
			} else {
				l.StopDeadline = time.Duration(v)
			}
		default:
			return Lease{}, fmt.Errorf("line %d: unknown key %q", n+1, k)
		}
	}
	for _, k := range []string{leaseKeyTerm, leaseKeyDeadline, leaseKeyStop} {
		if !seen[k] {
			return Lease{}, fmt.Errorf("no %s", k)
		}
	}
	return l, nil
}

// ReadLeaseFile reads the lease file at path, as `clustd driver exec`
// keeps it for its command (CLUSTD_LEASE_FILE). A missing or unreadable
// file is an error, which a service must take as "no lease".
func ReadLeaseFile(path string) (Lease, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Lease{}, err
	}
	l, err := ParseLease(b)
	if err != nil {
		return Lease{}, fmt.Errorf("lease file %s: %w", path, err)
	}
	return l, nil
}

// WriteLeaseFile replaces the lease file at path with l, atomically: a
// reader sees the old lease or the new one, never a mix. The file is
// readable by its owner only (0600). It is not synced: the file lives as
// long as the processes that read it, which a crash ends too.
func WriteLeaseFile(path string, l Lease) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(MarshalLease(l))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the lease file %s: %w", filepath.Base(path), err)
	}
	return nil
}

// errNoLeaseFile is what a LeaseFile without a path reports.
var errNoLeaseFile = errors.New("no lease file")

// LeaseFile keeps a lease file up to date for a process that reads it. Its
// LeaseChanged writes each lease; a lease that cannot be written removes
// the file, so that a reader finds no lease rather than an old one that a
// planned hand-over may already have ended.
type LeaseFile struct {
	// Path is the file.
	Path string
	// OnError, if set, hears of a lease that could not be written.
	OnError func(error)
}

// LeaseChanged writes l to the file, reporting a failure to OnError. It
// implements the method of LeaseWatcher.
func (f *LeaseFile) LeaseChanged(l Lease) {
	if err := f.Write(l); err != nil && f.OnError != nil {
		f.OnError(err)
	}
}

// Write writes l to the file, or, if it cannot, removes the file.
func (f *LeaseFile) Write(l Lease) error {
	if f.Path == "" {
		return errNoLeaseFile
	}
	err := WriteLeaseFile(f.Path, l)
	if err != nil {
		if rerr := os.Remove(f.Path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("%w; removing it failed too, and it may show an old lease: %v", err, rerr)
		}
	}
	return err
}
