package file

import (
	"bufio"
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
}

// Writer appends JSON records to a file, one per line.
type Writer struct {
	cfg Config

	mu      sync.Mutex // guards the fields below, and every use of buf and f
	f       *os.File
	buf     *bufio.Writer
	closed  bool  // Cleanup has run
	err     error // the last write or flush error, for health
	records int64 // records written since Initialize
	bytes   int64

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
	f, err := os.OpenFile(w.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, w.cfg.Mode)
	if err != nil {
		return fmt.Errorf("file %q: cannot open for appending: %w", w.cfg.Path, err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		_ = f.Close()
		return fmt.Errorf("file %q: already initialized", w.cfg.Path)
	}
	w.f, w.buf, w.closed, w.err = f, bufio.NewWriterSize(f, w.cfg.BufferSize), false, nil
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
			_ = w.Flush() // an error is kept for health and returned by the next Write
		case <-stop:
			return
		}
	}
}

// Write appends record, encoded as one line of JSON. It returns once the
// record is in the buffer; see [Writer.Sync] for durability.
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
	if _, err := w.buf.Write(line); err != nil {
		w.err = err
		return fmt.Errorf("file %q: write: %w", w.cfg.Path, err)
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
	if err := w.f.Sync(); err != nil {
		w.err = err
		return fmt.Errorf("file %q: fsync: %w", w.cfg.Path, err)
	}
	return nil
}

func (w *Writer) flushLocked() error {
	if err := w.buf.Flush(); err != nil {
		w.err = err
		return fmt.Errorf("file %q: flush: %w", w.cfg.Path, err)
	}
	return nil
}

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
	if err := w.buf.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush: %w", err))
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
// holds: "path", "open", "buffered_bytes", "records", "bytes" and, after a
// failure, "last_error".
func (w *Writer) HealthCheck(context.Context) lifecycle.Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := map[string]any{
		"path":    w.cfg.Path,
		"open":    w.f != nil,
		"records": w.records,
		"bytes":   w.bytes,
	}
	if w.buf != nil {
		res["buffered_bytes"] = w.buf.Buffered()
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
