package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Defaults, chosen for an audit log written a few times a second.
const (
	// DefaultBufferSize holds a few hundred records of a few hundred bytes.
	DefaultBufferSize = 64 << 10
	// DefaultFlushInterval bounds what a crash can lose without making a
	// system call per record.
	DefaultFlushInterval = time.Second
	// DefaultMaxFiles is how many rotated files are kept when the file
	// rotates (Config.MaxBytes) and Config.MaxFiles is zero.
	DefaultMaxFiles = 5
	// DefaultMode lets the service's group read the log, and no one else.
	DefaultMode os.FileMode = 0o640
)

// ErrClosed is returned by writes after Cleanup, and before Initialize.
var ErrClosed = errors.New("file writer is closed")

// Config describes one file.
type Config struct {
	// ID names the provider; "file" if empty.
	ID string
	// Path is the file to append to. Its directory must exist.
	Path string
	// BufferSize is the write buffer's size; DefaultBufferSize if zero.
	BufferSize int
	// FlushInterval is how often the buffer is written to the file;
	// DefaultFlushInterval if zero, never (only Sync and Cleanup) if
	// negative.
	FlushInterval time.Duration
	// Mode is the new file's permission bits; DefaultMode if zero.
	Mode os.FileMode
	// OnRepair, if set, is told how many bytes Initialize dropped from the
	// end of the file: a record a crash cut short. It is for logging.
	OnRepair func(path string, dropped int64)
	// OnFailure, if set, is told the error when writing begins to fail,
	// and OnRecovery when a write succeeds again: once each per failure,
	// not once per failed write. They are for logging, and are called with
	// the writer's lock held: they must not call the writer.
	OnFailure  func(path string, err error)
	OnRecovery func(path string)
	// OnReopen, if set, is told when the writer found that Path no longer
	// names the file it had open (moved, deleted or replaced by someone
	// else) and has opened a new file there, and why. Once per new file;
	// it is for logging, and is called with the writer's lock held.
	OnReopen func(path, why string)
	// MaxBytes, if positive, rotates the file before a write would grow it
	// past MaxBytes: the file is fsynced, closed and renamed Path.1 (Path.1
	// becomes Path.2, and so on), and a new file is begun. Records are never
	// split between files; a record larger than MaxBytes fills a file of
	// its own. Zero never rotates.
	MaxBytes int64
	// MaxFiles is how many rotated files are kept, Path.1 the newest; the
	// one rotated past it is removed. DefaultMaxFiles if zero.
	MaxFiles int
}

// Writer appends JSON records to a file, one per line.
type Writer struct {
	cfg Config

	mu sync.Mutex // guards the fields below, and every use of f
	f  *os.File
	// buf holds whole records not yet written to the file. It is written
	// as one piece, so the file never ends inside a record because of a
	// flush: bufio.Writer, which flushed whenever it was full, did.
	buf      []byte
	repaired int64 // bytes of a torn last record that Initialize dropped
	closed   bool  // Cleanup has run
	err      error // the last write, flush or fsync error, until one succeeds again; for health
	records  int64 // records written since Initialize
	bytes    int64
	size     int64 // the open file's size, for rotation
	torn     bool  // the last write was short: the file ends inside a record
	rotated  int64 // rotations since Initialize
	// moved: the open file is no longer at Path (a rotation renamed it
	// Path.1, or someone else moved or deleted it) and a new file could not
	// be opened there yet. Writing waits, buffered, and the next flush only
	// opens the new file: shifting the rotated files again would push one
	// more of them out for nothing.
	moved    bool
	movedWhy string // why, if someone else moved it; "" after a rotation
	reopened int64  // new files opened since Initialize because of that

	stop chan struct{} // closed by Cleanup to stop the flusher
	done chan struct{} // closed when the flusher has returned
}

var (
	_ lifecycle.Initializer   = (*Writer)(nil)
	_ lifecycle.Cleaner       = (*Writer)(nil)
	_ lifecycle.HealthChecker = (*Writer)(nil)
)

