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
package file
