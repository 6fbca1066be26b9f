package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The drivers.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Defaults.
const (
	// DefaultConnectAttempts and DefaultConnectBackoff give a database that
	// is still starting about four seconds to accept connections, within
	// Initialize's own deadline.
	DefaultConnectAttempts = 6
	DefaultConnectBackoff  = 200 * time.Millisecond
	// DefaultMaxOpenConns bounds a PostgreSQL pool well below the server's
	// default max_connections of 100, so that several replicas fit.
	DefaultMaxOpenConns = 10
	// DefaultBusyTimeout is how long SQLite waits for a lock held by another
	// connection before it fails with SQLITE_BUSY.
	DefaultBusyTimeout = 5 * time.Second
)

// ErrClosed is returned by DB before Initialize and after Cleanup.
var ErrClosed = errors.New("database pool is closed")

// Config describes one pool.
type Config struct {
	// ID names the provider; "sqldb" if empty.
	ID string
	// Driver is SQLite or Postgres; if empty, it is read from the DSN: a
	// postgres:// or postgresql:// URL, or a libpq key=value string, is
	// PostgreSQL; anything else is a SQLite file.
	Driver string
	// DSN is a SQLite file path (or file: URI), or a PostgreSQL URL or
	// key=value string.
	DSN string
	// MaxOpenConns bounds the pool: DefaultMaxOpenConns for PostgreSQL, and
	// 1 for SQLite, whose writers serialize anyway; one connection spares
	// them SQLITE_BUSY.
	MaxOpenConns int
	// ConnMaxIdleTime closes connections idle that long; 5 minutes if zero.
	ConnMaxIdleTime time.Duration
	// ConnectAttempts and ConnectBackoff govern Initialize's pings: so many
	// attempts at most, the first wait ConnectBackoff, then growing.
	ConnectAttempts int
	ConnectBackoff  time.Duration
	// ApplicationName is PostgreSQL's application_name for the pool's
	// connections, which pg_stat_activity shows; "gleitzeit-" + ID if empty.
	ApplicationName string
}

// DB is a database pool.
type DB struct {
	cfg    Config
	open   func() (*sql.DB, error) // opens the pool, lazily: connects on first use
	target string                  // what the DSN points at, without secrets

	mu sync.Mutex // guards db
	db *sql.DB
}

var (
	_ lifecycle.Initializer   = (*DB)(nil)
	_ lifecycle.Cleaner       = (*DB)(nil)
	_ lifecycle.HealthChecker = (*DB)(nil)
)

// New checks cfg, parsing its DSN, and returns a pool that holds nothing
// until Initialize. A DSN that does not parse is an error that says why
// and never quotes the password.
func New(cfg Config) (*DB, error) {
	if cfg.ID == "" {
		cfg.ID = "sqldb"
	}
	if cfg.DSN == "" {
		return nil, fmt.Errorf("sqldb %q: Config.DSN is empty", cfg.ID)
	}
	if cfg.Driver == "" {
		cfg.Driver = guessDriver(cfg.DSN)
	}
	if cfg.MaxOpenConns < 0 || cfg.ConnectAttempts < 0 || cfg.ConnectBackoff < 0 || cfg.ConnMaxIdleTime < 0 {
		return nil, fmt.Errorf("sqldb %q: negative pool or connect settings", cfg.ID)
	}
	if cfg.ConnectAttempts == 0 {
		cfg.ConnectAttempts = DefaultConnectAttempts
	}
	if cfg.ConnectBackoff == 0 {
		cfg.ConnectBackoff = DefaultConnectBackoff
	}
	if cfg.ConnMaxIdleTime == 0 {
		cfg.ConnMaxIdleTime = 5 * time.Minute
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "gleitzeit-" + cfg.ID
	}
	d := &DB{cfg: cfg}
	switch cfg.Driver {
	case Postgres:
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("sqldb %q: PostgreSQL DSN: %s", cfg.ID, lifecycle.Redact(err.Error()))
		}
		if _, set := pc.RuntimeParams["application_name"]; !set {
			pc.RuntimeParams["application_name"] = cfg.ApplicationName
		}
		cfg.ApplicationName = pc.RuntimeParams["application_name"]
		d.target = fmt.Sprintf("postgres://%s@%s/%s", pc.User, net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))), pc.Database)
		if cfg.MaxOpenConns == 0 {
			cfg.MaxOpenConns = DefaultMaxOpenConns
		}
		d.open = func() (*sql.DB, error) { return stdlib.OpenDB(*pc), nil }
	case SQLite:
		dsn, path, err := sqliteDSN(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("sqldb %q: %w", cfg.ID, err)
		}
		d.target = "sqlite:" + path
		if cfg.MaxOpenConns == 0 {
			cfg.MaxOpenConns = 1
		}
		d.open = func() (*sql.DB, error) {
			if dir := filepath.Dir(path); path != ":memory:" {
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					return nil, fmt.Errorf("directory %q of SQLite file %q does not exist", dir, path)
				}
			}
			return sql.Open("sqlite", dsn)
		}
	default:
		return nil, fmt.Errorf("sqldb %q: unknown driver %q (want %q or %q)", cfg.ID, cfg.Driver, SQLite, Postgres)
	}
	d.cfg = cfg
	return d, nil
}

