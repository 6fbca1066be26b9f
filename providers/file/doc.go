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
// # Rotation
//
// With Config.MaxBytes set, the file rotates by size: before a flush would
// grow it past MaxBytes, it is fsynced, closed and renamed Path.1, older
// rotated files move up by one, the one past Config.MaxFiles is removed,
// and a new file is begun. A record is never split between two files, so
// every file kept is whole JSON lines.
package file
