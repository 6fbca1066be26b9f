package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// polls waits for n more health polls, each begun after the last.
func (s *service) polls(n int) {
	s.t.Helper()
	for range n {
		mark := time.Now()
		require.Eventually(s.t, func() bool {
			snap := s.engine.health.Load()
			return snap != nil && snap.at.After(mark)
		}, testkit.Wait, time.Millisecond, "a health poll")
	}
}

// A store whose task records fail while its
// ping passes (SQLite on a full disk; here a trigger of the test's that
// refuses every insert into tasks, which fails for root too) is not ready,
// naming the store and not its error, for as long as it cannot record a
// task, however many polls its ping passes; once it can, it is ready again
// without any task sent to prove it, and each turn is logged once.
func TestAStoreThatCannotRecordTasksIsNotReady(t *testing.T) {
	opt, logs := observed()
	s := startWith(t, "", "", opt)
	s.waitHealthy()
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 200 }, testkit.Wait, time.Millisecond)
	db, err := s.engine.store.DB()
	require.NoError(t, err)
	ctx := context.Background()
	_, err = db.ExecContext(ctx, `CREATE TRIGGER refuse_tasks BEFORE INSERT ON tasks BEGIN SELECT RAISE(FAIL, 'disk full (test)'); END`)
	require.NoError(t, err)

	refused := s.refusals(t)
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 503 }, testkit.Wait, 10*time.Millisecond,
		"a store that cannot record tasks is not ready")
	s.polls(5) // its ping passes at each: still not ready
	code, why := s.readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	reasons := strings.Join(why, "; ")
	assert.Contains(t, reasons, "the task store cannot record tasks")
	assert.NotContains(t, reasons, "disk full", "the store's error is the log's")
	assert.Equal(t, refused, s.refusedTotal(refusedStoreUnavailable), "every refused task is counted")
	warned, all := lines(logs, "task store available again")
	assert.Equal(t, [2]int{0, 0}, [2]int{warned, all}, "a ping does not make the store available again")

	_, err = db.ExecContext(ctx, `DROP TRIGGER refuse_tasks`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 200 }, testkit.Wait, 10*time.Millisecond,
		"ready again once the store can record a task, without a task sent")
	code, _, msg := s.task("echo/v1", "echo", nil)
	require.Equal(t, 200, code, msg)
	var probes int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM tasks WHERE length(id) <> 24`).Scan(&probes))
	assert.Zero(t, probes, "the probes leave no record")

	for msg, want := range map[string][2]int{
		"task store unavailable: tasks are refused until it is back": {1, 1},
		"task store available again":                                 {1, 1},
		"not ready: /readyz answers 503":                             {1, 1},
		"ready again: /readyz answers 200":                           {0, 1},
	} {
		warned, all := lines(logs, msg)
		assert.Equal(t, want, [2]int{warned, all}, "%q: [at warn or above, at any level]", msg)
	}
	for _, e := range logs.FilterMessage("not ready: /readyz answers 503").All() {
		assert.Contains(t, fmt.Sprint(e.ContextMap()["reasons"]), "store: the task store cannot record tasks (its error is in the log)")
	}
}
