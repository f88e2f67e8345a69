package execdriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/clustd/clustd/driverclient"
)

// The command finds its lease in the file CLUSTD_LEASE_FILE names, in a
// directory only the driver's user may enter; renewals replace it, a demote
// takes its deadline away before the command is told to stop, and Close
// removes the directory.
func TestCommandReadsItsLease(t *testing.T) {
	runtime := t.TempDir()
	// The command copies its lease once at start, and again when told to
	// stop, before it exits.
	d, dir, _ := newDriver(t, `cp "$CLUSTD_LEASE_FILE" start.tmp && mv start.tmp start
trap 'cp "$CLUSTD_LEASE_FILE" stop; exit 0' TERM
while :; do sleep 0.01; done`, func(o *Options) { o.RuntimeDir = runtime })

	path := d.LeaseFile()
	if filepath.Dir(filepath.Dir(path)) != runtime {
		t.Fatalf("lease file %s, want it in a directory of its own under %s", path, runtime)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("the lease file's directory has mode %v, want 0700", fi.Mode().Perm())
	}

	// driverclient tells the lease before the promote's Trigger.
	lease := driverclient.Lease{Term: master.Term, Deadline: 50 * time.Second, StopDeadline: 50300 * time.Millisecond}
	d.LeaseChanged(lease)
	if err := d.Trigger(context.Background(), master); err != nil {
		t.Fatal(err)
	}
	startPath := filepath.Join(dir, "start")
	waitFor(t, "the command to copy its lease", func() bool { _, err := os.Stat(startPath); return err == nil })
	if got, err := driverclient.ReadLeaseFile(startPath); err != nil || got != lease {
		t.Fatalf("the command read %+v (%v), want %+v", got, err, lease)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lease file: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}

	renewed := lease
	renewed.Deadline, renewed.StopDeadline = 51*time.Second, 51300*time.Millisecond
	d.LeaseChanged(renewed)
	if got, err := driverclient.ReadLeaseFile(path); err != nil || got != renewed {
		t.Fatalf("after a renewal the file reads %+v (%v), want %+v", got, err, renewed)
	}

	// A demote's lease has no deadline, and the command sees it when it is
	// told to stop.
	demote := driverclient.Lease{Term: standby.Term, StopDeadline: renewed.StopDeadline}
	d.LeaseChanged(demote)
	if err := d.Trigger(context.Background(), standby); err != nil {
		t.Fatal(err)
	}
	if got, err := driverclient.ReadLeaseFile(filepath.Join(dir, "stop")); err != nil || got != demote {
		t.Fatalf("the stopping command read %+v (%v), want %+v", got, err, demote)
	}
	if got, _ := driverclient.ReadLeaseFile(path); got.MayAct(0) {
		t.Errorf("after the demote the lease %+v still lets the command act", got)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the lease directory: %v", err)
	}
}

// A lease directory something else removed is made again, and a lease that
// cannot be written leaves no file behind: the command then holds back.
func TestLeaseFileSurvivesACleanedRuntimeDir(t *testing.T) {
	d, _, _ := newDriver(t, "sleep 60", func(o *Options) { o.RuntimeDir = t.TempDir() })
	path := d.LeaseFile()
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	l := driverclient.Lease{Term: 3, Deadline: 9 * time.Second}
	d.LeaseChanged(l)
	if got, err := driverclient.ReadLeaseFile(path); err != nil || got != l {
		t.Fatalf("after the directory was removed: %+v, %v; want %+v", got, err, l)
	}
	// A directory in the way of the temporary file makes writes fail.
	if err := os.Mkdir(path+".new", 0o700); err != nil {
		t.Fatal(err)
	}
	d.LeaseChanged(driverclient.Lease{Term: 3, Deadline: 10 * time.Second})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lease that could not be written left the old one readable: %v", err)
	}
	if !d.leaseFailing {
		t.Error("the failure was not noted")
	}
	os.Remove(path + ".new")
	d.LeaseChanged(l)
	if d.leaseFailing {
		t.Error("the recovery was not noted")
	}
}

// A lease directory left by a driver that is gone is removed when the next
// driver starts; one of a driver still running is not.
func TestStaleLeaseDirsRemoved(t *testing.T) {
	base := t.TempDir()
	// A process that has exited: its id is free, at least for a while.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(base, fmt.Sprintf("%s%d-123", leaseDirPrefix, dead.Process.Pid))
	live := filepath.Join(base, fmt.Sprintf("%s%d-456", leaseDirPrefix, os.Getpid()))
	other := filepath.Join(base, "clustd-exec-notapid")
	for _, d := range []string{stale, live, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	newDriver(t, "sleep 60", func(o *Options) { o.RuntimeDir = base })
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale lease directory is still there: %v", err)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}
