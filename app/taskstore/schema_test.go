package taskstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

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

// version1 is the first releases' schema, which had no version table.
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

func columnType(t *testing.T, s emptyStore, column string) string {
	t.Helper()
	q := `SELECT type FROM pragma_table_info('tasks') WHERE name = $1`
	if s.driver == sqldb.Postgres {
		q = `SELECT data_type FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = $1`
	}
	var typ string
	require.NoError(t, s.db.QueryRow(q, column).Scan(&typ))
	return typ
}

func hasStartedIndex(t *testing.T, s emptyStore) bool {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'tasks_started'`
	if s.driver == sqldb.Postgres {
		q = `SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexname = 'tasks_started'`
	}
	var n int
	require.NoError(t, s.db.QueryRow(q).Scan(&n))
	return n == 1
}

func storedOrder(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT id FROM tasks ORDER BY started`)
	require.NoError(t, err)
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// An empty database gets the schema once: a time type for started, the
// index retention needs, and a version that a second migration finds and
// leaves alone. Times come back as they went in (PostgreSQL to the
// microsecond), and the store orders them as time does.
func TestAnEmptyStoreGetsTheSchema(t *testing.T) {
	base := time.Date(2026, 11, 27, 20, 45, 1, 0, time.UTC)
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			found, err := Migrate(ctx, s.db, driver, false)
			require.NoError(t, err)
			assert.Equal(t, 0, found)
			found, err = Migrate(ctx, s.db, driver, false)
			require.NoError(t, err)
			assert.Equal(t, SchemaVersion, found)

			want := map[string]string{sqldb.SQLite: "TIMESTAMP", sqldb.Postgres: "timestamp with time zone"}[driver]
			assert.Equal(t, want, columnType(t, s, "started"))
			if driver == sqldb.Postgres {
				assert.Equal(t, "double precision", columnType(t, s, "duration_ms"))
			}
			assert.True(t, hasStartedIndex(t, s))

			// Out of order, and within one second: a whole second, a
			// long fraction, a short one, a time zone other than UTC.
			times := map[string]time.Time{
				"c": base.Add(500 * time.Millisecond),
				"a": base,
				"d": base.Add(time.Second).In(time.FixedZone("CET", 3600)),
				"b": base.Add(123456789),
			}
			for id, at := range times {
				require.NoError(t, Begin(ctx, s.db, Record{ID: id, Protocol: "p", Method: "m", Status: "running", Started: at}))
			}
			assert.Equal(t, []string{"a", "b", "c", "d"}, storedOrder(t, s.db))
			for id, at := range times {
				r, err := Load(ctx, s.db, id)
				require.NoError(t, err)
				if driver == sqldb.Postgres {
					at = at.Round(time.Microsecond)
				}
				assert.True(t, at.Equal(r.Started), "task %s started %v, read back %v", id, at, r.Started)
				assert.Equal(t, time.UTC, r.Started.Location())
			}
		})
	}
}

// A store of the first releases is refused unless upgrade is asked for;
// upgraded, it keeps every task and its start time, and sorts by it.
func TestAnOlderSchemaIsUpgradedOnlyWhenAsked(t *testing.T) {
	stored := map[string]string{ // as version 1 wrote them: RFC 3339 in UTC
		"a": "2026-01-02T03:04:05Z",
		"b": "2026-01-02T03:04:05.123456789Z",
		"c": "2026-01-02T03:04:05.5Z",
		"d": "2026-01-02T03:04:06.000001Z",
	}
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, err := s.db.Exec(version1)
			require.NoError(t, err)
			for id, at := range stored {
				_, err := s.db.Exec(`INSERT INTO tasks VALUES ($1, 'p', 'm', 'x', 'ok', '', '{"n":1}', $2, 1.25)`, id, at)
				require.NoError(t, err)
			}

			found, err := Migrate(ctx, s.db, driver, false)
			var se *SchemaError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, SchemaError{Found: 1, Want: SchemaVersion}, *se)
			assert.Equal(t, 1, found)
			assert.Contains(t, err.Error(), "-migrate")
			assert.Equal(t, map[string]string{sqldb.SQLite: "TEXT", sqldb.Postgres: "text"}[driver], columnType(t, s, "started"),
				"a refused schema is left as it was")

			found, err = Migrate(ctx, s.db, driver, true)
			require.NoError(t, err)
			assert.Equal(t, 1, found)
			assert.True(t, hasStartedIndex(t, s))
			assert.Equal(t, []string{"a", "b", "c", "d"}, storedOrder(t, s.db))
			for id, at := range stored {
				want, err := time.Parse(time.RFC3339Nano, at)
				require.NoError(t, err)
				r, err := Load(ctx, s.db, id)
				require.NoError(t, err)
				if driver == sqldb.Postgres {
					want = want.Round(time.Microsecond)
				}
				assert.True(t, want.Equal(r.Started), "task %s started %v, read back %v", id, want, r.Started)
				assert.Equal(t, "ok", r.Status)
				assert.JSONEq(t, `{"n":1}`, string(r.Output))
				assert.InDelta(t, 1.25, r.DurationMS, 0)
			}
			found, err = Migrate(ctx, s.db, driver, false)
			require.NoError(t, err)
			assert.Equal(t, SchemaVersion, found)
		})
	}
}

