package app

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// The service exits 2 on a store whose schema it does not run on, saying
// why: a newer one, or an older one, which -migrate then upgrades (exit 0)
// so that the service starts. The service never upgrades one itself.
func TestMainExitsTwoOnASchemaItDoesNotRun(t *testing.T) {
	stores := emptyStores(t)
	run := func(t *testing.T, dsn string, args ...string) (int, string) {
		t.Helper()
		cfg := write(t, "c.yaml", fmt.Sprintf("data_dir: %s\nstore: {dsn: %q}\ntemplates: {}\nproviders: []\n",
			t.TempDir(), dsn))
		var stderr bytes.Buffer
		code := mainUntilStarted(t, append([]string{"-config", cfg, "-addr", "127.0.0.1:0"}, args...), &stderr)
		return code, stderr.String()
	}
	for driver, s := range stores {
		t.Run(driver, func(t *testing.T) {
			_, err := s.db.Exec(version1)
			require.NoError(t, err)
			_, err = s.db.Exec(`INSERT INTO tasks VALUES ('a', 'p', 'm', 'x', 'ok', '', NULL, '2026-01-02T03:04:05.5Z', 1)`)
			require.NoError(t, err)
			code, out := run(t, s.dsn)
			assert.Equal(t, ExitConfig, code, out)
			assert.Contains(t, out, "older than this build's 3: upgrade it once with this build's -migrate")
			code, out = run(t, s.dsn, "-migrate")
			assert.Equal(t, ExitOK, code, out)
			assert.Contains(t, out, `"msg":"task store: upgrading the schema; the tasks table stays locked meanwhile","from":1,"to":3,"tasks":1`)
			assert.Contains(t, out, "schema migrated")
			code, out = run(t, s.dsn, "-migrate")
			assert.Equal(t, ExitOK, code, out)
			assert.Contains(t, out, "the schema is this build's already")
			code, out = run(t, s.dsn)
			assert.Equal(t, ExitOK, code, out)
			assert.Contains(t, out, "service started")

			_, err = s.db.Exec(`UPDATE gleitzeit_schema SET version = 99`)
			require.NoError(t, err)
			for _, args := range [][]string{nil, {"-migrate"}} {
				code, out = run(t, s.dsn, args...)
				assert.Equal(t, ExitConfig, code, out)
				assert.Contains(t, out, "version 99, newer than this build's 3")
			}
		})
	}
}

// mainUntilStarted runs Main and returns its exit code: at once if it
// exits on its own, or after a SIGTERM once it has started.
func mainUntilStarted(t *testing.T, args []string, stderr *bytes.Buffer) int {
	t.Helper()
	out := &testkit.LockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main(args, noEnv, out) }()
	defer func() { stderr.WriteString(out.String()) }()
	deadline := time.After(testkit.Wait)
	for {
		select {
		case code := <-done:
			return code
		case <-deadline:
			t.Fatalf("Main neither started nor exited within %v:\n%s", testkit.Wait, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if strings.Contains(out.String(), "service started") {
			break
		}
	}
	// Main is waiting for a signal, and catches this one.
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	return testkit.Receive(t, done, "Main's exit after SIGTERM")
}

// emptyStore is a task store with nothing in it yet.
type emptyStore struct {
	db     *sql.DB
	driver string
	dsn    string
}

var freshDatabases atomic.Int64

// emptyStores are an empty SQLite file and an empty database on the real
// PostgreSQL server of the tests, dropped when the test ends.
func emptyStores(t *testing.T) map[string]emptyStore {
	t.Helper()
	pg, err := postgres()
	require.NoError(t, err, "PostgreSQL is needed for these tests")
	admin, err := openDB(t, pg.DSN("postgres")).DB()
	require.NoError(t, err)
	name := fmt.Sprintf("fresh_%d", freshDatabases.Add(1))
	_, err = admin.Exec(`CREATE DATABASE ` + name)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(`DROP DATABASE ` + name + ` WITH (FORCE)`) })
	out := map[string]emptyStore{}
	for driver, dsn := range map[string]string{
		sqldb.SQLite:   filepath.Join(t.TempDir(), "tasks.db"),
		sqldb.Postgres: pg.DSN(name),
	} {
		d := openDB(t, dsn)
		db, err := d.DB()
		require.NoError(t, err)
		require.Equal(t, driver, d.Driver())
		out[driver] = emptyStore{db: db, driver: driver, dsn: dsn}
	}
	return out
}

// version1 is the first releases' schema, which had no version table: an
// older store for Main to refuse and -migrate to upgrade. (Package
// taskstore's tests, which test the upgrade itself, have their own.)
const version1 = `CREATE TABLE tasks (
	id          TEXT PRIMARY KEY,
	protocol    TEXT NOT NULL,
	method      TEXT NOT NULL,
	provider    TEXT NOT NULL,
	status      TEXT NOT NULL,
	error       TEXT NOT NULL,
	output      TEXT,
	started     TEXT NOT NULL,
	duration_ms REAL NOT NULL
)`

// openDB opens a store the way the service does, closed when the test ends.
func openDB(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	d, err := sqldb.New(sqldb.Config{ID: "store", DSN: dsn})
	require.NoError(t, err)
	require.NoError(t, d.Initialize(context.Background()))
	t.Cleanup(func() { _ = d.Cleanup(context.Background()) })
	return d
}