// New checks cfg and returns a writer that holds nothing until Initialize.
func New(cfg Config) (*Writer, error) {
	if cfg.Path == "" {
		return nil, errors.New("file: Config.Path is empty")
	}
	if cfg.BufferSize < 0 {
		return nil, fmt.Errorf("file: Config.BufferSize is negative (%d)", cfg.BufferSize)
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("file: Config.MaxBytes is negative (%d)", cfg.MaxBytes)
	}
	if cfg.MaxFiles < 0 {
		return nil, fmt.Errorf("file: Config.MaxFiles is negative (%d)", cfg.MaxFiles)
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if cfg.ID == "" {
		cfg.ID = "file"
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Mode == 0 {
		cfg.Mode = DefaultMode
	}
	cfg.Path = filepath.Clean(cfg.Path)
	return &Writer{cfg: cfg, closed: true}, nil
}

// ID returns the provider's id.
func (w *Writer) ID() string { return w.cfg.ID }

// Path returns the file's path.
func (w *Writer) Path() string { return w.cfg.Path }

// Initialize opens the file for appending, creating it if needed, and
// starts the periodic flush. A missing or unwritable directory fails with
// an error that names it.
//
// A file that a crash left ending inside a record (a process killed during
// a write, or a disk full) is repaired first: it is truncated to its last
// newline, so the next record starts a line of its own. The bytes dropped
// are reported to Config.OnRepair and in the health resources.
func (w *Writer) Initialize(context.Context) error {
	dir := filepath.Dir(w.cfg.Path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("file %q: directory %q does not exist", w.cfg.Path, dir)
	case err != nil:
		return fmt.Errorf("file %q: %w", w.cfg.Path, err)
	case !st.IsDir():
		return fmt.Errorf("file %q: %q is not a directory", w.cfg.Path, dir)
	}
	f, err := os.OpenFile(w.cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, w.cfg.Mode)
	if err != nil {
		return fmt.Errorf("file %q: cannot open for appending: %w", w.cfg.Path, err)
	}
	dropped, err := repairTail(f)
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("file %q: repair a torn last record: %w", w.cfg.Path, err)
	}
	if dropped > 0 && w.cfg.OnRepair != nil {
		w.cfg.OnRepair(w.cfg.Path, dropped)
	}
	st, err = f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("file %q: %w", w.cfg.Path, err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		_ = f.Close()
		return fmt.Errorf("file %q: already initialized", w.cfg.Path)
	}
	w.f, w.buf, w.closed, w.err, w.repaired = f, make([]byte, 0, w.cfg.BufferSize), false, nil, dropped
	w.size, w.torn, w.moved, w.movedWhy, w.reopened = st.Size(), false, false, "", 0
	if w.cfg.FlushInterval > 0 {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.flushEvery(w.cfg.FlushInterval, w.stop, w.done)
	}
	return nil
}

func (w *Writer) flushEvery(d time.Duration, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// An error is kept for health; what was not written stays
			// buffered, and this retries it until it goes through.
			_ = w.Flush()
		case <-stop:
			return
		}
	}
}

// Write appends record, encoded as one line of JSON. It returns once the
// record is in the buffer; see [Writer.Sync] for durability. A record it
// returns nil for is written, whole, by a later flush if not by this one:
// after a failed write it stays buffered and is retried. It returns an
// error, and the record is not written at all, only when the buffer is
// full and cannot be flushed.
func (w *Writer) Write(record any) error {
	line, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("file %q: encode record: %w", w.cfg.Path, err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("file %q: %w", w.cfg.Path, ErrClosed)
	}
	size := w.cfg.BufferSize
	if len(w.buf)+len(line) > size && len(w.buf) > 0 {
		// A flush that fails keeps what it did not write: if the record
		// still does not fit, it is refused, and so never written.
		if err := w.flushLocked(); err != nil && len(w.buf)+len(line) > size {
			return err
		}
	}
	if len(line) > size && len(w.buf) == 0 { // larger than the buffer: one write of its own
		w.buf = line
		// What a failed write did not take stays buffered, to be retried
		// like any buffered record (the error is kept for health): the
		// record is accepted, and the file may already hold its start.
		_ = w.flushLocked()
		if len(w.buf) == 0 {
			w.buf = make([]byte, 0, size) // not line's array, which may be large
		}
	} else {
		w.buf = append(w.buf, line...)
	}
	w.records++
	w.bytes += int64(len(line))
	return nil
}

