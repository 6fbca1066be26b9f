// Package taskstore is the service's task store: every task and its
// outcome, in the table tasks of a SQLite file (by default) or a
// PostgreSQL database. It holds the records, the schema and its
// migrations, the group commit of records and the retention that deletes
// old ones. It takes a *sql.DB and the driver's name (sqldb.SQLite or
// sqldb.Postgres, whose statements differ) from package providers/sqldb,
// which opens the store as a provider; package app wires it.
//
// # Records
//
// A task is recorded twice: [Begin], as it is about to run, with the
// status "running" and the replica that runs it, and [Finish], with its
// outcome, only if the store still has it running: a task that another
// replica settled as interrupted, taking its replica for dead, keeps what
// it was answered ([ErrNotRunning]). [Load] reads a task back, or returns
// [ErrNoTask]. Times are written in UTC at a fixed width, so that on
// SQLite, which compares the text, text order is time order.
//
// # Schema
//
// [Migrate] brings the schema to [SchemaVersion] in one transaction:
//
//   - 1: the first releases' tasks table, with no version recorded and its
//     start time as RFC 3339 text.
//   - 2: the version table gleitzeit_schema; the start time a time type
//     (on SQLite, fixed-width UTC text); an index on it for retention.
//   - 3: the table gleitzeit_replicas, whose heartbeats say which replicas
//     run (package app writes it); each task names the replica that runs
//     it, and a partial index finds the running tasks by replica.
//
// An empty database gets the schema as the service starts. An older one
// is upgraded by the -migrate flag only, never by a start: an upgrade
// rewrites the tasks table and locks out the older build's replicas, so
// it is the operator's step, unbounded by a start timeout. A newer one is
// refused: writing to it could corrupt what the newer build keeps. Both
// are a [SchemaError], on which the service exits 2. On PostgreSQL a
// migration runs under an advisory lock, so that replicas starting at once
// on an empty database do not race in CREATE TABLE, and gives up rather
// than queue every task write behind a long transaction on the tasks
// table. The store is looked for in the schema PostgreSQL creates tables
// in, never along the rest of the search path.
//
// # Group commit
//
// The records of concurrent tasks commit together ([GroupCommit]), as
// databases group the flushes of their logs: one transaction, so one
// fsync, for many records, which is what a loaded store's throughput
// depends on. A task is still answered only once the transaction holding
// its record committed, so an answer that says a task was recorded is as
// true as with a commit of its own. The caller says how many batches may
// commit at once: the service commits one at a time on SQLite, whose one
// writer takes turns anyway, and several side by side on PostgreSQL. A
// record that fails fails alone: the others of its batch are committed.
//
// # Retention
//
// A [Retention] deletes the tasks that started longer ago than the
// retention, so that the store stays bounded: a sweep every 1/24 of the
// retention (an hour at most) at a random moment, in batches of 1,000
// tasks, each its own short transaction, resting between them at least as
// long as the last took, so that task writes keep at least half the
// database's time. On PostgreSQL one replica at a time sweeps: the one
// that holds a session advisory lock, released with its session if it
// dies.
package taskstore
