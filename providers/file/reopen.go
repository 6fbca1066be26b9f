package file

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// followLocked makes the open file the one Path names again, when someone
// else moved or deleted it (logrotate without copytruncate, an operator's
// rm), replaced it, or replaced its directory: what the writer wrote to the
// old file stays there, and what it writes from now on goes to a new file
// at Path. Every flush calls it first, so records go to a file Path no
// longer names for at most one flush interval.
//
// While the file ends inside a record (a short write) it does not look:
// the rest of that record goes first to the file that holds its start.
func (w *Writer) followLocked() error {
	if !w.moved && !w.torn {
		why := w.movedAway()
		if why == "" {
			return nil
		}
		w.moved, w.movedWhy = true, why
	}
	if !w.moved {
		return nil
	}
	return w.reopenLocked()
}

// movedAway says why Path no longer names the open file, or "" if it
// does, or if that cannot be told: a Path that cannot be looked at for
// another reason (permissions) may still be the open file, which is kept.
func (w *Writer) movedAway() string {
	at, err := os.Stat(w.cfg.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "the file was moved or deleted"
	case errors.Is(err, syscall.ENOTDIR):
		return "the file's directory was replaced"
	case err != nil:
		return ""
	}
	own, err := w.f.Stat()
	if err != nil || os.SameFile(at, own) {
		return ""
	}
	return "another file is at the path"
}

// reopenLocked opens Path, creating it if needed, as the file to write to,
// then fsyncs and closes the one that was open, which keeps what was
// written to it. If Path cannot be opened (its directory is gone), that is
// a failure, kept for health and tried again by the next flush; the old
// file stays open meanwhile, but nothing more is written to it.
func (w *Writer) reopenLocked() error {
	f, err := os.OpenFile(w.cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, w.cfg.Mode)
	if err != nil {
		w.failed(err)
		return fmt.Errorf("file %q: open a new file: %w", w.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		w.failed(err)
		return fmt.Errorf("file %q: open a new file: %w", w.cfg.Path, err)
	}
	old, why := w.f, w.movedWhy
	w.f, w.size, w.moved, w.movedWhy = f, st.Size(), false, ""
	if why != "" {
		w.reopened++
		if w.cfg.OnReopen != nil {
			w.cfg.OnReopen(w.cfg.Path, why)
		}
	}
	// The old file's own errors are a failure (what was written to it may
	// be lost) but do not stop the writing to the new one, whose first
	// success ends it.
	if err := errors.Join(old.Sync(), old.Close()); err != nil {
		w.failed(fmt.Errorf("close the file that was at the path: %w", err))
	}
	return nil
}
