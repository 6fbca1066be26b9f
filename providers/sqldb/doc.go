// Package sqldb provides a database/sql pool as a lifecycle provider, for
// SQLite (modernc.org/sqlite, pure Go: the embedded default) and
// PostgreSQL (pgx).
//
// # What it holds
//
// From Initialize to Cleanup, a *sql.DB and its connections. Initialize
// opens the pool and pings it, retrying with exponential backoff within its
// context, so a database that starts a little after the service does not
// fail the start. Cleanup closes the pool: it stops new queries, waits for
// those running to end, and closes every connection, within its context.
//
// # Secrets
//
// A DSN's password never appears in an error, a health message or a
// resource: messages name the driver, host, port, database and user.
package sqldb
