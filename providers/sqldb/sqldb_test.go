package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// pg is the PostgreSQL server of this package's tests.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	pg, err = pgtest.Start()
	if err != nil {
		// The PostgreSQL tests fail rather than skip: say why, and stop.
		fmt.Fprintln(os.Stderr, "cannot start PostgreSQL for the tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func initialized(t *testing.T, cfg sqldb.Config) *sqldb.DB {
	t.Helper()
	d, err := sqldb.New(cfg)
	require.NoError(t, err)
	require.NoError(t, d.Initialize(context.Background()))
	t.Cleanup(func() { _ = d.Cleanup(context.Background()) })
	return d
}

func pool(t *testing.T, d *sqldb.DB) *sql.DB {
	t.Helper()
	db, err := d.DB()
	require.NoError(t, err)
	return db
}

// What was committed before Cleanup is there after reopening the file, and
// the pool's files are closed.
func TestSQLiteCommittedDataSurvivesCleanup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	before := testkit.OpenFDs(t)
	d := initialized(t, sqldb.Config{DSN: path})
	assert.Equal(t, sqldb.SQLite, d.Driver())
	db := pool(t, d)
	_, err := db.Exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := db.Exec(`INSERT INTO tasks (id, name) VALUES (?, ?)`, i, fmt.Sprint("task-", i))
			assert.NoError(t, err)
		})
	}
	testkit.Within(t, "the queries", wg.Wait)
	require.NoError(t, d.Cleanup(context.Background()))
	assert.Equal(t, before, testkit.OpenFDs(t), "every file of the pool is closed")
	_, err = d.DB()
	require.ErrorIs(t, err, sqldb.ErrClosed)

	again := initialized(t, sqldb.Config{DSN: "file:" + path})
	var n int
	require.NoError(t, pool(t, again).QueryRow(`SELECT count(*) FROM tasks`).Scan(&n))
	assert.Equal(t, 20, n)
}

func TestSQLiteMissingDirectoryIsNamed(t *testing.T) {
	d, err := sqldb.New(sqldb.Config{DSN: "/no/such/dir/store.db"})
	require.NoError(t, err)
	err = d.Initialize(context.Background())
	require.ErrorContains(t, err, `directory "/no/such/dir" of SQLite file "/no/such/dir/store.db" does not exist`)
	require.NoError(t, d.Cleanup(context.Background()), "safe after a failed Initialize")
}

// After Cleanup, pg_stat_activity shows no connection of the provider's.
func TestPostgresCleanupLeavesNoConnection(t *testing.T) {
	admin, err := sql.Open("pgx", pg.DSN("postgres"))
	require.NoError(t, err)
	defer admin.Close()
	connections := func(app string) int {
		var n int
		require.NoError(t, admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n))
		return n
	}

	d := initialized(t, sqldb.Config{ID: "store", DSN: pg.DSN("postgres")})
	assert.Equal(t, sqldb.Postgres, d.Driver())
	db := pool(t, d)
	var wg sync.WaitGroup
	for range 5 { // hold several connections at once
		wg.Go(func() {
			_, err := db.Exec(`SELECT pg_sleep(0.05)`)
			assert.NoError(t, err)
		})
	}
	testkit.Within(t, "the queries", wg.Wait)
	require.Positive(t, connections("gleitzeit-store"), "the check sees the pool's connections")

	require.NoError(t, d.Cleanup(context.Background()))
	require.Eventually(t, func() bool { return connections("gleitzeit-store") == 0 }, testkit.Wait, 10*time.Millisecond,
		"connections left: %d", connections("gleitzeit-store"))
}

