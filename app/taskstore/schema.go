package taskstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// SchemaVersion is the version of the store's schema this build runs on:
// what Migrate brings a store to, and what -migrate's log lines name.
//
//   - 1: the first releases' tasks table, with no version recorded, its
//     start time as RFC 3339 text (and, on PostgreSQL, duration_ms a
//     single-precision REAL).
//   - 2: the version table; started a real time type (TIMESTAMPTZ on
//     PostgreSQL; TIMESTAMP on SQLite, which has no time type and keeps
//     fixed-width UTC text that sorts as time does); an index on started
//     for retention; duration_ms DOUBLE PRECISION on PostgreSQL.
//   - 3: the replicas table, whose heartbeats say which replicas run
//     (package app's replicas.go); each task names the replica that runs
//     it, and an index finds the running tasks by replica.
const SchemaVersion = 3

// SchemaError says the store's schema is one this build does not run on:
// newer (a newer build upgraded it, and writing to it could corrupt what
// that build keeps), or older. An older schema is upgraded by -migrate
// only, never by the service as it starts: an upgrade rewrites the tasks
// table, which takes seconds a million tasks and, on PostgreSQL, locks
// out the older build's replicas still running on it, so it is the
// operator's step, run once, unbounded by a start timeout or a liveness
// probe. The service exits 2 on it, as on a wrong configuration: no
// restart would resolve it, only the operator.
type SchemaError struct {
	Found, Want int
	// Problem, if set, is what else is wrong: a store changed by hand, or
	// a database the service may not create its tables in.
	Problem string
}

func (e *SchemaError) Error() string {
	if e.Problem != "" {
		return "task store: " + e.Problem
	}
	if e.Found > e.Want {
		return fmt.Sprintf("task store: the database's schema is version %d, newer than this build's %d: "+
			"a newer build upgraded it; run that build (going back needs a restore from before the upgrade)", e.Found, e.Want)
	}
	return fmt.Sprintf("task store: the database's schema is version %d, older than this build's %d: "+
		"upgrade it once with this build's -migrate (see the README, \"Running several replicas\")", e.Found, e.Want)
}

// migrateLock is the PostgreSQL advisory lock under which replicas read
// and change the schema: any number, fixed, that other users of the
// database are unlikely to take ("gleitzeit" in ASCII, trimmed to 63
// bits).
const migrateLock int64 = 0x676c6569747a65

