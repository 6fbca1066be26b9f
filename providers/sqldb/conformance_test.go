package sqldb_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// The pool keeps the contract on a SQLite file and on the PostgreSQL
// server the tests run, its password the secret to keep.
func TestThePoolKeepsTheContract(t *testing.T) {
	fresh := func(dsn string) func(*testing.T) lifecycle.Provider {
		return func(t *testing.T) lifecycle.Provider {
			d, err := sqldb.New(sqldb.Config{DSN: dsn})
			require.NoError(t, err)
			return d
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		lifecycletest.Run(t, fresh(filepath.Join(dir, "store.db")),
			lifecycletest.Failing(fresh(filepath.Join(dir, "missing", "store.db"))))
	})
	t.Run("postgres", func(t *testing.T) {
		lifecycletest.Run(t, fresh(pg.DSN("postgres")), lifecycletest.Secret(pg.Password),
			lifecycletest.Failing(fresh("postgres://"+pg.User+":"+pg.Password+"@127.0.0.1:1/postgres?connect_timeout=2")))
	})
}
