package taskstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// stores are the task stores of the group commit's tests: a SQLite file
// and a real PostgreSQL server.
func stores(t *testing.T) map[string]*sql.DB {
	t.Helper()
	pg, err := postgres()
	require.NoError(t, err, "PostgreSQL is needed for these tests")
	out := map[string]*sql.DB{}
	for name, dsn := range map[string]string{
		"sqlite":     filepath.Join(t.TempDir(), "tasks.db"),
		"postgresql": pg.DSN("postgres"),
	} {
		d, err := sqldb.New(sqldb.Config{ID: "store", DSN: dsn})
		require.NoError(t, err)
		require.NoError(t, d.Initialize(context.Background()))
		t.Cleanup(func() { _ = d.Cleanup(context.Background()) })
		db, err := d.DB()
		require.NoError(t, err)
		_, err = Migrate(context.Background(), db, d.Driver(), false)
		require.NoError(t, err)
		_, err = db.Exec(`DELETE FROM tasks`) // the PostgreSQL server is shared by the tests
		require.NoError(t, err)
		out[name] = db
	}
	return out
}

// Concurrent tasks' records commit together, each caller returning once
// its own is committed; every record is there afterwards.
func TestGroupCommitBatchesConcurrentRecords(t *testing.T) {
	for name, db := range stores(t) {
		t.Run(name, func(t *testing.T) {
			g := NewGroupCommit(64, 0, 1)
			const tasks = 200
			var wg sync.WaitGroup
			errs := make(chan error, 2*tasks)
			for i := range tasks {
				wg.Go(func() {
					rec := Record{ID: fmt.Sprintf("%s-%03d", name, i), Protocol: "p", Method: "m", Status: "running", Started: time.Now()}
					ctx := context.Background()
					errs <- g.Do(ctx, db, func(ctx context.Context, x Execer) error { return Begin(ctx, x, rec) })
					rec.Status, rec.Output = "ok", []byte(`{"n":1}`)
					errs <- g.Do(ctx, db, func(ctx context.Context, x Execer) error { return Finish(ctx, x, rec) })
				})
			}
			testkit.Within(t, "the records", wg.Wait)
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			var ok int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE status = 'ok' AND id LIKE $1`, name+"-%").Scan(&ok))
			assert.Equal(t, tasks, ok)
			assert.Positive(t, g.batches.Load(), "no two records were committed together")
			t.Logf("%d records in %d transactions of more than one", 2*tasks, g.batches.Load())
		})
	}
}

// A record that fails fails alone: the others of its batch are committed.
func TestOneBadRecordFailsAlone(t *testing.T) {
	for name, db := range stores(t) {
		t.Run(name, func(t *testing.T) {
			const n = 8
			g := NewGroupCommit(n, time.Minute, 1) // one batch: its leader waits for all n
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					rec := Record{ID: fmt.Sprintf("%s-bad-%d", name, i), Status: "ok", Started: time.Now()}
					save := Begin
					if i == 3 {
						save = Finish // of a task never begun: no row to update
					}
					errs[i] = g.Do(context.Background(), db, func(ctx context.Context, x Execer) error { return save(ctx, x, rec) })
				})
			}
			testkit.Within(t, "the batch", wg.Wait)
			assert.EqualValues(t, 1, g.batches.Load(), "one batch")
			for i, err := range errs {
				if i == 3 {
					assert.ErrorContains(t, err, "it was not recorded when it began")
					continue
				}
				assert.NoError(t, err, i)
			}
			var rows int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE id LIKE $1`, name+"-bad-%").Scan(&rows))
			assert.Equal(t, n-1, rows)
		})
	}
}

