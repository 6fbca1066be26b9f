// Package file provides a durable, buffered, append-only writer of JSON
// lines, as a lifecycle provider: an audit log, an event journal.
//
// # What it holds
//
// From Initialize to Cleanup, one open file and a write buffer, and a
// goroutine that flushes the buffer every FlushInterval so that a crash
// loses at most that much.
//
// # Durability
//
// A record is in the buffer once [Writer.Write] returns; [Writer.Sync]
// makes everything written so far durable (flushed and fsynced). Cleanup
// flushes, fsyncs and closes: every record whose Write returned is on disk
// after it. Writes after Cleanup fail with [ErrClosed].
//
// # Failures
//
// A write, fsync or rotation that fails (a full disk, a directory gone)
// makes the writer unhealthy and keeps what it did not write in the
// buffer, which the periodic flush retries; a Write that finds the buffer
// full and cannot flush it fails, and its record is never written. The
// first write or fsync that succeeds again makes it healthy again, without
// a new Initialize: every record whose Write returned nil is in the file,
// once, when the fault has passed.
//
// # Rotation
//
// With Config.MaxBytes set, the file rotates by size: before a flush would
// grow it past MaxBytes, it is fsynced and renamed Path.1, older rotated
// files move up by one, the one past Config.MaxFiles is removed, a new
// file is begun and the old one closed. A record is never split between
// two files, so every file kept is whole JSON lines. A rotation that fails
// is tried again by the next flush, without pushing more history out: the
// gap it left is filled first.
//
// # A file moved or deleted under the writer
//
// Every flush (the periodic one, [Writer.Flush], [Writer.Sync], a Write
// that finds the buffer full) and every rotation first checks that Path
// still names the file the writer has open. If it does not (the file was
// moved away, as logrotate does without copytruncate, or deleted, or
// replaced, or its directory was), the old file is fsynced and closed and
// a new one is opened at Path, told to Config.OnReopen; a rotation that
// finds Path missing has nothing to rename, and only opens the new file.
// What is promised: every record whose Write returned nil is written once,
// whole, either to the old file, if it was flushed before the move was
// noticed (at most one flush interval after the move, or with no periodic
// flush, up to the next flush or rotation), or to the new file. Records in
// a deleted file go with it: that is the deleter's doing. A record the
// file ends inside when it is moved (a short write) is completed in the
// old file before the writer follows. If Path cannot be opened (its
// directory is gone), that is a failure like a failed write: the records
// wait in the buffer, nothing more goes to the old file, and the next
// flush tries again; the writer is healthy again once the directory is
// back, even empty.
package file
