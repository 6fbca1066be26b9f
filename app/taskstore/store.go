package taskstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record is a task and its outcome, as the store keeps it. It is also what
// the service answers for a task, hence the JSON tags.
type Record struct {
	ID         string          `json:"id"`
	Protocol   string          `json:"protocol"`
	Method     string          `json:"method"`
	Provider   string          `json:"provider,omitempty"`
	Status     string          `json:"status"` // "running" while a replica runs it, then "ok", "error", "timeout", "rejected", "cancelled", "unrecorded" or "interrupted" (package app's replicas.go)
	Error      string          `json:"error,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Started    time.Time       `json:"started"`
	DurationMS float64         `json:"duration_ms"`
	// Replica is the replica that ran the task: another replica settles
	// it as "interrupted" if this one dies while it runs (package app's
	// replicas.go).
	Replica string `json:"replica,omitempty"`
}

// ErrNoTask is Load's error when no task with that id is stored: an
// answer of the store, not its failure (the service answers it with 404).
var ErrNoTask = errors.New("no such task")

// ErrNotRunning is Finish's error when a task's outcome found its record
// not running. The store answered, and works: the record is what is wrong,
// so callers must not take it for the store's failure.
var ErrNotRunning = errors.New("it was not recorded when it began, " +
	"or is no longer running in the store (settled as interrupted when this replica's heartbeat lapsed)")

// timeLayout is how the store writes a time: UTC, fixed width, so that
// text order is time order (SQLite compares the text), in a form both
// drivers read as a time (PostgreSQL rounds it to microseconds).
const timeLayout = "2006-01-02 15:04:05.000000000-07:00"

// storeTime is t as the store writes it.
func storeTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Begin records a task as it is about to run, in db's transaction or on
// its own, with r.Replica as the replica that runs it: a task that runs is
// in the store even if its replica dies before Finish, and the other
// replicas then settle it as interrupted.
func Begin(ctx context.Context, db Execer, r Record) error {
	_, err := db.ExecContext(ctx,
		`INSERT INTO tasks (id, protocol, method, provider, status, error, output, started, duration_ms, replica)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.ID, r.Protocol, r.Method, r.Provider, r.Status, r.Error, nil, storeTime(r.Started), r.DurationMS,
		sql.NullString{String: r.Replica, Valid: r.Replica != ""})
	if err != nil {
		return fmt.Errorf("task store: record task %s: %w", r.ID, err)
	}
	return nil
}

// Finish records a task's outcome, in db's transaction or on its own,
// if the store still has it running: one that another replica settled as
// interrupted, taking this one for dead, keeps what it was answered, and
// Finish returns ErrNotRunning.
func Finish(ctx context.Context, db Execer, r Record) error {
	var output any
	if len(r.Output) > 0 {
		output = string(r.Output)
	}
	res, err := db.ExecContext(ctx,
		`UPDATE tasks SET provider = $2, status = $3, error = $4, output = $5, duration_ms = $6 WHERE id = $1 AND status = 'running'`,
		r.ID, r.Provider, r.Status, r.Error, output, r.DurationMS)
	if err != nil {
		return fmt.Errorf("task store: save task %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("task store: save task %s: %w", r.ID, ErrNotRunning)
	}
	return nil
}

// Load reads a task back, or returns ErrNoTask.
func Load(ctx context.Context, db *sql.DB, id string) (Record, error) {
	var r Record
	var output sql.NullString
	err := db.QueryRowContext(ctx,
		`SELECT id, protocol, method, provider, status, error, output, started, duration_ms, COALESCE(replica, '') FROM tasks WHERE id = $1`, id).
		Scan(&r.ID, &r.Protocol, &r.Method, &r.Provider, &r.Status, &r.Error, &output, &r.Started, &r.DurationMS, &r.Replica)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, ErrNoTask
	case err != nil:
		return r, fmt.Errorf("task store: load task %s: %w", id, err)
	}
	if output.Valid {
		r.Output = json.RawMessage(output.String)
	}
	r.Started = r.Started.UTC()
	return r, nil
}