// A schema newer than this build's is refused, upgrade or not, and left
// as it was.
func TestANewerSchemaIsRefused(t *testing.T) {
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, err := Migrate(ctx, s.db, driver, false)
			require.NoError(t, err)
			_, err = s.db.Exec(`UPDATE gleitzeit_schema SET version = $1`, SchemaVersion+1)
			require.NoError(t, err)
			for _, upgrade := range []bool{false, true} {
				found, err := Migrate(ctx, s.db, driver, upgrade)
				var se *SchemaError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, SchemaVersion+1, found)
				assert.Contains(t, err.Error(), "newer than this build's")
			}
			var v int
			require.NoError(t, s.db.QueryRow(`SELECT version FROM gleitzeit_schema`).Scan(&v))
			assert.Equal(t, SchemaVersion+1, v)
		})
	}
}

// Found in review: a version table that no build wrote, a store of
// version 1 holding a start time version 1 never wrote, and another
// application's tasks table along PostgreSQL's search path are refused or
// left alone, never changed or taken for this store's.
func TestOddStoresAreRefusedOrLeftAlone(t *testing.T) {
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, err := s.db.Exec(versionTable)
			require.NoError(t, err)
			for _, v := range []int{0, -3} {
				_, err = s.db.Exec(`DELETE FROM gleitzeit_schema`)
				require.NoError(t, err)
				_, err = s.db.Exec(`INSERT INTO gleitzeit_schema VALUES (1, $1)`, v)
				require.NoError(t, err)
				_, err = Migrate(ctx, s.db, driver, true)
				assert.ErrorContains(t, err, fmt.Sprintf("gleitzeit_schema says version %d, which no build writes", v))
			}
			_, err = s.db.Exec(`UPDATE gleitzeit_schema SET version = 2`)
			require.NoError(t, err)
			_, err = Migrate(ctx, s.db, driver, true)
			assert.ErrorContains(t, err, "says version 2, but there is no tasks table")
			_, err = s.db.Exec(`DROP TABLE gleitzeit_schema`)
			require.NoError(t, err)

			_, err = s.db.Exec(version1)
			require.NoError(t, err)
			for _, odd := range []string{"2026-01-02T03:04:05+01:00", "", "2026-01-02 03:04:05Z", "yesterday",
				"2026-01-02T03:04:05.5 junk Z", "2026-02-30T03:04:05Z", "2026-01-02T25:04:05Z", "2026-01-02T03:04:05.Z"} {
				_, err = s.db.Exec(`DELETE FROM tasks`)
				require.NoError(t, err)
				_, err = s.db.Exec(`INSERT INTO tasks VALUES ('good', 'p', 'm', 'x', 'ok', '', NULL, '2026-01-02T03:04:05Z', 1), ('odd', 'p', 'm', 'x', 'ok', '', NULL, $1, 1)`, odd)
				require.NoError(t, err)
				_, err = Migrate(ctx, s.db, driver, true)
				_, isSchema := errors.AsType[*SchemaError](err)
				assert.True(t, isSchema, "%q: %v", odd, err)
				if !strings.Contains(fmt.Sprint(err), "is not a time") { // PostgreSQL's cast refuses February 30
					assert.ErrorContains(t, err, fmt.Sprintf("task \"odd\" has the start time %q, which version 1 never wrote", odd))
				}
				assert.Equal(t, map[string]string{sqldb.SQLite: "TEXT", sqldb.Postgres: "text"}[driver], columnType(t, s, "started"),
					"nothing was changed")
			}
		})
	}

	pg := emptyStores(t)[sqldb.Postgres]
	// PostgreSQL 15's advice: a schema of the role's own, first in the
	// search path, with another application's tasks in public.
	_, err := pg.db.Exec(version1)
	require.NoError(t, err)
	_, err = pg.db.Exec(`CREATE SCHEMA gz`)
	require.NoError(t, err)
	conn, err := pg.db.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), `SET search_path = gz, public`)
	require.NoError(t, err)
	tx, err := conn.BeginTx(context.Background(), nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	found, err := readVersion(context.Background(), tx, sqldb.Postgres)
	require.NoError(t, err)
	assert.Equal(t, 0, found, "public.tasks is another application's")
}

