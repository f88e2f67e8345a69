//go:build chaos_unsafe

package node

import (
	"fmt"
	"os"

	"github.com/clustd/clustd/election"
)

// unsafeCore turns stickiness off: followers grant (pre-)votes while they
// still hear from a live master, so a node cut off from the master alone
// can win an election while the master's lease still holds. The chaos
// suite builds clustd with -tags chaos_unsafe to show that it then reports
// two masters at once; no other build sets this.
//
// The promote delay goes too: a new master's drivers wait out the stop
// budget, by which time the deposed master's drivers, which stop the
// instant their lease ends, are gone. That second line of defence would
// hide the missing first one from the drivers the suite records (the
// simulator checks the lease itself and needs no such help).
var unsafeCore = election.Unsafe{NoStickiness: true, NoStopBudget: true}

func init() {
	// Said on every start, so that a log never hides which build made it.
	fmt.Fprintln(os.Stderr, "clustd: built with -tags chaos_unsafe: stickiness and the stop budget are OFF and two masters can overlap; for the chaos self-test only, never deploy this build")
}
