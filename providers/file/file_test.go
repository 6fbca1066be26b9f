package file_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type record struct {
	Worker int    `json:"worker"`
	Seq    int    `json:"seq"`
	Note   string `json:"note"`
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "line %q", sc.Text())
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

// Every record whose Write returned is on disk after Cleanup, and the file
// descriptor is closed: counted, not assumed.
func TestEveryWrittenRecordIsOnDiskAfterCleanup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	before := testkit.OpenFDs(t)
	w, err := file.New(file.Config{Path: path, BufferSize: 4096, FlushInterval: -1})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	assert.Equal(t, before+1, testkit.OpenFDs(t), "the file is open")

	const workers, each = 8, 500
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for k := range each {
				require.NoError(t, w.Write(record{Worker: i, Seq: k, Note: "checked"}))
			}
		})
	}
	testkit.Within(t, "the writers", wg.Wait)
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, before, testkit.OpenFDs(t), "the file is closed")

	got := readRecords(t, path)
	require.Len(t, got, workers*each)
	last := make(map[int]int)
	for _, r := range got {
		seq, seen := last[r.Worker]
		if seen {
			assert.Equal(t, seq+1, r.Seq, "worker %d's records in order", r.Worker)
		}
		last[r.Worker] = r.Seq
	}
}

func TestWritesFailClearlyWhenClosed(t *testing.T) {
	w, err := file.New(file.Config{Path: filepath.Join(t.TempDir(), "a.jsonl")})
	require.NoError(t, err)
	require.ErrorIs(t, w.Write("early"), file.ErrClosed, "before Initialize")
	require.NoError(t, w.Initialize(context.Background()))
	require.NoError(t, w.Write("once"))
	require.NoError(t, w.Cleanup(context.Background()))
	err = w.Write("late")
	require.ErrorIs(t, err, file.ErrClosed)
	assert.Contains(t, err.Error(), "a.jsonl")
	require.ErrorIs(t, w.Sync(), file.ErrClosed)
	require.NoError(t, w.Cleanup(context.Background()), "Cleanup is idempotent")
}

func TestInitializeNamesAnUnusableDirectory(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, nil, 0o600))
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"missing", filepath.Join(dir, "nope", "a.jsonl"), []string{"nope", "does not exist"}},
		{"not a directory", filepath.Join(plain, "a.jsonl"), []string{"plain", "is not a directory"}},
		// sysfs refuses to create files, even for root.
		{"unwritable", "/sys/gleitzeit-audit.jsonl", []string{"/sys/gleitzeit-audit.jsonl", "cannot open for appending"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testkit.OpenFDs(t)
			w, err := file.New(file.Config{Path: tt.path})
			require.NoError(t, err)
			err = w.Initialize(context.Background())
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
			require.NoError(t, w.Cleanup(context.Background()), "safe after a failed Initialize")
			assert.Equal(t, before, testkit.OpenFDs(t))
		})
	}
}

// A read-only file system, as a pod with readOnlyRootFilesystem has. It
// needs a tmpfs mounted read-only, which only root can do.
func TestInitializeOnReadOnlyFileSystem(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a read-only tmpfs here (%v: %s); the unwritable case above still runs", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	w, err := file.New(file.Config{Path: filepath.Join(dir, "a.jsonl")})
	require.NoError(t, err)
	err = w.Initialize(context.Background())
	require.ErrorContains(t, err, "read-only file system")
	assert.Contains(t, err.Error(), dir)
}

func TestPeriodicFlushReachesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	w, err := file.New(file.Config{Path: path, FlushInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())
	require.NoError(t, w.Write(record{Note: "soon"}))
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(path)
		return len(b) > 0
	}, testkit.Wait, 5*time.Millisecond)
}

func TestSyncMakesRecordsVisible(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	w, err := file.New(file.Config{Path: path, FlushInterval: -1})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())
	for i := range 3 {
		require.NoError(t, w.Write(record{Seq: i}))
	}
	assert.Empty(t, readRecords(t, path), "still buffered")
	require.NoError(t, w.Sync())
	assert.Len(t, readRecords(t, path), 3)
}

func TestHealthShowsWhatItHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	w, err := file.New(file.Config{Path: path, FlushInterval: -1})
	require.NoError(t, err)
	assert.Equal(t, lifecycle.StatusUnhealthy, w.HealthCheck(context.Background()).Status)
	require.NoError(t, w.Initialize(context.Background()))
	require.NoError(t, w.Write(record{Note: "x"}))
	h := w.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status)
	assert.Equal(t, true, h.Resources["open"])
	assert.EqualValues(t, 1, h.Resources["records"])
	assert.Positive(t, h.Resources["buffered_bytes"])
	assert.Equal(t, path, h.Resources["path"])
	require.NoError(t, w.Cleanup(context.Background()))
	assert.Equal(t, false, w.HealthCheck(context.Background()).Resources["open"])
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := file.New(file.Config{})
	require.ErrorContains(t, err, "Path is empty")
	_, err = file.New(file.Config{Path: "x", BufferSize: -1})
	require.ErrorContains(t, err, "BufferSize is negative")
}

// Under the registry: the writer is a provider like any other.
func TestUnderTheRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	before := testkit.OpenFDs(t)
	w, err := file.New(file.Config{ID: "audit", Path: path})
	require.NoError(t, err)
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(w))
	require.NoError(t, r.Start(context.Background()))
	for i := range 100 {
		require.NoError(t, w.Write(record{Seq: i, Note: fmt.Sprint("task ", i)}))
	}
	require.NoError(t, r.Stop(context.Background()))
	assert.Equal(t, "ok", r.Report().Providers["audit"].Result.String())
	assert.Len(t, readRecords(t, path), 100)
	assert.Equal(t, before, testkit.OpenFDs(t))
}

// The file never ends inside a record because of a flush: with a buffer
// smaller than a few records, what reaches the file after each Write is
// whole lines (a kill -9 at that moment would lose no line but the
// buffered ones).
func TestFlushesWriteWholeRecordsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := file.New(file.Config{Path: path, BufferSize: 100, FlushInterval: -1})
	require.NoError(t, err)
	require.NoError(t, w.Initialize(context.Background()))
	defer w.Cleanup(context.Background())
	for i := range 50 {
		note := strings.Repeat("x", i*7) // from shorter than the buffer to longer
		require.NoError(t, w.Write(record{Seq: i, Note: note}))
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		if len(raw) > 0 {
			require.Equal(t, byte('\n'), raw[len(raw)-1], "after record %d the file ends inside a record", i)
		}
	}
	require.NoError(t, w.Sync())
	assert.Len(t, readRecords(t, path), 50)
}

// A file that a crash left ending inside a record is truncated to its last
// newline on open, the bytes dropped are reported, and the next record
// starts a line of its own.
func TestInitializeRepairsATornLastRecord(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		wantKeep string
	}{
		{"torn after whole records", `{"seq":1}` + "\n" + `{"seq":2}` + "\n" + `{"seq":3,"no`, `{"seq":1}` + "\n" + `{"seq":2}` + "\n"},
		{"only a torn record", `{"seq":1,"no`, ""},
		{"whole", `{"seq":1}` + "\n", `{"seq":1}` + "\n"},
		{"torn beyond one read block", `{"seq":1}` + "\n" + `{"note":"` + strings.Repeat("y", 200<<10), `{"seq":1}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o640))
			var dropped int64 = -1
			w, err := file.New(file.Config{Path: path, OnRepair: func(p string, n int64) {
				assert.Equal(t, path, p)
				dropped = n
			}})
			require.NoError(t, err)
			require.NoError(t, w.Initialize(context.Background()))
			if want := int64(len(tt.content) - len(tt.wantKeep)); want > 0 {
				assert.Equal(t, want, dropped)
				assert.Equal(t, want, w.HealthCheck(context.Background()).Resources["repaired_bytes"])
			} else {
				assert.EqualValues(t, -1, dropped, "a whole file is not repaired")
			}
			require.NoError(t, w.Write(record{Seq: 9}))
			require.NoError(t, w.Cleanup(context.Background()))
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.wantKeep+`{"worker":0,"seq":9,"note":""}`+"\n", string(raw))
		})
	}
}