// Flush writes the buffer to the file (not necessarily to the disk).
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("file %q: %w", w.cfg.Path, ErrClosed)
	}
	return w.flushLocked()
}

// Sync writes the buffer to the file and the file to the disk: every
// record written so far survives a crash once it returns.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("file %q: %w", w.cfg.Path, ErrClosed)
	}
	if err := w.flushLocked(); err != nil {
		return err
	}
	return w.syncLocked()
}

// syncLocked fsyncs the file; one that succeeds ends a failure.
func (w *Writer) syncLocked() error {
	if err := w.f.Sync(); err != nil {
		w.failed(err)
		return fmt.Errorf("file %q: fsync: %w", w.cfg.Path, err)
	}
	w.recovered()
	return nil
}

// failed keeps err for health, telling Config.OnFailure if writing was
// not failing already.
func (w *Writer) failed(err error) {
	if w.err == nil && w.cfg.OnFailure != nil {
		w.cfg.OnFailure(w.cfg.Path, err)
	}
	w.err = err
}

// recovered clears the error kept for health, telling Config.OnRecovery
// if there was one: a write or fsync has just succeeded.
func (w *Writer) recovered() {
	if w.err != nil && w.cfg.OnRecovery != nil {
		w.cfg.OnRecovery(w.cfg.Path)
	}
	w.err = nil
}

// flushLocked writes the buffered records, in one write unless the file
// rotates among them. What a failed write did not take stays buffered, to
// be written by the next flush into the same file, so that a record is
// completed rather than cut. Once everything buffered is written, a
// failure is over: health is clear again. With nothing buffered while
// failing (the failure was an fsync's), an fsync tells. First it makes sure
// it writes to the file at Path (see followLocked).
func (w *Writer) flushLocked() error {
	if err := w.followLocked(); err != nil {
		return err
	}
	if len(w.buf) == 0 && w.err != nil {
		return w.syncLocked()
	}
	wrote := len(w.buf) > 0
	completing := false // the chunk before was the rest of a torn record
	for len(w.buf) > 0 {
		if completing && !w.torn {
			// followLocked waited for the record to be whole.
			if err := w.followLocked(); err != nil {
				return err
			}
		}
		chunk := w.buf
		completing = w.torn
		if w.torn {
			// First the rest of the record the file ends inside.
			if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
				chunk = chunk[:i+1]
			}
		} else if w.cfg.MaxBytes > 0 && w.size+int64(len(chunk)) > w.cfg.MaxBytes {
			// The whole records that fit; if none does, a new file, unless
			// this one is empty: then one record, too large for any file.
			room := max(w.cfg.MaxBytes-w.size, 0)
			cut := bytes.LastIndexByte(chunk[:min(room, int64(len(chunk)))], '\n') + 1
			if cut == 0 {
				if w.size > 0 {
					if err := w.rotateLocked(); err != nil {
						return err
					}
					continue
				}
				cut = bytes.IndexByte(chunk, '\n') + 1
			}
			chunk = chunk[:cut]
		}
		n, err := w.f.Write(chunk)
		w.size += int64(n)
		if n > 0 {
			w.torn = chunk[n-1] != '\n'
		}
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		if err != nil {
			w.failed(err)
			return fmt.Errorf("file %q: flush: %w", w.cfg.Path, err)
		}
	}
	if wrote {
		w.recovered()
	}
	return nil
}

// rotateLocked fsyncs the file, shifts the rotated files up by one
// (removing the one shifted past MaxFiles), renames the file Path.1, opens
// a new one and only then closes the old one: whatever fails, the writer
// keeps an open file, and what it could not write stays buffered for the
// next flush, which tries the rotation again. A rotation that failed part
// way does not push history out when it is tried again (see shift and
// Writer.moved). If Path no longer names the open file (someone else moved
// or deleted it), there is nothing to rename: it only opens the new file.
func (w *Writer) rotateLocked() error {
	if err := w.f.Sync(); err != nil {
		w.failed(err)
		return fmt.Errorf("file %q: rotate: fsync: %w", w.cfg.Path, err)
	}
	if !w.moved {
		if why := w.movedAway(); why != "" {
			w.moved, w.movedWhy = true, why
		} else {
			if err := w.shift(); err != nil {
				w.failed(err)
				return fmt.Errorf("file %q: rotate: %w", w.cfg.Path, err)
			}
			w.moved = true
			w.rotated++
		}
	}
	return w.reopenLocked()
}