// pgKeyword finds a libpq key/value setting ("host=db", "password = x"),
// which no SQLite file name is made of.
var pgKeyword = regexp.MustCompile(`(?i)(^|\s)(host|hostaddr|port|dbname|user|password|passfile|sslmode|service|connect_timeout|application_name|target_session_attrs)\s*=`)

func guessDriver(dsn string) string {
	lower := strings.ToLower(dsn)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return Postgres
	case pgKeyword.MatchString(dsn):
		return Postgres
	}
	return SQLite
}

// Target says what the pool points at, without secrets: the PostgreSQL
// user, host and database, or the SQLite file.
func (d *DB) Target() string { return d.target }

// sqliteDSN turns a path or a file: URI into modernc's DSN, with the
// pragmas a service wants: a busy timeout, WAL (readers do not block the
// writer) and foreign keys. It returns the file's path too.
func sqliteDSN(dsn string) (string, string, error) {
	path, query := dsn, url.Values{}
	if rest, ok := strings.CutPrefix(dsn, "file:"); ok {
		p, q, _ := strings.Cut(rest, "?")
		vals, err := url.ParseQuery(q)
		if err != nil {
			return "", "", fmt.Errorf("SQLite DSN: query: %w", err)
		}
		path, query = p, vals
	}
	if path == "" {
		return "", "", errors.New("SQLite DSN names no file")
	}
	if scheme, _, ok := strings.Cut(path, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
		// A URL of another database ("mysql://user:pass@host/db") is not a
		// file name: say so rather than look for its directory, and keep
		// its password out of the message.
		return "", "", fmt.Errorf("DSN %q: scheme %q is neither PostgreSQL (postgres://) nor a SQLite file", lifecycle.Redact(dsn), scheme)
	}
	if at := strings.LastIndex(path, "@"); at > 0 && strings.Contains(path[:at], ":") {
		// "user:password@host/db" with its scheme missing or mistyped
		// ("postgres//…") is no file name either, and the path would be
		// quoted in errors and health: refuse it, quoting nothing.
		return "", "", errors.New(`DSN has the form user:password@host, which is not a SQLite file name: a PostgreSQL DSN starts with "postgres://"`)
	}
	pragmas := strings.Join(query["_pragma"], ",")
	for _, p := range []string{
		fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		// Every commit reaches the disk before it returns: a caller told
		// that its record is committed may count on it after a crash.
		"synchronous(FULL)",
		"foreign_keys(1)",
	} {
		name, _, _ := strings.Cut(p, "(")
		if !strings.Contains(pragmas, name) {
			query.Add("_pragma", p)
		}
	}
	return "file:" + path + "?" + query.Encode(), path, nil
}

// ID returns the provider's id.
func (d *DB) ID() string { return d.cfg.ID }

// Driver returns SQLite or Postgres.
func (d *DB) Driver() string { return d.cfg.Driver }