// Migrate brings the store's schema to SchemaVersion, in one transaction,
// and returns the version it found (0: an empty database). driver is the
// store's driver name (sqldb.Postgres or sqldb.SQLite): the statements
// differ.
//
// An empty database gets the schema. The schema at this build's version is
// left as it is. A newer one is refused with a [SchemaError]. An older one
// is upgraded only if upgrade is true, and refused otherwise.
//
// On PostgreSQL it runs under a transaction-scoped advisory lock: replicas
// that start at the same moment on an empty database would otherwise race
// in CREATE TABLE, which PostgreSQL does not make safe across sessions (one
// fails with a unique violation, SQLSTATE 23505). The lock is released
// when the transaction ends, however it ends, and PostgreSQL's DDL is
// transactional: a failed upgrade leaves the schema as it was. A
// lock_timeout makes an upgrade that would queue behind a long transaction
// on the tasks table, and so queue every task write behind itself, fail
// instead, to be run again.
func Migrate(ctx context.Context, db *sql.DB, driver string, upgrade bool) (found int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("task store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit, it does nothing
	if driver == sqldb.Postgres {
		// Neither a statement_timeout nor a lock_timeout that a role or
		// database may set applies: an upgrade takes what it takes, and
		// SIGTERM ends it. Both are lifted before the migration lock is
		// taken, because waiting for it is a statement too, and a replica
		// that waits behind another's long upgrade must not be cut short.
		// Only then is migrateLockTimeout set, for the tasks table.
		for _, set := range []string{`SET LOCAL statement_timeout = 0`, `SET LOCAL lock_timeout = 0`} {
			if _, err := tx.ExecContext(ctx, set); err != nil {
				return 0, fmt.Errorf("task store: migrate: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
			return 0, fmt.Errorf("task store: migrate: take the migration lock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+migrateLockTimeout+`'`); err != nil {
			return 0, fmt.Errorf("task store: migrate: %w", err)
		}
	}
	found, err = readVersion(ctx, tx, driver)
	if err != nil {
		return 0, err
	}
	var steps []string
	switch {
	case found == SchemaVersion:
		return found, nil
	case found > SchemaVersion, found > 0 && !upgrade:
		return found, &SchemaError{Found: found, Want: SchemaVersion}
	case found == 0:
		steps = createSchema[driver]
	case found == 1:
		if err := checkVersion1(ctx, tx, driver); err != nil {
			return found, err
		}
		steps = append(slices.Clone(upgradeFrom1[driver]), upgradeFrom2[driver]...)
	default: // found == 2
		steps = upgradeFrom2[driver]
	}
	doing := fmt.Sprintf("migrate from version %d", found)
	if found == 0 {
		doing = "create the schema"
	}
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			switch pgCode(err) {
			case "55P03": // lock_not_available, which lock_timeout raises
				return found, fmt.Errorf("task store: %s: the tasks table stayed locked for %s "+
					"by another transaction; nothing was changed; run it again: %w", doing, migrateLockTimeout, err)
			case "3F000", "42501": // no schema to create in; no right to create in it
				return found, &SchemaError{Found: found, Want: SchemaVersion, Problem: fmt.Sprintf(
					"%s: the database refuses it (%v): give the role a schema it may create tables in, first in its search_path", doing, err)}
			case "22007", "22008": // a start time that is no time
				return found, &SchemaError{Found: found, Want: SchemaVersion, Problem: fmt.Sprintf(
					"%s: a task's start time is not a time (%v); nothing was changed: correct or delete it, then migrate again", doing, err)}
			}
			return found, fmt.Errorf("task store: %s: %w", doing, err)
		}
	}
	record := `INSERT INTO gleitzeit_schema (id, version) VALUES (1, $1)`
	if found >= 2 { // the version table is there already
		record = `UPDATE gleitzeit_schema SET version = $1 WHERE id = 1`
	}
	if _, err := tx.ExecContext(ctx, record, SchemaVersion); err != nil {
		return found, fmt.Errorf("task store: migrate: record the version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return found, fmt.Errorf("task store: migrate: %w", err)
	}
	return found, nil
}

// migrateLockTimeout bounds how long an upgrade waits for the tasks table:
// task writes queue behind it meanwhile, and must not spend their own 5 s.
const migrateLockTimeout = "2s"

// pgCode is a PostgreSQL error's SQLSTATE, or "".
func pgCode(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}

// readVersion returns the schema's version: the version table's, or 1 if
// there is only the tasks table of the first releases, or 0 if neither.
//
// On PostgreSQL it looks in the schema that CREATE TABLE creates in
// (current_schema()), not along the whole search_path: another
// application's tasks table, or another deployment's version table, in
// public must be neither taken for this store's nor changed.
func readVersion(ctx context.Context, tx *sql.Tx, driver string) (int, error) {
	exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1`
	if driver == sqldb.Postgres {
		exists = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`
	}
	has := func(table string) (bool, error) {
		var n int
		if err := tx.QueryRowContext(ctx, exists, table).Scan(&n); err != nil {
			return false, fmt.Errorf("task store: read the schema's version: %w", err)
		}
		return n > 0, nil
	}
	versioned, err := has("gleitzeit_schema")
	if err != nil {
		return 0, err
	}
	if versioned {
		var v int
		err := tx.QueryRowContext(ctx, `SELECT version FROM gleitzeit_schema WHERE id = 1`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, &SchemaError{Want: SchemaVersion, Problem: "the table gleitzeit_schema holds no version: it was changed by hand"}
		}
		if err != nil {
			return 0, fmt.Errorf("task store: read the schema's version: %w", err)
		}
		if v < 1 {
			return 0, &SchemaError{Found: v, Want: SchemaVersion, Problem: fmt.Sprintf(
				"the table gleitzeit_schema says version %d, which no build writes: it was changed by hand", v)}
		}
		if tasks, err := has("tasks"); err != nil || !tasks {
			if err == nil {
				err = &SchemaError{Found: v, Want: SchemaVersion, Problem: fmt.Sprintf(
					"the table gleitzeit_schema says version %d, but there is no tasks table: it was changed by hand", v)}
			}
			return 0, err
		}
		return v, nil
	}
	tasks, err := has("tasks")
	if err != nil || !tasks {
		return 0, err
	}
	return 1, nil
}

// checkVersion1 refuses to upgrade a version 1 store holding a start time
// that version 1 never wrote (it wrote time.RFC3339Nano in UTC): the
// upgrade could not convert it, and SQLite would keep garbage rather than
// fail.
func checkVersion1(ctx context.Context, tx *sql.Tx, driver string) error {
	// SQLite: the form, digit by digit, and a date and time that exist
	// (strftime turns February 30 into March 2, and hour 25 into NULL).
	// PostgreSQL: the form; its cast refuses what is no time.
	odd := `SELECT id, started FROM tasks WHERE NOT (
		started GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
		AND (length(started) = 20 OR (substr(started, 20, 1) = '.' AND length(started) BETWEEN 22 AND 30
			AND substr(started, 21, length(started) - 21) NOT GLOB '*[^0-9]*'))
		AND strftime('%Y-%m-%dT%H:%M:%S', substr(started, 1, 19)) IS substr(started, 1, 19)
	) LIMIT 1`
	if driver == sqldb.Postgres {
		odd = `SELECT id, started FROM tasks WHERE started !~
			'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$' LIMIT 1`
	}
	var id, started string
	err := tx.QueryRowContext(ctx, odd).Scan(&id, &started)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("task store: migrate: check the start times: %w", err)
	}
	return &SchemaError{Found: 1, Want: SchemaVersion, Problem: fmt.Sprintf("migrate from version 1: task %q has the start time %q, which version 1 never wrote "+
		"(it wrote RFC 3339 in UTC, such as 2026-01-02T03:04:05.5Z); nothing was changed: correct or delete such tasks, then migrate again", id, started)}
}

// versionTable holds one row: the schema's version.
const versionTable = `CREATE TABLE gleitzeit_schema (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
)`

// startedIndex serves retention, which deletes by start time. Tasks are
// read by id, which the primary key serves.
const startedIndex = `CREATE INDEX tasks_started ON tasks (started)`

// createSchema is SchemaVersion's schema, by driver: version 2's, and
// what version 3 adds to it.
var createSchema = map[string][]string{
	sqldb.Postgres: append([]string{tasksTable("tasks", "TIMESTAMPTZ", "DOUBLE PRECISION"), startedIndex, versionTable}, upgradeFrom2[sqldb.Postgres]...),
	sqldb.SQLite:   append([]string{sqliteTasks("tasks"), startedIndex, versionTable}, upgradeFrom2[sqldb.SQLite]...),
}

// tasksTable is version 2's tasks table, named name, with the driver's
// types for a time and a float.
func tasksTable(name, timeType, floatType string) string {
	return `CREATE TABLE ` + name + ` (
		id          TEXT PRIMARY KEY,
		protocol    TEXT NOT NULL,
		method      TEXT NOT NULL,
		provider    TEXT NOT NULL,
		status      TEXT NOT NULL,
		error       TEXT NOT NULL,
		output      TEXT,
		started     ` + timeType + ` NOT NULL,
		duration_ms ` + floatType + ` NOT NULL
	)`
}

// sqliteTasks is version 2's tasks table on SQLite. TIMESTAMP is what
// modernc.org/sqlite reads back as a time.Time.
func sqliteTasks(name string) string { return tasksTable(name, "TIMESTAMP", "REAL") }

// upgradeFrom1 takes version 1 to SchemaVersion, by driver. Version 1 kept
// started as time.RFC3339Nano in UTC ("2026-11-27T20:45:01.5Z").
var upgradeFrom1 = map[string][]string{
	// Replicas of the first releases keep working on the result: they
	// write RFC 3339 text, which PostgreSQL casts, and database/sql reads a
	// time back into their strings as RFC 3339.
	sqldb.Postgres: {
		`ALTER TABLE tasks
			ALTER COLUMN started TYPE TIMESTAMPTZ USING started::timestamptz,
			ALTER COLUMN duration_ms TYPE DOUBLE PRECISION`,
		startedIndex, versionTable,
	},
	// SQLite cannot change a column's type: the table is copied, its
	// times rewritten as storeTime writes them (fixed width, so that text
	// order is time order).
	sqldb.SQLite: {
		sqliteTasks("tasks_v2"),
		`INSERT INTO tasks_v2 (id, protocol, method, provider, status, error, output, started, duration_ms)
		 SELECT id, protocol, method, provider, status, error, output,
			replace(substr(started, 1, 19), 'T', ' ') || '.' ||
			substr(CASE WHEN length(started) > 20 THEN substr(started, 21, length(started) - 21) ELSE '' END || '000000000', 1, 9) ||
			'+00:00',
			duration_ms
		 FROM tasks`,
		`DROP TABLE tasks`,
		`ALTER TABLE tasks_v2 RENAME TO tasks`,
		startedIndex, versionTable,
	},
}

// upgradeFrom2 takes version 2 to 3, by driver; createSchema runs it
// too. The tasks that version 2 left running name no replica, so no sweep
// would ever settle them: the upgrade settles them as interrupted. One
// that a replica of the older build is still running gets its outcome all
// the same, since that build saves an outcome whatever the status says.
var upgradeFrom2 = map[string][]string{
	sqldb.Postgres: {addReplicaColumn, settleVersion2Tasks, runningIndex, replicasTable("TIMESTAMPTZ")},
	sqldb.SQLite:   {addReplicaColumn, settleVersion2Tasks, runningIndex, replicasTable("TEXT")},
}

// addReplicaColumn: the replica that runs a task (see package app's
// replicas.go). NULL in the tasks of older builds.
const addReplicaColumn = `ALTER TABLE tasks ADD COLUMN replica TEXT`

const settleVersion2Tasks = `UPDATE tasks SET status = 'interrupted',
	error = 'left running by a build older than schema version 3, which names no replica: settled when the schema was upgraded'
	WHERE status = 'running'`

// runningIndex finds a replica's running tasks: a partial index, so it
// holds only the tasks in flight, not the millions that ended.
const runningIndex = `CREATE INDEX tasks_running ON tasks (replica) WHERE status = 'running'`

// replicasTable holds a row for each replica that runs, with the moment
// its heartbeat lapses, by the database's clock: TIMESTAMPTZ on
// PostgreSQL; on SQLite, text that sorts as time does (see package app's
// replicaClock). Its rows are the replicas' to write; the store only
// creates it, with the schema version that brought it.
func replicasTable(timeType string) string {
	return `CREATE TABLE gleitzeit_replicas (
		id      TEXT PRIMARY KEY,
		host    TEXT NOT NULL,
		started ` + timeType + ` NOT NULL,
		expires ` + timeType + ` NOT NULL
	)`
}

// PeekSchema reads the schema's version and how many tasks the store
// holds, changing nothing: for the log line before an upgrade, which says
// how many tasks it rewrites while the tasks table stays locked.
func PeekSchema(ctx context.Context, db *sql.DB, driver string) (version int, tasks int64, err error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	if version, err = readVersion(ctx, tx, driver); err != nil || version == 0 {
		return version, 0, err
	}
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&tasks)
	return version, tasks, err
}
