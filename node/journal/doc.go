// Package journal keeps a node's record of what happened: role changes,
// elections, members lost and back, drivers coming, going and changing
// health, maintenance, transfers, reloads, demote overruns, and the
// cluster's failover records. It is what answers, the day after, "when did
// the master move, from where to where, why, and for how long was nobody
// master?".
//
// # Storage
//
// The journal is a directory of segment files, each a short header followed
// by records:
//
//	segment: "clustd-journal\x00\x01" (16 bytes)
//	record:  length (4 bytes, big endian) | CRC-32C of the payload (4 bytes) | payload (JSON)
//
// Segment files are named after the sequence number of their first record.
// When the active segment is full a new one is started, and the oldest
// segments are deleted while the directory would exceed its size bound:
// the bound holds exactly, at the price of losing the oldest events a
// segment at a time.
//
// A checksummed segment file rather than a key-value store such as bbolt,
// because the journal is only ever appended to and read in order: an
// append is one write(2) at the end of a file, the size bound is enforced by
// deleting a file (a B+tree file does not shrink when keys are deleted; its
// free pages are reused, so bounding its size means bounding the keys and
// trusting the page allocator), and recovery is a forward scan. It also
// needs no new dependency.
//
// # Crashes
//
// Each record is written with one write(2), so a process killed outright
// (kill -9) leaves at most one incomplete record, at the end of the last
// segment. Open scans every segment and stops at the first record that is
// short or fails its checksum; in the last segment it truncates the file
// there, so that later records are not written after garbage. The rest of
// the journal is kept: a torn last record is dropped, never the file. The
// writer calls fsync after each batch, so a machine that loses power keeps
// all but the last moments too.
//
// # Not blocking the daemon
//
// Record never blocks: it queues the event for a writer goroutine and, when
// the queue is full, drops it and counts the drop. The daemon calls it with
// its lock held, on the path of a failover.
package journal
