package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/providers/file"
)

// A file that rotates by size keeps MaxFiles rotated files beside the
// current one, each no larger than MaxBytes and made of whole records, and
// together they hold the newest records, in order, with none missing.
func TestRotationKeepsTheNewestRecordsWhole(t *testing.T) {
	for _, bufferSize := range []int{64, 1 << 10, 64 << 10} {
		t.Run(fmt.Sprint("buffer ", bufferSize), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			w, err := file.New(file.Config{Path: path, BufferSize: bufferSize, FlushInterval: -1, MaxBytes: 300, MaxFiles: 3})
			require.NoError(t, err)
			require.NoError(t, w.Initialize(context.Background()))
			const n = 200
			for i := range n {
				require.NoError(t, w.Write(record{Seq: i, Note: strings.Repeat("x", i%7)}))
			}
			require.NoError(t, w.Cleanup(context.Background()))

			var kept []record
			for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
				st, err := os.Stat(name)
				require.NoError(t, err, "%s is kept", name)
				assert.LessOrEqual(t, st.Size(), int64(300), "%s is no larger than MaxBytes", name)
				kept = append(kept, readRecords(t, name)...) // whole records, or this fails
			}
			_, err = os.Stat(path + ".4")
			assert.ErrorIs(t, err, os.ErrNotExist, "no more than MaxFiles rotated files")
			require.NotEmpty(t, kept)
			assert.Equal(t, n-1, kept[len(kept)-1].Seq, "the newest record is kept")
			for i := 1; i < len(kept); i++ {
				require.Equal(t, kept[i-1].Seq+1, kept[i].Seq, "the kept records follow each other, none missing")
			}
		})
	}
}

// A record larger than MaxBytes is not cut: it fills a file of its own.
func TestARecordLargerThanMaxBytesGoesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := file.New(file.Config{Path: path, FlushInterval: -1, MaxBytes: 100, MaxFiles: 2})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	require.NoError(t, w.Write(record{Seq: 1}))
	require.NoError(t, w.Write(record{Seq: 2, Note: strings.Repeat("y", 500)}))
	require.NoError(t, w.Write(record{Seq: 3}))
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, []record{{Seq: 1}}, readRecords(t, path+".2"))
	assert.Equal(t, []record{{Seq: 2, Note: strings.Repeat("y", 500)}}, readRecords(t, path+".1"))
	assert.Equal(t, []record{{Seq: 3}}, readRecords(t, path))
}

// A file opened again counts what it holds already: the first write that
// would pass MaxBytes rotates it.
func TestRotationCountsWhatTheFileHeldWhenOpened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat(`{"seq":0}`+"\n", 10)), 0o640)) // 100 bytes
	w, err := file.New(file.Config{Path: path, FlushInterval: -1, MaxBytes: 110})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	require.NoError(t, w.Write(record{Seq: 1}))
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Len(t, readRecords(t, path+".1"), 10)
	assert.Len(t, readRecords(t, path), 1)
	h := w.HealthCheck(context.Background())
	assert.EqualValues(t, 1, h.Resources["rotations"])
}

// Bad rotation settings are refused, naming the field.
func TestNewRejectsBadRotation(t *testing.T) {
	_, err := file.New(file.Config{Path: "x", MaxBytes: -1})
	assert.ErrorContains(t, err, "MaxBytes")
	_, err = file.New(file.Config{Path: "x", MaxFiles: -1})
	assert.ErrorContains(t, err, "MaxFiles")
}
