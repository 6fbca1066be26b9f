package taskstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

const week = 7 * 24 * time.Hour

// fill stores n tasks that started at, with ids prefix-0, prefix-1, ...,
// in one transaction.
func fill(t *testing.T, db *sql.DB, prefix string, n int, at time.Time) {
	t.Helper()
	tx, err := db.Begin()
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, Begin(context.Background(), tx, Record{ID: fmt.Sprintf("%s-%d", prefix, i), Protocol: "p", Method: "m", Status: "ok", Started: at}))
	}
	require.NoError(t, tx.Commit())
}

func count(t *testing.T, db *sql.DB, prefix string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE id LIKE $1`, prefix+"-%").Scan(&n))
	return n
}

// migrated are emptyStores with the schema.
func migrated(t *testing.T) map[string]emptyStore {
	t.Helper()
	out := emptyStores(t)
	for driver, s := range out {
		_, err := Migrate(context.Background(), s.db, driver, false)
		require.NoError(t, err)
	}
	return out
}

// A sweep deletes the tasks older than the retention, in batches no larger
// than the batch size, and keeps the rest, including one just inside it.
func TestRetentionDeletesExpiredTasksInBatches(t *testing.T) {
	for driver, s := range migrated(t) {
		t.Run(driver, func(t *testing.T) {
			now := time.Now()
			fill(t, s.db, "old", 2500, now.Add(-week-time.Hour))
			fill(t, s.db, "edge", 1, now.Add(-week+time.Minute))
			fill(t, s.db, "new", 10, now)
			var batches []int64
			r := NewRetention(s.db, driver, week, zaptest.NewLogger(t), func(n int64) { batches = append(batches, n) })
			r.batch = 1000

			deleted, swept, err := r.sweep(context.Background())
			require.NoError(t, err)
			assert.True(t, swept)
			assert.EqualValues(t, 2500, deleted)
			assert.Equal(t, []int64{1000, 1000, 500}, batches)
			assert.Zero(t, count(t, s.db, "old"))
			assert.Equal(t, 1, count(t, s.db, "edge"))
			assert.Equal(t, 10, count(t, s.db, "new"))

			deleted, swept, err = r.sweep(context.Background())
			require.NoError(t, err)
			assert.True(t, swept)
			assert.Zero(t, deleted)
		})
	}
}

// On PostgreSQL, a replica whose peer holds the retention lock leaves the
// sweep to it, and sweeps once the lock is free.
func TestOneReplicaAtATimeDeletesExpiredTasks(t *testing.T) {
	s := migrated(t)[sqldb.Postgres]
	fill(t, s.db, "old", 100, time.Now().Add(-2*week))
	ctx := context.Background()
	peer, err := s.db.Conn(ctx)
	require.NoError(t, err)
	defer peer.Close()
	_, err = peer.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, retentionLock)
	require.NoError(t, err)

	r := NewRetention(s.db, sqldb.Postgres, week, zaptest.NewLogger(t), nil)
	deleted, swept, err := r.sweep(ctx)
	require.NoError(t, err)
	assert.False(t, swept, "the peer is sweeping")
	assert.Zero(t, deleted)
	assert.Equal(t, 100, count(t, s.db, "old"))

	_, err = peer.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, retentionLock)
	require.NoError(t, err)
	deleted, swept, err = r.sweep(ctx)
	require.NoError(t, err)
	assert.True(t, swept)
	assert.EqualValues(t, 100, deleted)

	// Its own sweep released the lock: the peer can take it again.
	var locked bool
	require.NoError(t, peer.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, retentionLock).Scan(&locked))
	assert.True(t, locked)
}

// Task writes go on while a long sweep runs: on SQLite's one writer too,
// they commit between its batches rather than after it. (The sweep's
// batches wait for the writes' commits in turn: under -race on two CPUs,
// SQLite's busy handler has held one for up to 100 ms, hence the bound of
// a minute rather than testkit.Wait.)
func TestRetentionDoesNotHoldUpTaskWrites(t *testing.T) {
	for driver, s := range migrated(t) {
		t.Run(driver, func(t *testing.T) {
			fill(t, s.db, "old", 10000, time.Now().Add(-2*week))
			var mu sync.Mutex
			var events []string // "batch" and "write", in the order they ended
			note := func(e string) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
			r := NewRetention(s.db, driver, week, zaptest.NewLogger(t), func(int64) { note("batch") })
			r.batch = 200

			g := NewGroupCommit(64, 0, map[string]int{sqldb.SQLite: 1, sqldb.Postgres: 5}[driver])
			ctx, cancel := context.WithTimeout(context.Background(), 6*testkit.Wait)
			defer cancel()
			var done atomic.Bool
			var wg sync.WaitGroup
			var latencies []time.Duration // kept by the one writer
			wg.Go(func() {
				for i := 0; !done.Load() && ctx.Err() == nil; i++ {
					begin := time.Now()
					err := g.Do(ctx, s.db, func(ctx context.Context, x Execer) error {
						return Begin(ctx, x, Record{ID: fmt.Sprintf("new-%d", i), Protocol: "p", Method: "m", Status: "running", Started: time.Now()})
					})
					if !assert.NoError(t, err) {
						return
					}
					latencies = append(latencies, time.Since(begin))
					note("write")
				}
			})
			deleted, swept, err := r.sweep(ctx)
			done.Store(true)
			wg.Wait()
			require.NoError(t, err)
			require.True(t, swept)
			assert.EqualValues(t, 10000, deleted)

			mu.Lock()
			defer mu.Unlock()
			first, last := slices.Index(events, "batch"), -1
			for i, e := range events {
				if e == "batch" {
					last = i
				}
			}
			between := 0
			for _, e := range events[first:last] {
				if e == "write" {
					between++
				}
			}
			assert.Greater(t, between, 10, "task writes committed between the sweep's first and last batch")
			slices.Sort(latencies)
			t.Logf("%s: %d batches; %d writes during the sweep; write latency p50 %v, p99 %v, max %v", driver,
				len(events)-len(latencies), between, latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])
		})
	}
}

// stop ends a sweep in progress and the goroutine that runs sweeps, at
// once: nothing is left running when the store is cleaned up.
func TestRetentionStopsMidSweep(t *testing.T) {
	s := migrated(t)[sqldb.SQLite]
	fill(t, s.db, "old", 5000, time.Now().Add(-2*week))
	began := make(chan struct{})
	hold, release := testkit.Gate(t)
	var once sync.Once
	// The first batch's report holds the sweep until stop cancels it:
	// a stop that did not cancel would wait for the whole sweep.
	r := NewRetention(s.db, sqldb.SQLite, week, zaptest.NewLogger(t), func(int64) { once.Do(func() { close(began); <-hold }) })
	r.batch, r.every = 10, time.Millisecond
	r.Start()
	cancel := r.cancel
	r.cancel = func() { cancel(); release() }
	testkit.Receive(t, began, "the first batch")
	testkit.Within(t, "stop", r.Stop)
	assert.Equal(t, 5000-10, count(t, s.db, "old"), "stopped after its first batch")
	testkit.Within(t, "a second stop", r.Stop)
}

// A sweep cut short (its replica stopping mid-batch) leaves the lock free
// for the other replicas: released, or gone with its connection, never
// kept by a connection back in the pool.
func TestACutSweepFreesTheLock(t *testing.T) {
	s := migrated(t)[sqldb.Postgres]
	fill(t, s.db, "old", 20000, time.Now().Add(-2*week))
	began := make(chan struct{})
	hold, release := testkit.Gate(t)
	var once sync.Once
	// The first batch's report holds the sweep until it is cut.
	r := NewRetention(s.db, sqldb.Postgres, week, zaptest.NewLogger(t), func(int64) { once.Do(func() { close(began); <-hold }) })
	r.batch = 100
	ctx, cancel := context.WithCancel(context.Background())
	swept := make(chan error, 1)
	go func() {
		_, _, err := r.sweep(ctx)
		swept <- err
	}()
	testkit.Receive(t, began, "the first batch")
	cancel()
	release()
	require.ErrorIs(t, testkit.Receive(t, swept, "the cut sweep"), context.Canceled)
	assert.Equal(t, 20000-100, count(t, s.db, "old"), "cut after its first batch")

	// Another replica: a pool of its own, since a session that holds an
	// advisory lock is granted it again.
	other, err := openDB(t, s.dsn).DB()
	require.NoError(t, err)
	var locked bool
	require.NoError(t, other.QueryRow(`SELECT pg_try_advisory_lock($1)`, retentionLock).Scan(&locked))
	assert.True(t, locked, "another replica can sweep")
}