// shift renames Path.(k-1) to Path.k, and so on down to Path to Path.1,
// where k is the first number free: a rotation that failed part way left a
// gap, which is filled, rather than the oldest file being pushed out once
// more. With none free up to MaxFiles, Path.MaxFiles is removed first. A
// Path gone meanwhile (moved or deleted by someone else) is not an error:
// there is nothing to rename, and the new file is opened all the same.
func (w *Writer) shift() error {
	free := w.cfg.MaxFiles
	for i := 1; i < w.cfg.MaxFiles; i++ {
		_, err := os.Lstat(w.rotatedName(i))
		if errors.Is(err, os.ErrNotExist) {
			free = i
			break
		}
		if err != nil {
			return err
		}
	}
	if free == w.cfg.MaxFiles {
		if err := os.Remove(w.rotatedName(free)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for i := free - 1; i >= 1; i-- {
		if err := os.Rename(w.rotatedName(i), w.rotatedName(i+1)); err != nil {
			return err
		}
	}
	if err := os.Rename(w.cfg.Path, w.rotatedName(1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (w *Writer) rotatedName(i int) string { return fmt.Sprintf("%s.%d", w.cfg.Path, i) }

// Cleanup stops the periodic flush, then flushes, fsyncs and closes the
// file. It is idempotent, and safe after a failed Initialize. It returns
// the first error of the three steps, but takes every step: a failed flush
// does not keep the file open.
func (w *Writer) Cleanup(context.Context) error {
	w.mu.Lock()
	stop, done := w.stop, w.done
	w.stop, w.done = nil, nil
	w.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done // the flusher returns at once: it holds w.mu only to flush
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		w.closed = true
		return nil
	}
	var errs []error
	if err := w.flushLocked(); err != nil {
		errs = append(errs, err)
	}
	if err := w.f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("fsync: %w", err))
	}
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	w.f, w.buf, w.closed = nil, nil, true
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("file %q: %w", w.cfg.Path, err)
	}
	return nil
}

// HealthCheck reports whether the file is open and writable, with what it
// holds: "path", "open", "buffered_bytes", "records", "bytes", after a
// failure "last_error", after a repair on open "repaired_bytes", and once
// the file was moved away and a new one opened, "reopened".
func (w *Writer) HealthCheck(context.Context) lifecycle.Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := map[string]any{
		"path":    w.cfg.Path,
		"open":    w.f != nil,
		"records": w.records,
		"bytes":   w.bytes,
	}
	if w.cfg.MaxBytes > 0 {
		res["rotations"] = w.rotated
	}
	if w.f != nil {
		res["buffered_bytes"] = len(w.buf)
	}
	if w.repaired > 0 {
		res["repaired_bytes"] = w.repaired
	}
	if w.reopened > 0 {
		res["reopened"] = w.reopened
	}
	switch {
	case w.f == nil:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "file is not open", Resources: res}
	case w.err != nil:
		res["last_error"] = w.err.Error()
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "writes are failing: " + w.err.Error(), Resources: res}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "open for appending", Resources: res}
}

// repairTail truncates f to its last newline, if it does not end with one,
// and returns how many bytes it dropped. It reads backwards a block at a
// time, so a large file costs a read or two.
func repairTail(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	const block = 64 << 10
	b := make([]byte, block)
	end := size
	for end > 0 {
		start := max(0, end-block)
		n, err := f.ReadAt(b[:end-start], start)
		if err != nil && n < int(end-start) {
			return 0, err
		}
		if end == size && b[n-1] == '\n' {
			return 0, nil // whole
		}
		if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
			keep := start + int64(i) + 1
			return size - keep, f.Truncate(keep)
		}
		end = start
	}
	return size, f.Truncate(0) // not one whole line
}
