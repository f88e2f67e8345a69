package netnsutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Run enters the namespace and leaves it: fn sees the namespace's
// identity, the caller's thread keeps its own. RemoveStale deletes a
// namespace whose pid names no process and keeps one whose pid is alive.
func TestRunAndRemoveStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: ip is not installed (apt-get install iproute2)")
	}
	const prefix = "netnsutil-test-"
	live := fmt.Sprintf("%s%d-x", prefix, os.Getpid())
	dead := prefix + "999999999-x" // no such pid
	for _, name := range []string{live, dead} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("SKIP: ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := Run(live, func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == self {
		t.Fatalf("fn ran in the caller's namespace %s", self)
	}
	if err := Run(prefix+"none", func() error { return nil }); err == nil {
		t.Error("Run into a namespace that does not exist reported no error")
	}

	RemoveStale(prefix)
	if _, err := os.Stat("/run/netns/" + dead); !os.IsNotExist(err) {
		t.Errorf("the namespace of a dead pid is still there: %v", err)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("the namespace of this live process was removed: %v", err)
	}
}