// Found in review: an upgrade queued behind a long transaction on the
// tasks table would queue every task write behind itself. It gives up
// after its lock_timeout instead, changing nothing, and succeeds once run
// again with the table free.
func TestAnUpgradeGivesUpOnALockedTable(t *testing.T) {
	s := emptyStores(t)[sqldb.Postgres]
	ctx := context.Background()
	_, err := s.db.Exec(version1)
	require.NoError(t, err)
	reader, err := s.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = reader.Rollback() }()
	var n int
	require.NoError(t, reader.QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&n)) // holds ACCESS SHARE until it ends

	bounded, cancel := context.WithTimeout(ctx, testkit.Wait)
	defer cancel()
	_, err = Migrate(bounded, s.db, sqldb.Postgres, true)
	require.ErrorContains(t, err, "the tasks table stayed locked for 2s by another transaction; nothing was changed; run it again")
	assert.Equal(t, "text", columnType(t, s, "started"))

	require.NoError(t, reader.Commit())
	found, err := Migrate(bounded, s.db, sqldb.Postgres, true)
	require.NoError(t, err)
	assert.Equal(t, 1, found)
}

// A statement_timeout or lock_timeout that a role or database sets (as
// managed PostgreSQL services do) cuts neither an upgrade nor its wait for
// the migration lock short: a replica that waits behind another's long
// upgrade goes on waiting. Another session holds the lock, so the wait is
// certain, not a matter of timing; the test waits until the upgrade has
// waited longer than both the database's timeouts and migrateLockTimeout.
// The database's timeouts are migrateLockTimeout too, rather than a
// millisecond: the statements before the upgrade lifts them, and the
// test's own, must fit them on a loaded machine.
func TestAnUpgradeIgnoresTheDatabasesStatementTimeout(t *testing.T) {
	s := emptyStores(t)[sqldb.Postgres]
	ctx, cancel := context.WithTimeout(context.Background(), 6*testkit.Wait)
	defer cancel()
	_, err := s.db.Exec(version1)
	require.NoError(t, err)
	_, err = s.db.Exec(`INSERT INTO tasks SELECT 't' || i, 'p', 'm', 'x', 'ok', '', NULL, '2026-01-02T03:04:05.5Z', 1 FROM generate_series(1, 200000) i`)
	require.NoError(t, err)
	holder, err := s.db.Conn(ctx) // opened before the database's timeouts are set
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLock)
	require.NoError(t, err)
	var name string
	require.NoError(t, holder.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name))
	_, err = holder.ExecContext(ctx, `ALTER DATABASE `+name+` SET statement_timeout = '`+migrateLockTimeout+`'`)
	require.NoError(t, err)
	_, err = holder.ExecContext(ctx, `ALTER DATABASE `+name+` SET lock_timeout = '`+migrateLockTimeout+`'`)
	require.NoError(t, err)
	db, err := openDB(t, s.dsn).DB() // new sessions get the settings
	require.NoError(t, err)
	var timeout string
	require.NoError(t, db.QueryRow(`SHOW statement_timeout`).Scan(&timeout))
	require.Equal(t, migrateLockTimeout, timeout)

	type result struct {
		found int
		err   error
	}
	migrated := testkit.Go(func() result {
		found, err := Migrate(ctx, db, sqldb.Postgres, true)
		return result{found, err}
	})
	deadline := time.After(testkit.Wait)
	for waited := false; !waited; {
		select {
		case r := <-migrated:
			t.Fatalf("migrate returned while another session held the migration lock: %d, %v", r.found, r.err)
		case <-deadline:
			t.Fatalf("migrate did not wait for the migration lock for %s within %v", migrateLockTimeout, testkit.Wait)
		case <-time.After(10 * time.Millisecond):
		}
		require.NoError(t, holder.QueryRowContext(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
			AND clock_timestamp() - query_start > $1::interval + interval '500 milliseconds'`, migrateLockTimeout).Scan(&waited))
	}
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrateLock)
	require.NoError(t, err)

	r := testkit.Receive(t, migrated, "migrate, once the lock is free")
	require.NoError(t, r.err)
	assert.Equal(t, 1, r.found)
	var typ string
	require.NoError(t, holder.QueryRowContext(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_name = 'tasks' AND column_name = 'started'`).Scan(&typ))
	assert.Equal(t, "timestamp with time zone", typ, "the upgrade ran")
	require.NoError(t, db.QueryRow(`SHOW statement_timeout`).Scan(&timeout))
	assert.Equal(t, migrateLockTimeout, timeout, "SET LOCAL ended with the upgrade")
}

