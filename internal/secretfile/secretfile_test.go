package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("read %q: the final newline should go", b)
	}
	os.Chmod(path, 0o400)
	if _, err := Read(path); err != nil {
		t.Fatalf("mode 0400 refused: %v", err)
	}
}

func TestReadRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602, 0o610} {
		path := filepath.Join(dir, "my secret")
		os.WriteFile(path, []byte("x"), 0o600)
		os.Chmod(path, mode)
		_, err := Read(path)
		if !errors.Is(err, ErrTooOpen) {
			t.Fatalf("mode %04o: %v, want ErrTooOpen", mode, err)
		}
		for _, want := range []string{path + ":", "chmod 600 '" + path + "'"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q lacks %q", mode, err, want)
			}
		}
	}
}

func TestReadRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: changing a file's owner needs root")
	}
	path := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(path, []byte("x"), 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skipf("SKIPPED: chown: %v", err)
	}
	_, err := Read(path)
	if !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "chown 0 "+path) {
		t.Fatalf("file of uid 65534: %v", err)
	}
}

func TestReadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing: no such file") {
		t.Fatalf("missing file: %v", err)
	}
}