// Cleanup waits for a query in flight within its context, and returns when
// the context ends, saying what is still in use.
func TestPostgresCleanupIsBoundedByItsContext(t *testing.T) {
	// The query waits for an advisory lock that the test holds: it runs
	// until the test lets it go, however long Cleanup takes.
	admin, err := sql.Open("pgx", pg.DSN("postgres"))
	require.NoError(t, err)
	defer admin.Close()
	holder, err := admin.Conn(context.Background())
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(context.Background(), `SELECT pg_advisory_lock(20)`)
	require.NoError(t, err)

	d := initialized(t, sqldb.Config{DSN: pg.DSN("postgres")})
	db := pool(t, d)
	running := testkit.Go(func() error { _, err := db.Exec(`SELECT pg_advisory_xact_lock(20)`); return err })
	require.Eventually(t, func() bool { return db.Stats().InUse == 1 }, testkit.Wait, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = d.Cleanup(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "1 connections still in use")
	_, err = holder.ExecContext(context.Background(), `SELECT pg_advisory_unlock(20)`)
	require.NoError(t, err)
	require.NoError(t, testkit.Receive(t, running, "the query in flight"), "a running query finishes")
	require.Eventually(t, func() bool { return db.Stats().OpenConnections == 0 }, testkit.Wait, 10*time.Millisecond)
}

func TestPostgresBadInputNamesTheProblemNotThePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	closedPort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	wrongPassword := strings.Replace(pg.DSN("postgres"), pg.Password, secret, 1)

	t.Run("malformed DSN", func(t *testing.T) {
		_, err := sqldb.New(sqldb.Config{DSN: "postgres://app:" + secret + "@db:notaport/app"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "PostgreSQL DSN")
		assert.NotContains(t, err.Error(), secret)
	})
	t.Run("a scheme missing or mistyped", func(t *testing.T) {
		for _, dsn := range []string{"app:" + secret + "@db:5432/app", "postgres//app:" + secret + "@db/app", "postgres:/app:" + secret + "@db/app"} {
			_, err := sqldb.New(sqldb.Config{DSN: dsn})
			require.Error(t, err, dsn)
			assert.Contains(t, err.Error(), `a PostgreSQL DSN starts with "postgres://"`)
			assert.NotContains(t, err.Error(), secret)
		}
	})
	t.Run("key/value forms are PostgreSQL's", func(t *testing.T) {
		for _, dsn := range []string{
			"host = 127.0.0.1 port = 5432 password = " + secret + " dbname = app",
			"user=app password=" + secret + " port=5432 sslmode=disable",
		} {
			d, err := sqldb.New(sqldb.Config{DSN: dsn})
			require.NoError(t, err, "parsed as PostgreSQL")
			assert.Equal(t, sqldb.Postgres, d.Driver())
			assert.NotContains(t, d.Target(), secret)
		}
	})
	t.Run("unreachable server", func(t *testing.T) {
		d, err := sqldb.New(sqldb.Config{
			DSN:             fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/app?sslmode=disable", secret, closedPort),
			ConnectAttempts: 3, ConnectBackoff: 10 * time.Millisecond,
		})
		require.NoError(t, err)
		err = d.Initialize(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("127.0.0.1:%d", closedPort))
		assert.Contains(t, err.Error(), "connection refused")
		assert.NotContains(t, err.Error(), secret)
		h := d.HealthCheck(context.Background())
		assert.NotContains(t, fmt.Sprint(h), secret)
	})
	t.Run("unreachable server, bounded by the context", func(t *testing.T) {
		// A server that accepts and never answers: the context ends once
		// an attempt has reached it, so that there is an attempt to name
		// (a context that ends before the first attempt leaves none).
		mute, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer mute.Close()
		port := mute.Addr().(*net.TCPAddr).Port
		attempt := testkit.Go(func() net.Conn { c, _ := mute.Accept(); return c })
		d, err := sqldb.New(sqldb.Config{
			DSN:             fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/app?sslmode=disable", secret, port),
			ConnectAttempts: 1000, ConnectBackoff: 10 * time.Millisecond,
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		result := testkit.Go(func() error { return d.Initialize(ctx) })
		c := testkit.Receive(t, attempt, "the first attempt")
		require.NotNil(t, c)
		defer c.Close()
		cancel()
		ierr := testkit.Receive(t, result, "Initialize")
		require.ErrorIs(t, ierr, context.Canceled)
		// The attempt cut off by the context keeps its error, which names
		// the address.
		assert.Contains(t, ierr.Error(), fmt.Sprintf("last attempt: failed to connect to `user=app database=app`: 127.0.0.1:%d", port))
		assert.NotContains(t, ierr.Error(), secret)
	})
	t.Run("wrong password", func(t *testing.T) {
		// A retry would first wait half an hour or more (the backoff is
		// randomized by half), and Initialize would not return in time.
		d, err := sqldb.New(sqldb.Config{DSN: wrongPassword, ConnectAttempts: 5, ConnectBackoff: time.Hour})
		require.NoError(t, err)
		testkit.Within(t, "Initialize", func() { err = d.Initialize(context.Background()) })
		require.ErrorContains(t, err, "password authentication failed")
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, err.Error(), pg.Password)
	})
}

func TestHealthReportsThePool(t *testing.T) {
	d := initialized(t, sqldb.Config{ID: "store", DSN: pg.DSN("postgres")})
	_, err := pool(t, d).Exec(`SELECT 1`)
	require.NoError(t, err)
	h := d.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status)
	assert.Equal(t, "postgres", h.Resources["driver"])
	assert.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", pg.Port), h.Resources["target"])
	assert.Positive(t, h.Resources["open_connections"])
	assert.Equal(t, 10, h.Resources["max_open"])
	assert.NotContains(t, fmt.Sprint(h), pg.Password)

	require.NoError(t, d.Cleanup(context.Background()))
	assert.Equal(t, lifecycle.StatusUnhealthy, d.HealthCheck(context.Background()).Status)
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		give sqldb.Config
		want string
	}{
		{"no DSN", sqldb.Config{}, "DSN is empty"},
		{"unknown driver", sqldb.Config{DSN: "x", Driver: "oracle"}, `unknown driver "oracle"`},
		{"negative pool", sqldb.Config{DSN: "x", MaxOpenConns: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sqldb.New(tt.give)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// Under the registry, with a lease held on the pool while Stop begins: the
// pool is closed only after the work is done.
func TestUnderTheRegistry(t *testing.T) {
	d, err := sqldb.New(sqldb.Config{ID: "store", DSN: filepath.Join(t.TempDir(), "s.db")})
	require.NoError(t, err)
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(d))
	require.NoError(t, r.Start(context.Background()))
	p, release, err := r.Acquire(context.Background(), "store")
	require.NoError(t, err)
	stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
	db := pool(t, p.(*sqldb.DB))
	_, err = db.Exec(`CREATE TABLE t (x INTEGER)`)
	require.NoError(t, err, "the pool is still open while leased")
	release()
	require.NoError(t, testkit.Receive(t, stopped, "Stop"))
	assert.Equal(t, lifecycle.ResultOK, r.Report().Providers["store"].Result)
	_, err = d.DB()
	require.ErrorIs(t, err, sqldb.ErrClosed)
}
