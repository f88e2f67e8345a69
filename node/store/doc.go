// Package store keeps a node's election hard state — the current term and the
// id of the node it voted for in that term — in its data directory.
//
// The hard state is what makes a vote binding. A node that forgot it could
// grant a second vote in a term it already voted in, and two masters could be
// elected in the same term. So the store writes the state atomically and
// durably (temporary file, fsync, rename, fsync of the directory) before
// returning, and it refuses to start from a state file it cannot trust: a
// damaged file stops start-up with a [CorruptError] that says how to recover,
// and it is never reset silently.
//
// The state lives in a single line of text, so that an operator can read it:
//
//	clustd-state v1 term=7 vote=b crc32c=1a2b3c4d
//
// The vote is empty when the node has not voted in the term. The checksum is
// the CRC-32C (Castagnoli) of everything before " crc32c=", in eight lowercase
// hexadecimal digits, and the line ends with a single newline. Parsing is
// strict: any other byte sequence is rejected, so every valid state has
// exactly one encoding.
//
// An exclusive advisory lock (flock) on the file "lock" in the data directory
// keeps two clustd processes from sharing one directory, which would let them
// overwrite each other's votes.
package store
