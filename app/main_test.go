package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Main exits with code 2 and the message on a bad configuration.
func TestMainExitsTwoOnBadConfiguration(t *testing.T) {
	var stderr bytes.Buffer
	code := Main([]string{"-config", write(t, "c.yaml", "shutdown: {timeout: soon}\n")}, noEnv, &stderr)
	assert.Equal(t, ExitConfig, code)
	assert.Contains(t, stderr.String(), "config: shutdown.timeout")
}

// Found in review: a DSN of another database is refused at load, its
// password kept out of the message and the exit code 2. (That a child may
// not inherit the service's own settings is app/config's test.)
func TestSecretsStayOutOfMessages(t *testing.T) {
	var stderr bytes.Buffer
	cfg := write(t, "d.yaml", "data_dir: "+t.TempDir()+"\nstore: {dsn: \"mysql://app:hunter2@db/prod\"}\n")
	code := Main([]string{"-config", cfg, "-addr", "127.0.0.1:0"}, noEnv, &stderr)
	assert.Equal(t, ExitConfig, code, stderr.String())
	assert.Contains(t, stderr.String(), "config: store.dsn:")
	assert.NotContains(t, stderr.String(), "hunter2")
}

// store.max_conns sizes a PostgreSQL store's pool, and so how many batches
// of task records commit side by side; without it, sqldb's default.
func TestStoreMaxConnsSizesThePool(t *testing.T) {
	for _, tt := range []struct {
		config      string
		conns, lead int
	}{
		{"store: {dsn: \"postgres://u@db/app\", max_conns: 4}\n", 4, 2},
		{"store: {dsn: \"postgres://u@db/app\"}\n", sqldb.DefaultMaxOpenConns, sqldb.DefaultMaxOpenConns / 2},
		{"", 1, 1}, // SQLite
	} {
		s, err := config.Load([]string{"-config", write(t, "c.yaml", tt.config)}, noEnv, &bytes.Buffer{})
		require.NoError(t, err)
		store, err := sqldb.New(s.StoreConfig())
		require.NoError(t, err)
		assert.Equal(t, tt.conns, store.MaxOpenConns(), tt.config)
		assert.Equal(t, tt.lead, commitLeaders(store), tt.config)
	}
}

// -h is no error: it exits 0 after naming the program as it was called.
// (The flags and the environment variables it lists are app/config's
// test.)
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr bytes.Buffer
		require.Equal(t, ExitOK, Main([]string{arg}, noEnv, &stderr), arg)
		out := stderr.String()
		assert.Contains(t, out, "Usage: "+filepath.Base(os.Args[0])+" [flags]")
		assert.NotContains(t, out, "help requested")
	}
}

// A task store that cannot be reached at start exits 3, with one error
// line naming the store, its password hidden, and the report.
func TestUnreachableStoreExitsThree(t *testing.T) {
	var stderr testkit.LockedBuffer
	env := func(name string) string {
		if name == "GLEITZEIT_STORE_DSN" {
			return "postgres://gz:hunter2@127.0.0.1:1/tasks?connect_timeout=1"
		}
		return ""
	}
	code := Main([]string{"-data-dir", t.TempDir(), "-addr", "127.0.0.1:0", "-log-format", "console"}, env, &stderr)
	out := stderr.String()
	assert.Equal(t, ExitStore, code, out)
	assert.NotContains(t, out, "hunter2")
	var errorLines []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "\tERROR\t") {
			errorLines = append(errorLines, line)
		}
	}
	require.Len(t, errorLines, 1, out)
	assert.Contains(t, errorLines[0], "cannot open the task store")
	assert.Contains(t, errorLines[0], `"store": "postgres://gz@127.0.0.1:1/tasks`)
	// The report, a line for each provider in console format.
	assert.Contains(t, out, "cleanup report: provider\t{\"provider\": \"store\"")
	assert.Contains(t, out, "cleanup report: provider\t{\"provider\": \"audit\", \"method\": \"\", \"result\": \"skipped\"")

	// -migrate, which opens the store alone, exits 3 too.
	var migrating testkit.LockedBuffer
	code = Main([]string{"-data-dir", t.TempDir(), "-migrate"}, env, &migrating)
	assert.Equal(t, ExitStore, code, migrating.String())
	assert.Contains(t, migrating.String(), "cannot open the task store")
	assert.NotContains(t, migrating.String(), "hunter2")
}
