package file_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
)

// seqsIn reads the records of every file the writer keeps, oldest first.
func seqsIn(t *testing.T, path string, maxFiles int) []int {
	t.Helper()
	var seqs []int
	for i := maxFiles; i >= 0; i-- {
		name := path
		if i > 0 {
			name = path + "." + string(rune('0'+i))
		}
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
			continue
		}
		for _, r := range readRecords(t, name) { // whole records, or this fails
			seqs = append(seqs, r.Seq)
		}
	}
	return seqs
}

// A rotation that fails because the directory is gone (replaced by a
// file, which stops root too) leaves the writer unhealthy, with what it
// could not write buffered; once the directory is back, the next flush
// rotates, writes every record whose Write returned nil, once, and the
// writer is healthy again without a new Initialize. The failure and the
// recovery are told once each.
func TestARotationThatFailedRecoversWhenTheDirectoryIsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	path := filepath.Join(dir, "audit.jsonl")
	var failures, recoveries atomic.Int32
	w, err := file.New(file.Config{Path: path, BufferSize: 160, FlushInterval: -1, MaxBytes: 200, MaxFiles: 3,
		OnFailure:  func(string, error) { failures.Add(1) },
		OnRecovery: func(string) { recoveries.Add(1) }})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())

	seq := 0
	var acked, refused []int
	write := func() error {
		err := w.Write(record{Seq: seq, Note: "abcdefgh"})
		if err == nil {
			acked = append(acked, seq)
		} else {
			refused = append(refused, seq)
		}
		seq++
		return err
	}
	for range 20 { // history: three rotated files and the current one
		require.NoError(t, write())
		require.NoError(t, w.Flush())
	}
	require.FileExists(t, path+".3")

	away := dir + ".away"
	require.NoError(t, os.Rename(dir, away))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o644))
	var flushErr error
	for range 20 { // until a flush needs a rotation, and the buffer fills
		_ = write()
		if err := w.Flush(); err != nil {
			flushErr = err
		}
	}
	require.Error(t, flushErr, "a rotation with the directory gone")
	assert.Contains(t, flushErr.Error(), path)
	require.NotEmpty(t, refused, "a full buffer that cannot be flushed refuses records")
	h := w.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusUnhealthy, h.Status, h.Message)
	assert.Equal(t, int32(1), failures.Load(), "the failure is told once, not once per failed flush")

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Rename(away, dir))
	require.NoError(t, w.Flush(), "the directory is back")
	h = w.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	assert.Equal(t, int32(1), recoveries.Load())
	require.NoError(t, write())
	require.NoError(t, w.Cleanup(context.Background()))

	kept := seqsIn(t, path, 3)
	last := acked[len(acked)-1]
	for _, s := range acked {
		if s > last-10 { // the newest, which rotation keeps
			assert.Equal(t, 1, count(kept, s), "record %d, acknowledged, is kept once", s)
		}
	}
	for _, s := range refused {
		assert.Zero(t, count(kept, s), "record %d was refused, and is not written", s)
	}
	assert.True(t, slices.IsSorted(kept), "in order: %v", kept)
}

func count(seqs []int, s int) int {
	n := 0
	for _, x := range seqs {
		if x == s {
			n++
		}
	}
	return n
}

// A rotation that failed part way left a gap among the rotated files (here
// Path.1 is missing, Path.2 holds history): the next rotation fills it
// rather than pushing Path.2, the oldest history, out.
func TestRotationFillsTheGapAFailureLeft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	require.NoError(t, os.WriteFile(path+".2", []byte(`{"seq":1}`+"\n"), 0o640))
	require.NoError(t, os.WriteFile(path, []byte(`{"seq":2}`+"\n"), 0o640))
	w, err := file.New(file.Config{Path: path, FlushInterval: -1, MaxBytes: 15, MaxFiles: 2})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	require.NoError(t, w.Write(record{Seq: 3}))
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, []int{1, 2, 3}, seqsIn(t, path, 2), "no history pushed out")
}

// A full disk (a small tmpfs, which stops root too) fails the writes, and
// the writer is unhealthy; once space is freed, the next flush completes
// the records, whole and once each, and the writer is healthy again. It
// needs to mount a tmpfs, which only root can do.
func TestAFullDiskRecoversWhenSpaceIsFreed(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the rotation case above still runs", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, "audit.jsonl")
	w, err := file.New(file.Config{Path: path, BufferSize: 8 << 10, FlushInterval: -1})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())

	var acked []int
	var flushErr error
	for i := range 50 {
		if w.Write(record{Seq: i, Note: strings.Repeat("z", 100)}) == nil {
			acked = append(acked, i)
		}
		if err := w.Flush(); err != nil {
			flushErr = err
		}
	}
	require.ErrorIs(t, flushErr, syscall.ENOSPC)
	h := w.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusUnhealthy, h.Status, h.Message)

	require.NoError(t, os.Remove(filler))
	require.NoError(t, w.Flush(), "space is free again")
	h = w.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, acked, seqsIn(t, path, 0), "every acknowledged record, whole and once")
}
