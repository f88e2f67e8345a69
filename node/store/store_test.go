package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// open opens dir and closes the store when the test ends.
func open(t *testing.T, dir string) (*Store, HardState) {
	t.Helper()
	s, hs, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, hs
}

func TestOpenFresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	_, hs := open(t, dir)
	if hs != (HardState{}) {
		t.Fatalf("fresh Open returned %+v, want the zero HardState", hs)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode = %v, want 0700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, stateName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a fresh directory created a state file (stat: %v)", err)
	}
}

func TestOpenEmptyDir(t *testing.T) {
	if _, _, err := Open(""); err == nil {
		t.Fatal(`Open("") succeeded`)
	}
}

func TestSaveOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	steps := []HardState{
		{Term: 1},
		{Term: 1, Vote: "b"},
		{Term: 1, Vote: "b"}, // repeating the stored state is allowed
		{Term: 5, Vote: "node-3.example_A"},
		{Term: 6},
		{Term: 1<<64 - 1, Vote: strings.Repeat("z", 64)},
	}
	for _, hs := range steps {
		if err := s.Save(hs); err != nil {
			t.Fatalf("Save(%+v): %v", hs, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, stateName))
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(format(hs)) {
			t.Fatalf("after Save(%+v) the state file holds %q, want %q", hs, data, format(hs))
		}
		if _, err := os.Stat(filepath.Join(dir, tmpName)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Save(%+v) left %s behind (stat: %v)", hs, tmpName, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Save(HardState{Term: 1<<64 - 1, Vote: strings.Repeat("z", 64)}); err == nil {
		t.Error("Save after Close succeeded")
	}

	_, hs := open(t, dir)
	if want := steps[len(steps)-1]; hs != want {
		t.Fatalf("reopen returned %+v, want %+v", hs, want)
	}
}

func TestSaveRejectsUnsafeTransitions(t *testing.T) {
	tests := []struct {
		name       string
		next       HardState
		reason     string
		doubleVote bool // the error must warn of a double vote
	}{
		{"term goes back", HardState{Term: 6}, "terms never go back", true},
		{"term goes back with a vote", HardState{Term: 6, Vote: "b"}, "terms never go back", true},
		{"vote changes within the term", HardState{Term: 7, Vote: "c"}, `from "b" to "c"`, true},
		{"vote forgotten within the term", HardState{Term: 7}, `forget the vote for "b"`, true},
		{"invalid vote id", HardState{Term: 8, Vote: "b c"}, "not a valid node id", false},
		{"vote id too long", HardState{Term: 8, Vote: strings.Repeat("x", 65)}, "not a valid node id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir)
			stored := HardState{Term: 7, Vote: "b"}
			if err := s.Save(stored); err != nil {
				t.Fatal(err)
			}
			err := s.Save(tt.next)
			if err == nil {
				t.Fatalf("Save(%+v) after Save(%+v) succeeded", tt.next, stored)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q lacks %q", err, tt.reason)
			}
			if tt.doubleVote && !strings.Contains(err.Error(), "vote twice in one term") {
				t.Errorf("error %q does not say it could lead to a double vote", err)
			}
			s.Close()
			if _, hs := open(t, dir); hs != stored {
				t.Fatalf("after the refused Save the stored state is %+v, want %+v", hs, stored)
			}
		})
	}
}

func TestSaveAllowsSafeTransitions(t *testing.T) {
	s, _ := open(t, t.TempDir())
	for _, hs := range []HardState{
		{Term: 3},            // a new term without a vote
		{Term: 3, Vote: "a"}, // the first vote in the term
		{Term: 4, Vote: "b"}, // a new term with a vote at once
		{Term: 9},            // a new term forgets the old vote
	} {
		if err := s.Save(hs); err != nil {
			t.Fatalf("Save(%+v): %v", hs, err)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	s2, _, err := Open(dir)
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of a locked data directory succeeded")
	}
	for _, want := range []string{dir, "in use by another clustd process", filepath.Join(dir, lockName)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close releases the lock.
	open(t, dir)
}

func TestOpenFailureReleasesLock(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateName), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		// Were the lock kept, the second attempt would fail with a lock
		// error instead of the corruption.
		_, _, err := Open(dir)
		checkCorrupt(t, err, filepath.Join(dir, stateName), "not a clustd state file")
	}
}

func TestOpenCorrupt(t *testing.T) {
	good := string(format(HardState{Term: 7, Vote: "b"}))
	tests := []struct {
		name   string
		setup  func(t *testing.T, path string)
		reason string
	}{
		{"empty", func(t *testing.T, path string) { write(t, path, "") }, "is empty"},
		{"truncated", func(t *testing.T, path string) { write(t, path, good[:20]) }, "truncated"},
		{"bad checksum", func(t *testing.T, path string) {
			write(t, path, strings.Replace(good, "term=7", "term=9", 1))
		}, "bad checksum"},
		{"unknown version", func(t *testing.T, path string) {
			write(t, path, strings.Replace(good, "v1", "v9", 1))
		}, "unknown format version"},
		{"unreadable (a directory)", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "cannot be read"},
		{"dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "missing"), path); err != nil {
				t.Fatal(err)
			}
		}, "cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, stateName)
			tt.setup(t, path)
			s, hs, err := Open(dir)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded with %+v", hs)
			}
			checkCorrupt(t, err, path, tt.reason)
			// A file that cannot be read may be intact; the advice must not
			// jump straight to removing it.
			if tt.reason == "cannot be read" && !strings.Contains(err.Error(), "permissions") {
				t.Errorf("error for an unreadable file does not suggest fixing what keeps it from being read:\n%s", err)
			}
		})
	}
}

func TestOpenRemovesStaleTmp(t *testing.T) {
	for _, withState := range []bool{false, true} {
		dir := t.TempDir()
		want := HardState{}
		if withState {
			want = HardState{Term: 4, Vote: "c"}
			write(t, filepath.Join(dir, stateName), string(format(want)))
		}
		// What a crash between creating and renaming state.tmp leaves: a
		// partial write of a newer state.
		tmp := filepath.Join(dir, tmpName)
		write(t, tmp, "clustd-state v1 term=5 vo")
		_, hs := open(t, dir)
		if hs != want {
			t.Errorf("with state=%v: Open returned %+v, want %+v", withState, hs, want)
		}
		if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("with state=%v: %s still exists after Open (stat: %v)", withState, tmpName, err)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSave(b *testing.B) {
	s, _, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var term uint64
	for b.Loop() {
		term++
		// A new term each time, so that every Save really writes and syncs.
		if err := s.Save(HardState{Term: term, Vote: "node-1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSaveWithoutFreeDescriptors fills the process's descriptor table, as
// a flood of connections would, and checks that Save still works.
func TestSaveWithoutFreeDescriptors(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot lower the descriptor limit: %v", err)
	}
	var held []int
	release := func() {
		for _, fd := range held {
			syscall.Close(fd)
		}
		held = nil
	}
	defer func() {
		release()
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if err != syscall.EMFILE {
				t.Fatalf("filling the descriptor table: %v", err)
			}
			break
		}
		held = append(held, fd)
	}
	for term := uint64(1); term <= 3; term++ {
		if err := s.Save(HardState{Term: term, Vote: "n1"}); err != nil {
			release()
			t.Fatalf("Save with no free descriptor (term %d): %v", term, err)
		}
	}
	release()
	s.Close()
	_, hs, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Term != 3 || hs.Vote != "n1" {
		t.Fatalf("reopened state %+v, want term 3 vote n1", hs)
	}
}
