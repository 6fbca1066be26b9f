package taskstore

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/pgtest"
)

// TestMain fails the tests if a goroutine outlives them (a group commit's
// caller or leader, a retention's sweep, a store's pool), then stops the
// PostgreSQL server if a test started one.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if pg := started.Load(); pg != nil {
			pg.Stop()
		}
		os.Exit(code)
	}))
}

// postgres is a PostgreSQL server for the tests that need one, started by
// the first of them; started holds it once it runs, for TestMain to stop.
var (
	started  atomic.Pointer[pgtest.Server]
	postgres = sync.OnceValues(func() (*pgtest.Server, error) {
		pg, err := pgtest.Start()
		if err == nil {
			started.Store(pg)
		}
		return pg, err
	})
)