// A commit that panics fails its batch, and the records after it are
// committed: the lead is passed on.
func TestAPanickingCommitFailsItsBatchOnly(t *testing.T) {
	db := stores(t)["sqlite"]
	g := NewGroupCommit(4, time.Minute, 1)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			errs[i] = g.Do(context.Background(), db, func(ctx context.Context, x Execer) error {
				if i == 2 {
					panic("driver bug")
				}
				return Begin(ctx, x, Record{ID: fmt.Sprintf("p-%d", i), Started: time.Now()})
			})
		})
	}
	testkit.Within(t, "the batch", wg.Wait)
	for _, err := range errs {
		assert.ErrorContains(t, err, "commit panicked: driver bug")
	}
	for i := range 4 { // the next batch (its leader waits for four)
		wg.Go(func() {
			errs[i] = g.Do(context.Background(), db, func(ctx context.Context, x Execer) error {
				return Begin(ctx, x, Record{ID: fmt.Sprintf("after-%d", i), Started: time.Now()})
			})
		})
	}
	testkit.Within(t, "the batch after the panic", wg.Wait)
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// A batch runs on a context of its own: its leader's deadline does not
// fail the records of the others.
func TestALeadersDeadlineFailsNoOtherRecord(t *testing.T) {
	for name, db := range stores(t) {
		t.Run(name, func(t *testing.T) {
			g := NewGroupCommit(6, 100*time.Millisecond, 1)
			short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			save := func(id string) func(context.Context, Execer) error {
				return func(ctx context.Context, x Execer) error {
					return Begin(ctx, x, Record{ID: id, Started: time.Now()})
				}
			}
			leader := testkit.Go(func() error { return g.Do(short, db, save(name+"-leader")) })
			require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.leaders == 1 }, testkit.Wait, time.Millisecond)
			var wg sync.WaitGroup
			errs := make([]error, 5)
			for i := range 5 {
				wg.Go(func() { errs[i] = g.Do(context.Background(), db, save(fmt.Sprintf("%s-f%d", name, i))) })
			}
			testkit.Within(t, "the followers", wg.Wait)
			for _, err := range errs {
				require.NoError(t, err)
			}
			require.NoError(t, testkit.Receive(t, leader, "the leader"), "the leader's record was taken into its batch, which ran on its own context")
		})
	}
}

// A caller waits within its own context: one that gives up before a
// batch took its record takes it back, uncommitted, and the records after
// it are committed.
func TestACallerThatGivesUpTakesItsRecordBack(t *testing.T) {
	db := stores(t)["sqlite"]
	g := NewGroupCommit(1, 0, 1)
	hold, release := testkit.Gate(t)
	slow := testkit.Go(func() error {
		return g.Do(context.Background(), db, func(ctx context.Context, x Execer) error {
			<-hold // a commit that takes its time
			return Begin(ctx, x, Record{ID: "slow", Started: time.Now()})
		})
	})
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.leaders == 1 }, testkit.Wait, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := g.Do(ctx, db, func(ctx context.Context, x Execer) error {
		return Begin(ctx, x, Record{ID: "impatient", Started: time.Now()})
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "not recorded")
	after := testkit.Go(func() error {
		return g.Do(context.Background(), db, func(ctx context.Context, x Execer) error {
			return Begin(ctx, x, Record{ID: "after", Started: time.Now()})
		})
	})
	release()
	require.NoError(t, testkit.Receive(t, slow, "the slow record"))
	require.NoError(t, testkit.Receive(t, after, "the record after"))
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE id IN ('slow', 'impatient', 'after')`).Scan(&n))
	assert.Equal(t, 2, n, "the impatient record was taken back")
}

// On PostgreSQL several batches commit side by side, each caller still
// told only of its own.
func TestSeveralLeadersOnPostgreSQL(t *testing.T) {
	db := stores(t)["postgresql"]
	g := NewGroupCommit(8, 0, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 400 {
		wg.Go(func() {
			errs <- g.Do(context.Background(), db, func(ctx context.Context, x Execer) error {
				return Begin(ctx, x, Record{ID: fmt.Sprintf("many-%03d", i), Started: time.Now()})
			})
		})
	}
	testkit.Within(t, "the records", wg.Wait)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE id LIKE 'many-%'`).Scan(&n))
	assert.Equal(t, 400, n)
	g.mu.Lock()
	defer g.mu.Unlock()
	assert.Zero(t, g.leaders, "every lead given back")
	assert.Empty(t, g.pending)
}
