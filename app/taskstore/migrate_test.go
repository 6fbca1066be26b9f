package taskstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Replicas started at the same moment on an empty PostgreSQL database all
// migrate it, and none fails: without the migration lock, concurrent
// CREATE TABLE IF NOT EXISTS fails one of them with a unique violation
// (SQLSTATE 23505) about one time in five with three replicas.
func TestReplicasMigrateAnEmptyDatabaseAtOnce(t *testing.T) {
	pg, err := postgres()
	require.NoError(t, err, "PostgreSQL is needed for this test")
	admin, err := openDB(t, pg.DSN("postgres")).DB()
	require.NoError(t, err)
	const rounds, replicas = 20, 4
	for round := range rounds {
		name := fmt.Sprintf("migrate_%d", round)
		_, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name)
		require.NoError(t, err)
		_, err = admin.Exec(`CREATE DATABASE ` + name)
		require.NoError(t, err)
		stores := make([]*sqldb.DB, replicas)
		for i := range stores {
			stores[i] = openDB(t, pg.DSN(name))
		}
		start := make(chan struct{})
		errs := make([]error, replicas)
		// Bounds every migration, so the Wait below is bounded too: pgx
		// gives up a lock wait when its context ends.
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				db, err := s.DB()
				if err != nil {
					errs[i] = err
					return
				}
				<-start
				_, errs[i] = Migrate(ctx, db, s.Driver(), false)
			})
		}
		close(start)
		wg.Wait()
		cancel()
		for i, err := range errs {
			require.NoError(t, err, "round %d, replica %d", round, i)
		}
		for _, s := range stores {
			require.NoError(t, s.Cleanup(context.Background()))
		}
		_, err = admin.Exec(`DROP DATABASE ` + name)
		require.NoError(t, err)
	}
}

// openDB opens a store the way the service does, closed when the test ends.
func openDB(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	d, err := sqldb.New(sqldb.Config{ID: "store", DSN: dsn})
	require.NoError(t, err)
	require.NoError(t, d.Initialize(context.Background()))
	t.Cleanup(func() { _ = d.Cleanup(context.Background()) })
	return d
}
