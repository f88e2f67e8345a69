//go:build !chaos_unsafe

package node

import "github.com/clustd/clustd/election"

// unsafeCore lists the safety rules removed from the election core. It is
// empty in every real build. Its twin, unsafe_chaos.go, compiled only with
// the chaos_unsafe build tag, removes one rule so that the chaos suite can
// prove that its checkers notice when real processes break the contract.
var unsafeCore election.Unsafe