// MaxOpenConns returns the pool's bound on open connections.
func (d *DB) MaxOpenConns() int { return d.cfg.MaxOpenConns }

// DB returns the pool, or [ErrClosed] before Initialize and after Cleanup.
func (d *DB) DB() (*sql.DB, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil, fmt.Errorf("sqldb %q: %w", d.cfg.ID, ErrClosed)
	}
	return d.db, nil
}

// Initialize opens the pool and pings it, retrying with backoff within ctx
// and ConnectAttempts. On failure the pool is closed again: nothing is
// held.
func (d *DB) Initialize(ctx context.Context) error {
	db, err := d.open()
	if err != nil {
		return fmt.Errorf("sqldb %q (%s): %w", d.cfg.ID, d.target, lifecycle.RedactError(err))
	}
	db.SetMaxOpenConns(d.cfg.MaxOpenConns)
	db.SetMaxIdleConns(d.cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(d.cfg.ConnMaxIdleTime)

	// last is the last attempt's error that says something about the
	// server: an attempt made after ctx ended fails with ctx's error alone,
	// which would hide why the earlier ones failed.
	var last error
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = d.cfg.ConnectBackoff, 2*time.Second
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		err := db.PingContext(ctx)
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		if err != nil && isPermanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(d.cfg.ConnectAttempts)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		_ = db.Close()
		if last != nil && !errors.Is(err, last) {
			err = fmt.Errorf("%w (last attempt: %w)", err, last)
		}
		return fmt.Errorf("sqldb %q (%s): connect: %w", d.cfg.ID, d.target, lifecycle.RedactError(err))
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db != nil {
		_ = db.Close()
		return fmt.Errorf("sqldb %q: already initialized", d.cfg.ID)
	}
	d.db = db
	return nil
}

// isPermanent reports errors that no retry mends: bad credentials, a
// missing database, a file that cannot be opened.
func isPermanent(err error) bool {
	msg := err.Error()
	for _, s := range []string{"password authentication failed", "does not exist", "no pg_hba.conf entry", "unable to open database file"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Cleanup closes the pool within ctx: new queries fail at once, idle
// connections are closed, and Cleanup waits for the ones in use to be
// released and closed too; database/sql's Close does not. It is
// idempotent, and safe after a failed Initialize. If ctx ends first, it
// says how many connections are still in use; they close when released.
func (d *DB) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	db := d.db
	d.db = nil
	d.mu.Unlock()
	if db == nil {
		return nil
	}
	err := db.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for db.Stats().OpenConnections > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("sqldb %q (%s): close: %d connections still in use: %w",
				d.cfg.ID, d.target, db.Stats().OpenConnections, ctx.Err())
		}
	}
	if err != nil {
		return fmt.Errorf("sqldb %q (%s): close: %w", d.cfg.ID, d.target, lifecycle.RedactError(err))
	}
	return nil
}

// HealthCheck pings the database and reports the pool: "driver",
// "target" (without secrets), "open_connections", "in_use", "idle",
// "max_open", "wait_count" and "wait_seconds".
func (d *DB) HealthCheck(ctx context.Context) lifecycle.Health {
	d.mu.Lock()
	db := d.db
	d.mu.Unlock()
	res := map[string]any{"driver": d.cfg.Driver, "target": d.target}
	if db == nil {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "pool is closed", Resources: res}
	}
	st := db.Stats()
	res["open_connections"] = st.OpenConnections
	res["in_use"] = st.InUse
	res["idle"] = st.Idle
	res["max_open"] = st.MaxOpenConnections
	res["wait_count"] = st.WaitCount
	res["wait_seconds"] = st.WaitDuration.Seconds()
	if err := db.PingContext(ctx); err != nil {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "ping: " + lifecycle.Redact(err.Error()), Resources: res}
	}
	if st.MaxOpenConnections > 0 && st.InUse >= st.MaxOpenConnections && st.WaitCount > 0 {
		return lifecycle.Health{Status: lifecycle.StatusDegraded, Message: "every connection is in use and callers wait", Resources: res}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "ping ok", Resources: res}
}
