package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Names of the files the store keeps in the data directory.
const (
	stateName = "state"
	tmpName   = "state.tmp"
	lockName  = "lock"
)

// Store is an open, locked data directory holding a node's hard state. Its
// methods are safe for concurrent use.
type Store struct {
	dir  string
	path string   // the state file
	lock *os.File // holds the flock for as long as the store is open
	dirf *os.File // kept open: each Save works relative to it (openat, renameat) and syncs it

	// spare is an unnamed file (O_TMPFILE) in the data directory, created
	// ahead of the next Save, and reserve a descriptor held back to be
	// given up if creating a file fails for want of descriptors. A process
	// flooded with connections can run out of them; it must still be able
	// to save its vote.
	spare   *os.File
	reserve int

	mu     sync.Mutex
	hs     HardState // the last state known to be durable
	closed bool
}

// Open opens the data directory dir, creating it (mode 0700) if it does not
// exist, locks it against other clustd processes and returns the hard state
// stored there. A directory without a state file belongs to a fresh node and
// yields the zero HardState.
//
// A state file that exists but cannot be read or trusted makes Open fail with
// a *CorruptError rather than start from scratch, since a node that forgot
// its vote could vote twice in one term. A state.tmp left behind by a crash
// during Save is removed: the rename that would have published it never
// happened, so the state file still holds the last durable state.
func Open(dir string) (*Store, HardState, error) {
	if dir == "" {
		return nil, HardState{}, errors.New("no data directory given")
	}
	if err := mkdirDurable(dir); err != nil {
		return nil, HardState{}, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, HardState{}, err
	}
	s := &Store{dir: dir, path: filepath.Join(dir, stateName), lock: lock, reserve: -1}
	hs, err := s.load()
	if err != nil {
		s.release()
		return nil, HardState{}, err
	}
	s.hs = hs
	return s, hs, nil
}

// load finishes Open once the directory is locked.
func (s *Store) load() (HardState, error) {
	dirf, err := os.Open(s.dir)
	if err != nil {
		return HardState{}, fmt.Errorf("opening data directory %s: %w", s.dir, err)
	}
	s.dirf = dirf
	// Only now that the lock is held is a state.tmp certain to be a leftover
	// rather than another process's Save in progress.
	tmp := filepath.Join(s.dir, tmpName)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return HardState{}, fmt.Errorf("removing %s left over from an interrupted save: %w", tmp, err)
	}
	hs, err := readState(s.path)
	if err != nil {
		return HardState{}, err
	}
	if s.reserve, err = unix.FcntlInt(dirf.Fd(), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		s.reserve = -1
		return HardState{}, fmt.Errorf("data directory %s: %w", s.dir, err)
	}
	s.spare = s.openSpare()
	return hs, nil
}

// readState reads and parses the state file at path.
func readState(path string) (HardState, error) {
	// Lstat rather than Open decides whether the file is missing, so that a
	// dangling symlink is reported instead of being taken for a fresh node.
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return HardState{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return HardState{}, unreadable(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return HardState{}, unreadable(path, err)
	}
	return parse(path, data)
}

// unreadable reports a state file that exists but could not be read.
func unreadable(path string, err error) *CorruptError {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The path is already in the message; repeating it only adds noise.
		cause = pe.Err
	}
	return &CorruptError{
		Path:   path,
		Reason: fmt.Sprintf("cannot be read (%v)", cause),
		Err:    err,
	}
}

// Save makes hs the stored hard state. It returns only once hs is durable, so
// the caller may then send the messages that depend on it. hs is written to
// state.tmp, synced, renamed over the state file, and the directory is synced
// so that the rename itself survives a crash.
//
// Save refuses a term lower than the stored one and, within the same term, a
// vote that differs from a vote already stored: either would let this node
// vote twice in one term, so they can only come from a bug in the caller.
//
// If Save fails, the state file holds either the previous or the new state;
// the caller must not send anything that depends on hs, and should stop the
// node.
func (s *Store) Save(hs HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("saving state in %s: the store is closed", s.dir)
	}
	if !validID(hs.Vote) {
		return fmt.Errorf("refusing to save vote %s in term %d: not a valid node id (want at most %d of A-Z a-z 0-9 . _ -)",
			quote(hs.Vote), hs.Term, maxVoteLen)
	}
	if err := checkTransition(s.hs, hs); err != nil {
		return err
	}
	if hs == s.hs {
		// Already durable; rewriting it would only cost two fsyncs.
		return nil
	}
	if err := s.write(hs); err != nil {
		return fmt.Errorf("saving term %d and vote %q to %s: %w", hs.Term, hs.Vote, s.path, err)
	}
	s.hs = hs
	return nil
}

// checkTransition returns an error if moving from the stored state old to
// next would break the one-vote-per-term rule.
func checkTransition(old, next HardState) error {
	const why = "this is a bug in the caller: saving it could let this node vote twice in one term"
	switch {
	case next.Term < old.Term:
		return fmt.Errorf("refusing to save term %d: the stored term is already %d and terms never go back (%s)",
			next.Term, old.Term, why)
	case next.Term == old.Term && old.Vote != "" && next.Vote != old.Vote:
		if next.Vote == "" {
			return fmt.Errorf("refusing to forget the vote for %q in term %d (%s)", old.Vote, old.Term, why)
		}
		return fmt.Errorf("refusing to change the vote in term %d from %q to %q: a node votes at most once per term (%s)",
			old.Term, old.Vote, next.Vote, why)
	}
	return nil
}

