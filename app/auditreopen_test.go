package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// holds says whether the file at path holds s (it may not exist).
func holds(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// The audit file moved away while the service runs (logrotate
// without copytruncate) or deleted: the writer opens a new file at its
// path, which gets the later tasks' records and goes on rotating; the
// moved file keeps the earlier ones; the service stays ready, tasks keep
// answering 200, and the new file is logged once, at warn.
func TestAnAuditFileMovedOrDeletedIsFollowed(t *testing.T) {
	for _, c := range []struct {
		name string
		away func(path string) error
	}{
		{"moved", func(path string) error { return os.Rename(path, path+".saved") }},
		{"deleted", os.Remove},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			opt, logs := observed()
			s := startWith(t, "", "audit: {path: "+path+", max_bytes: 2000, max_files: 2}\n", opt)
			s.waitHealthy()
			code, before, msg := s.task("echo/v1", "echo", nil)
			require.Equal(t, 200, code, msg)
			require.Eventually(t, func() bool { return holds(path, before.ID) }, testkit.Wait, 10*time.Millisecond,
				"the periodic flush writes the record")

			require.NoError(t, c.away(path))
			code, after, msg := s.task("echo/v1", "echo", nil)
			require.Equal(t, 200, code, msg)
			require.Eventually(t, func() bool { return holds(path, after.ID) }, testkit.Wait, 10*time.Millisecond,
				"a new file at the audit path gets the later records")
			for range 30 { // past max_bytes: it rotates
				code, _, msg := s.task("echo/v1", "echo", nil)
				require.Equal(t, 200, code, msg)
			}
			require.Eventually(t, func() bool { _, err := os.Stat(path + ".1"); return err == nil }, testkit.Wait, 10*time.Millisecond,
				"the new file rotates")
			code, why := s.readyz()
			assert.Equal(t, 200, code, why)
			if c.name == "moved" {
				assert.True(t, holds(path+".saved", before.ID), "the moved file keeps the earlier records")
				assert.False(t, holds(path+".saved", after.ID), "and only those")
			}

			warned, all := lines(logs, "audit log reopened: its file was no longer at its path; earlier records stay in the old file, later ones go to a new file there")
			assert.Equal(t, [2]int{1, 1}, [2]int{warned, all}, "the new file is logged once, at warn")
			_, failing := lines(logs, "audit log failing: writes are kept in its buffer and retried; tasks are refused once it is full")
			assert.Zero(t, failing, "a moved file is not a failure")
		})
	}
}
