package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// The ids of the providers the service always runs.
const (
	storeID = "store"
	auditID = "audit"
)

// TaskRecord is a task and its outcome, as the store keeps it.
type TaskRecord struct {
	ID       string          `json:"id"`
	Protocol string          `json:"protocol"`
	Method   string          `json:"method"`
	Provider string          `json:"provider,omitempty"`
	Status   string          `json:"status"` // "running", then "ok", "error", "timeout", "rejected", "cancelled" or "unrecorded"
	Error    string          `json:"error,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	// Sent: the task was a notification, sent and not answered (202). The
	// store keeps its status, not this.
	Sent       bool      `json:"sent,omitempty"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
}

// errNoTask: no task with that id is stored.
var errNoTask = errors.New("no such task")

const schema = `CREATE TABLE IF NOT EXISTS tasks (
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

// migrateLock is the PostgreSQL advisory lock under which replicas create
// the schema: any number, fixed, that other users of the database are
// unlikely to take ("gleitzeit" in ASCII, trimmed to 63 bits).
const migrateLock int64 = 0x676c6569747a65

// migrate creates the tasks table if it is not there. On PostgreSQL it
// does so under a transaction-scoped advisory lock: replicas that start at
// the same moment on an empty database would otherwise race in CREATE
// TABLE IF NOT EXISTS, which PostgreSQL does not make safe across
// sessions (one fails with a unique violation, SQLSTATE 23505). The lock
// is released when the transaction ends, however it ends.
func migrate(ctx context.Context, db *sql.DB, driver string) error {
	if driver != sqldb.Postgres {
		if _, err := db.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("task store: create table: %w", err)
		}
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("task store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit, it does nothing
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("task store: migrate: take the migration lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("task store: create table: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("task store: migrate: %w", err)
	}
	return nil
}

// beginTask records a task as it is about to run, in db's transaction or
// on its own.
func beginTask(ctx context.Context, db execer, r TaskRecord) error {
	_, err := db.ExecContext(ctx,
		`INSERT INTO tasks (id, protocol, method, provider, status, error, output, started, duration_ms)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.Protocol, r.Method, r.Provider, r.Status, r.Error, nil, r.Started.UTC().Format(time.RFC3339Nano), r.DurationMS)
	if err != nil {
		return fmt.Errorf("task store: record task %s: %w", r.ID, err)
	}
	return nil
}

// finishTask records a task's outcome, in db's transaction or on its own.
func finishTask(ctx context.Context, db execer, r TaskRecord) error {
	var output any
	if len(r.Output) > 0 {
		output = string(r.Output)
	}
	res, err := db.ExecContext(ctx,
		`UPDATE tasks SET provider = $2, status = $3, error = $4, output = $5, duration_ms = $6 WHERE id = $1`,
		r.ID, r.Provider, r.Status, r.Error, output, r.DurationMS)
	if err != nil {
		return fmt.Errorf("task store: save task %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("task store: save task %s: it was not recorded when it began", r.ID)
	}
	return nil
}

// loadTask reads a task back.
func loadTask(ctx context.Context, db *sql.DB, id string) (TaskRecord, error) {
	var r TaskRecord
	var output sql.NullString
	var started string
	err := db.QueryRowContext(ctx,
		`SELECT id, protocol, method, provider, status, error, output, started, duration_ms FROM tasks WHERE id = $1`, id).
		Scan(&r.ID, &r.Protocol, &r.Method, &r.Provider, &r.Status, &r.Error, &output, &started, &r.DurationMS)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, errNoTask
	case err != nil:
		return r, fmt.Errorf("task store: load task %s: %w", id, err)
	}
	if output.Valid {
		r.Output = json.RawMessage(output.String)
	}
	r.Started, _ = time.Parse(time.RFC3339Nano, started)
	return r, nil
}