// write publishes hs atomically: readers (a restarting clustd) see either
// the old file or the new one, never a mix. With a spare file ready it
// needs no new descriptor: the spare is written, linked in as state.tmp and
// renamed over the state file, all relative to the open directory. Without
// one (a file system without O_TMPFILE) it creates state.tmp by name.
func (s *Store) write(hs HardState) error {
	dirfd := int(s.dirf.Fd())
	f := s.spare
	s.spare = nil
	named := f == nil
	if named {
		var err error
		if f, err = s.openTmp(); err != nil {
			return err
		}
	}
	data := format(hs)
	_, err := f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil && !named {
		err = linkTmp(f, dirfd)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameat(dirfd, tmpName, stateName)
	}
	if err != nil {
		_ = unlinkat(dirfd, tmpName)
		return err
	}
	if err := s.dirf.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", s.dir, err)
	}
	s.spare = s.openSpare()
	return nil
}

// openSpare creates the unnamed file the next Save writes, or returns nil
// if it cannot (that Save then creates state.tmp by name).
func (s *Store) openSpare() *os.File {
	fd, err := s.openat(".", unix.O_TMPFILE|unix.O_RDWR)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.dir, "(unnamed)"))
}

// linkTmp gives the unnamed file f the name state.tmp, through /proc so
// that no new descriptor (nor privilege, as AT_EMPTY_PATH would need) is
// required.
func linkTmp(f *os.File, dirfd int) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	for range 2 {
		err := unix.Linkat(unix.AT_FDCWD, src, dirfd, tmpName, unix.AT_SYMLINK_FOLLOW)
		if err == unix.EEXIST {
			// A name left by a failed save: it was never published.
			_ = unlinkat(dirfd, tmpName)
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "link", Old: src, New: tmpName, Err: err}
		}
		return nil
	}
	return &os.LinkError{Op: "link", Old: src, New: tmpName, Err: unix.EEXIST}
}

// openTmp creates an empty state.tmp in the data directory.
func (s *Store) openTmp() (*os.File, error) {
	fd, err := s.openat(tmpName, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(s.dir, tmpName), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.dir, tmpName)), nil
}

// openat opens name relative to the data directory. If the process is out
// of descriptors it gives up the reserve one to make room, and takes a new
// reserve afterwards when it can.
func (s *Store) openat(name string, flags int) (int, error) {
	dirfd := int(s.dirf.Fd())
	open := func() (int, error) {
		for {
			fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, 0o600)
			if err != unix.EINTR {
				return fd, err
			}
		}
	}
	fd, err := open()
	if (err == unix.EMFILE || err == unix.ENFILE) && s.reserve >= 0 {
		unix.Close(s.reserve)
		s.reserve = -1
		fd, err = open()
	}
	if s.reserve < 0 && err == nil {
		if r, derr := unix.FcntlInt(uintptr(dirfd), unix.F_DUPFD_CLOEXEC, 0); derr == nil {
			s.reserve = r
		}
	}
	return fd, err
}

func renameat(dirfd int, from, to string) error {
	for {
		err := syscall.Renameat(dirfd, from, dirfd, to)
		if err != syscall.EINTR {
			if err != nil {
				return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
			}
			return nil
		}
	}
}

func unlinkat(dirfd int, name string) error {
	return unix.Unlinkat(dirfd, name, 0)
}

// Close releases the data directory's lock. Further calls to Save fail.
// Closing an already closed store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.release()
}

// release closes the files an open store holds, unlocking the directory.
func (s *Store) release() error {
	var err error
	if s.spare != nil {
		s.spare.Close()
		s.spare = nil
	}
	if s.reserve >= 0 {
		unix.Close(s.reserve)
		s.reserve = -1
	}
	if s.dirf != nil {
		err = s.dirf.Close()
	}
	// Unlocking explicitly, not just closing, releases the lock even if the
	// descriptor was somehow duplicated into another process.
	if uerr := flock(s.lock, syscall.LOCK_UN); err == nil {
		err = uerr
	}
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirDurable creates dir and any missing parents, and syncs the parent of
// each directory it created: otherwise a crash could lose the new directory,
// and with it every state saved inside.
func mkdirDurable(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("creating data directory %s: %w", dir, err)
		}
	}
	return nil
}

// syncDir fsyncs the directory dir.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockDir takes the exclusive lock on dir's lock file without waiting: a
// second daemon on the same directory could overwrite this one's votes, so it
// must fail at once rather than queue behind the first.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file of data directory %s: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another clustd process%s, which holds the lock on %s; "+
				"two daemons must never share a data directory: give each its own", dir, holder(path), path)
		}
		return nil, fmt.Errorf("locking data directory %s (%s): %w", dir, path, err)
	}
	// Recording the holder lets the next process that finds the lock taken
	// name it. It is only a hint, so failures are ignored.
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// holder returns " (pid N)" naming the process recorded in the lock file at
// path, or "" if none is recorded.
func holder(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// flock applies the flock operation how to f, retrying when a signal
// interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
