// Package repocheck holds the tests of the repository as a whole, the rules
// no single package can check for itself: who may import whom
// (docs/packages.md), that every package says what it is, that no
// comment or document cites a file the repository does not have, and that
// no function outside tests is longer than 80 lines.
//
// It has no code of its own; `go test ./internal/repocheck` runs the
// checks, and `make test` runs them with everything else.
package repocheck
