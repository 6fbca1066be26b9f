package file_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
)

// writeSeqs writes records from..to-1, each naming its number.
func writeSeqs(t *testing.T, w *file.Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		require.NoError(t, w.Write(record{Seq: i}))
	}
}

// seqRange is from..to-1.
func seqRange(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func seqsOf(t *testing.T, path string) []int {
	t.Helper()
	var s []int
	for _, r := range readRecords(t, path) {
		s = append(s, r.Seq)
	}
	return s
}

// waitReopened waits, bounded, until the writer says it opened a new file
// at its path n times.
func waitReopened(t *testing.T, w *file.Writer, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, _ := w.HealthCheck(context.Background()).Resources["reopened"].(int64)
		return got == n
	}, testkit.Wait, 5*time.Millisecond, "the writer opens a new file at its path")
}

// The file moved away under the writer (logrotate without copytruncate):
// the periodic flush notices, and a new file at Path gets the later
// records, the moved file keeps the earlier ones, and the writer stays
// healthy. The new file is told once, with why.
func TestAFileMovedAwayIsFollowedByANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var failures atomic.Int32
	reopens := make(chan string, 4)
	w, err := file.New(file.Config{Path: path, FlushInterval: 10 * time.Millisecond,
		OnFailure: func(string, error) { failures.Add(1) },
		OnReopen:  func(_, why string) { reopens <- why }})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())

	writeSeqs(t, w, 0, 5)
	require.NoError(t, w.Sync())
	require.NoError(t, os.Rename(path, path+".saved"))
	writeSeqs(t, w, 5, 10)
	assert.Contains(t, testkit.Receive(t, reopens, "the new file"), "moved or deleted")
	h := w.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	require.NoError(t, w.Cleanup(context.Background()))

	assert.Equal(t, seqRange(0, 5), seqsOf(t, path+".saved"), "the moved file keeps what was written to it")
	assert.Equal(t, seqRange(5, 10), seqsOf(t, path), "the new file gets the later records, once each")
	assert.Zero(t, failures.Load(), "a moved file is not a failure")
	assert.Empty(t, reopens, "told once")
}

// The file deleted under the writer: the periodic flush notices it even
// with nothing to write, and opens a new file at Path, which gets every
// later record; the writer stays healthy.
func TestADeletedFileIsFollowedByANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := file.New(file.Config{Path: path, FlushInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())

	writeSeqs(t, w, 0, 5)
	require.NoError(t, w.Sync())
	require.NoError(t, os.Remove(path))
	waitReopened(t, w, 1)
	require.FileExists(t, path)
	writeSeqs(t, w, 5, 10)
	h := w.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, seqRange(5, 10), seqsOf(t, path), "every record written after the delete was noticed")
}

// A file that rotates by size, moved or deleted under the writer, goes on
// rotating: no flush fails for the missing file, the rotated files and the
// new one hold every later record once, in order, and a moved file keeps
// the earlier ones.
func TestRotationGoesOnAfterTheFileWasMovedOrDeleted(t *testing.T) {
	for _, c := range []struct {
		name string
		away func(path string) error
	}{
		{"moved", func(path string) error { return os.Rename(path, path+".saved") }},
		{"deleted", os.Remove},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			const maxFiles = 9 // seqsIn reads Path.1 to Path.9
			w, err := file.New(file.Config{Path: path, FlushInterval: -1, MaxBytes: 100, MaxFiles: maxFiles})
			require.NoError(t, err)
			require.NoError(t, w.Initialize(context.Background()))
			defer w.Cleanup(context.Background())

			writeSeqs(t, w, 0, 3)
			require.NoError(t, w.Flush())
			require.NoError(t, c.away(path))
			for i := 3; i < 24; i++ {
				require.NoError(t, w.Write(record{Seq: i}))
				require.NoError(t, w.Flush(), "record %d", i)
			}
			h := w.HealthCheck(context.Background())
			assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
			require.NoError(t, w.Cleanup(context.Background()))

			require.FileExists(t, path+".1", "it rotated")
			assert.Equal(t, seqRange(3, 24), seqsIn(t, path, maxFiles), "every later record once, in order")
			if c.name == "moved" {
				assert.Equal(t, seqRange(0, 3), seqsOf(t, path+".saved"))
			}
		})
	}
}

// The file's directory replaced by a file (which stops root too), or
// deleted, and then an empty directory put back: while Path cannot be
// opened the writer is unhealthy and keeps the records buffered, not
// written to the file it had open; once the directory is back, the
// periodic flush opens a new file there, writes them, and the writer is
// healthy again. The failure and the recovery are told once each.
func TestADirectoryReplacedAndPutBackEmptyRecovers(t *testing.T) {
	for _, c := range []struct {
		name string
		away func(dir string) error
	}{
		{"replaced by a file", func(dir string) error { return os.WriteFile(dir, []byte("not a directory"), 0o644) }},
		{"deleted", func(string) error { return nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "logs")
			require.NoError(t, os.Mkdir(dir, 0o755))
			path := filepath.Join(dir, "audit.jsonl")
			var failures, recoveries atomic.Int32
			w, err := file.New(file.Config{Path: path, FlushInterval: 10 * time.Millisecond,
				OnFailure:  func(string, error) { failures.Add(1) },
				OnRecovery: func(string) { recoveries.Add(1) }})
			require.NoError(t, err)
			require.NoError(t, w.Initialize(context.Background()))
			defer w.Cleanup(context.Background())

			writeSeqs(t, w, 0, 5)
			require.NoError(t, w.Sync())
			away := dir + ".away"
			require.NoError(t, os.Rename(dir, away))
			require.NoError(t, c.away(dir))
			writeSeqs(t, w, 5, 10)
			require.Eventually(t, func() bool {
				return w.HealthCheck(context.Background()).Status == lifecycle.StatusUnhealthy
			}, testkit.Wait, 5*time.Millisecond, "the writer cannot open its path")
			h := w.HealthCheck(context.Background())
			assert.Contains(t, h.Message, path)

			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.Eventually(t, func() bool {
				return w.HealthCheck(context.Background()).Status == lifecycle.StatusHealthy
			}, testkit.Wait, 5*time.Millisecond, "the directory is back")
			writeSeqs(t, w, 10, 15)
			require.NoError(t, w.Cleanup(context.Background()))

			assert.Equal(t, seqRange(0, 5), seqsOf(t, filepath.Join(away, "audit.jsonl")), "the old file keeps only what was written before")
			assert.Equal(t, seqRange(5, 15), seqsOf(t, path), "the new file gets every later record, once")
			assert.Equal(t, int32(1), failures.Load(), "the failure is told once")
			assert.Equal(t, int32(1), recoveries.Load(), "the recovery is told once")
		})
	}
}
