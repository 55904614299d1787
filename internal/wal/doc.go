// Package wal is the write-ahead log that makes raft's hard state and entries durable.
//
// # Files
//
// A log is a directory of segment files named
//
//	%016x-%016x.wal    (sequence number, index of the first entry that may be in it)
//
// Sequence numbers are consecutive. A segment is preallocated (64 MiB by
// default) so that appends inside it change no file-size metadata and one
// fdatasync makes them durable. When the next record does not fit, the
// segment is cut: truncated to what it holds, synced, and the next segment is
// made under a temporary name (*.wal.tmp), preallocated, given its header
// records, synced and only then renamed into place, followed by a directory
// sync. A crash therefore never leaves a half-made segment that looks real.
//
// # Records
//
// Every record starts at an offset that is a multiple of 8:
//
//	offset 0  uint32 little-endian  CRC32C (Castagnoli) of bytes 4 .. 8+length
//	offset 4  uint32 little-endian  length: 1 + len(payload), never zero
//	offset 8  byte                  record type
//	offset 9  payload
//	          zero padding up to the next multiple of 8
//
// so the checksum covers the length, the type and the payload. Types:
//
//	1 metadata   the opaque blob given to Create
//	2 entry      a raftpb.Entry (gogo marshaled)
//	3 state      a raftpb.HardState
//	4 snapshot   a snapshot marker: index and term, uint64 little-endian each
//
// Each segment begins with a metadata record, the newest hard state and the
// newest snapshot marker, so that any suffix of segments (which is what
// ReleaseLockTo leaves) describes itself. A header of eight zero bytes ends a
// segment's records; the rest of the segment is zero.
//
// # Reading
//
// ReadAll replays every segment in order. A later entry with index i replaces
// all earlier entries with index >= i, as raft truncates conflicting suffixes.
//
// A record that fails to decode in the last segment is a torn write from a
// crash when the file ends inside it, when its header is all zero (with
// non-zero bytes after it), or when one of the 512-byte sector-aligned chunks
// it covers is entirely zero. ReadAll then drops it and everything after it,
// logs a warning, zeroes the rest of the file so old bytes can never be read
// as records after new appends, syncs, and appends from there.
//
// Any other failure is corruption: ReadAll returns an error wrapping
// ErrCorrupt that names the file and offset, and changes nothing on disk.
//
// # Durability
//
// Save encodes a whole raft Ready (entries, then hard state) into one reused
// buffer, writes it with one call and syncs once: group commit. A failed write
// or sync leaves the file in an unknown state, so the WAL then refuses every
// later append; the process must restart and replay.
//
// A WAL is safe for concurrent use, but appends are serialized.
//
// # Failpoint
//
// Built with the tag failpoints, a WAL on the operating system's file system
// also records after every sync, in SyncedFile next to the segments, how much
// of the last segment that sync made durable, so that a test can cut the
// segment of a killed process back to it and lose exactly what a power
// failure would lose. A normal build has no such code.
package wal
