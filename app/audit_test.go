package app

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The service's audit log rotates by size as configured: every line of
// every file kept is a whole record, no file is larger than max_bytes, and
// the newest records, those of the last tasks, are all there.
func TestTheAuditLogRotates(t *testing.T) {
	s := start(t, "audit: {max_bytes: 2000, max_files: 2}\n")
	var ids []string
	for range 40 {
		code, rec, msg := s.task("echo/v1", "echo", map[string]any{"n": 1})
		require.Equal(t, 200, code, msg)
		ids = append(ids, rec.ID)
	}
	s.stop() // flushes the audit log
	path := s.settings.AuditPath
	var lines []string
	for _, name := range []string{path + ".2", path + ".1", path} {
		st, err := os.Stat(name)
		require.NoError(t, err, "%s is kept", name)
		assert.LessOrEqual(t, st.Size(), int64(2000), name)
		for _, l := range auditLines(t, name) {
			require.True(t, json.Valid([]byte(l)), "a whole record in %s: %q", name, l)
			lines = append(lines, l)
		}
	}
	_, err := os.Stat(path + ".3")
	assert.ErrorIs(t, err, os.ErrNotExist, "no more than max_files rotated files")
	require.GreaterOrEqual(t, len(lines), 2)
	last := ids[len(ids)-1]
	assert.Contains(t, lines[len(lines)-2], last, "the last task's begin record")
	assert.Contains(t, lines[len(lines)-1], last, "the last task's outcome")
}