// version2 is version 2's schema, as createSchema made it.
var version2 = map[string][]string{
	sqldb.Postgres: {tasksTable("tasks", "TIMESTAMPTZ", "DOUBLE PRECISION"), startedIndex, versionTable,
		`INSERT INTO gleitzeit_schema (id, version) VALUES (1, 2)`},
	sqldb.SQLite: {sqliteTasks("tasks"), startedIndex, versionTable, `INSERT INTO gleitzeit_schema (id, version) VALUES (1, 2)`},
}

// A store of version 2 is refused unless upgrade is asked for; upgraded,
// it keeps every task, and the tasks it had running, which name no
// replica and so could never be swept, are settled as interrupted, saying
// why. A task then names the replica that runs it. (That a replica runs
// on the upgraded store is package app's test, which has the replicas.)
func TestVersion2IsUpgradedAndItsRunningTasksSettled(t *testing.T) {
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			for _, step := range version2[driver] {
				_, err := s.db.Exec(step)
				require.NoError(t, err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for id, status := range map[string]string{"done": "ok", "left": "running"} {
				_, err := s.db.Exec(`INSERT INTO tasks (id, protocol, method, provider, status, error, output, started, duration_ms)
					VALUES ($1, 'p', 'm', 'x', $2, '', NULL, $3, 1.5)`, id, status, storeTime(at))
				require.NoError(t, err)
			}

			found, err := Migrate(ctx, s.db, driver, false)
			var se *SchemaError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, SchemaError{Found: 2, Want: SchemaVersion}, *se)
			assert.Equal(t, 2, found)
			var status string
			require.NoError(t, s.db.QueryRow(`SELECT status FROM tasks WHERE id = 'left'`).Scan(&status))
			assert.Equal(t, "running", status, "a refused schema is left as it was")

			found, err = Migrate(ctx, s.db, driver, true)
			require.NoError(t, err)
			assert.Equal(t, 2, found)
			r, err := Load(ctx, s.db, "left")
			require.NoError(t, err)
			assert.Equal(t, "interrupted", r.Status)
			assert.Contains(t, r.Error, "left running by a build older than schema version 3")
			assert.True(t, at.Equal(r.Started))
			r, err = Load(ctx, s.db, "done")
			require.NoError(t, err)
			assert.Equal(t, "ok", r.Status)
			assert.Empty(t, r.Replica)
			found, err = Migrate(ctx, s.db, driver, false)
			require.NoError(t, err)
			assert.Equal(t, SchemaVersion, found)

			require.NoError(t, Begin(ctx, s.db, Record{ID: "new", Protocol: "p", Method: "m", Status: "running", Started: at, Replica: "replica-1"}))
			r, err = Load(ctx, s.db, "new")
			require.NoError(t, err)
			assert.Equal(t, "replica-1", r.Replica)
		})
	}
}
