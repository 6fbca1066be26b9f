package app

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// version2 is version 2's schema as its builds made it, written out here
// since the store's statements are package taskstore's own: a store of an
// older build, frozen as released.
func version2(driver string) []string {
	timeType, floatType := "TIMESTAMP", "REAL"
	if driver == sqldb.Postgres {
		timeType, floatType = "TIMESTAMPTZ", "DOUBLE PRECISION"
	}
	return []string{`CREATE TABLE tasks (
			id          TEXT PRIMARY KEY,
			protocol    TEXT NOT NULL,
			method      TEXT NOT NULL,
			provider    TEXT NOT NULL,
			status      TEXT NOT NULL,
			error       TEXT NOT NULL,
			output      TEXT,
			started     ` + timeType + ` NOT NULL,
			duration_ms ` + floatType + ` NOT NULL
		)`,
		`CREATE INDEX tasks_started ON tasks (started)`,
		`CREATE TABLE gleitzeit_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)`,
		`INSERT INTO gleitzeit_schema (id, version) VALUES (1, 2)`,
	}
}

// A replica runs on a store upgraded from version 2, whose tasks name no
// replica: it registers, its tasks name it, and one that leaves settles
// what it leaves running. (The upgrade itself is package taskstore's
// test.)
func TestAReplicaRunsOnAStoreUpgradedFromVersion2(t *testing.T) {
	for driver, s := range emptyStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			for _, step := range version2(driver) {
				_, err := s.db.Exec(step)
				require.NoError(t, err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for id, status := range map[string]string{"done": "ok", "left": "running"} {
				_, err := s.db.Exec(`INSERT INTO tasks (id, protocol, method, provider, status, error, output, started, duration_ms)
					VALUES ($1, 'p', 'm', 'x', $2, '', NULL, '2026-01-02 03:04:05.000000000+00:00', 1.5)`, id, status)
				require.NoError(t, err)
			}
			_, err := taskstore.Migrate(ctx, s.db, driver, true)
			require.NoError(t, err)

			rep := newReplica(time.Second, zap.NewNop())
			require.NoError(t, rep.open(ctx, s.db, driver))
			require.NoError(t, taskstore.Begin(ctx, s.db, taskstore.Record{ID: "new", Protocol: "p", Method: "m", Status: "running", Started: at, Replica: rep.id}))
			r, err := taskstore.Load(ctx, s.db, "new")
			require.NoError(t, err)
			assert.Equal(t, rep.id, r.Replica)
			require.NoError(t, rep.leave(ctx))
			r, err = taskstore.Load(ctx, s.db, "new")
			require.NoError(t, err)
			assert.Equal(t, "interrupted", r.Status, "a replica that leaves settles what it leaves running")
		})
	}
}

// Three live replicas on one PostgreSQL database sweep at once, every
// heartbeat, while a dead one's tasks wait: each of the dead one's tasks is
// settled once (the settled counts add up to its tasks, not more), and the
// live replicas' own running tasks stay running through many sweeps of
// each, by the database's clock.
func TestLiveReplicasSettleOnlyTheDeadOnesTasksAndEachOnce(t *testing.T) {
	s := emptyStores(t)[sqldb.Postgres]
	ctx := context.Background()
	_, err := taskstore.Migrate(ctx, s.db, sqldb.Postgres, false)
	require.NoError(t, err)
	now := time.Now()

	// The dead replica: its row's lapse passed an hour ago.
	_, err = s.db.Exec(`INSERT INTO gleitzeit_replicas (id, host, started, expires) VALUES ('dead', 'h', now(), now() - interval '1 hour')`)
	require.NoError(t, err)
	const deadTasks, liveTasks = 300, 20
	for i := range deadTasks {
		require.NoError(t, taskstore.Begin(ctx, s.db, taskstore.Record{ID: fmt.Sprintf("dead-%d", i), Protocol: "p", Method: "m", Status: "running", Started: now, Replica: "dead"}))
	}

	core, logs := observer.New(zap.WarnLevel)
	live := make([]*replica, 3)
	for i := range live {
		live[i] = newReplica(300*time.Millisecond, zap.New(core))
		live[i].db, live[i].clock = s.db, replicaClocks[sqldb.Postgres]
		require.NoError(t, live[i].register(ctx))
		for j := range liveTasks {
			id := fmt.Sprintf("live-%d-%d", i, j)
			t.Cleanup(live[i].running(id))
			require.NoError(t, taskstore.Begin(ctx, s.db, taskstore.Record{ID: id, Protocol: "p", Method: "m", Status: "running", Started: now, Replica: live[i].id}))
		}
	}
	// All at once, as replicas that start together do.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, r := range live {
		wg.Go(func() { <-start; r.sweepAndLog(ctx); r.start() })
	}
	close(start)
	wg.Wait()
	defer func() {
		for _, r := range live {
			r.close(ctx)
		}
	}()

	count := func(q string) int {
		var n int
		require.NoError(t, s.db.QueryRow(q).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM tasks WHERE status = 'interrupted'`) == deadTasks },
		testkit.Wait, 10*time.Millisecond)
	var begin time.Time
	require.NoError(t, s.db.QueryRow(`SELECT now()`).Scan(&begin))
	require.Eventually(t, func() bool {
		var passed bool
		require.NoError(t, s.db.QueryRow(`SELECT now() > $1::timestamptz + interval '4 seconds'`, begin).Scan(&passed))
		return passed
	}, 3*testkit.Wait, 50*time.Millisecond)

	assert.Equal(t, len(live)*liveTasks, count(`SELECT count(*) FROM tasks WHERE status = 'running'`), "the live replicas' tasks run on")
	assert.Equal(t, deadTasks, count(`SELECT count(*) FROM tasks WHERE status = 'interrupted' AND replica = 'dead'`))
	assert.Equal(t, 0, count(`SELECT count(*) FROM gleitzeit_replicas WHERE id = 'dead'`), "the dead replica's row is removed")
	assert.Equal(t, len(live), count(`SELECT count(*) FROM gleitzeit_replicas`))
	settled := int64(0)
	for _, e := range logs.FilterMessageSnippet("were settled as interrupted").All() {
		settled += e.ContextMap()["interrupted"].(int64)
	}
	assert.Equal(t, int64(deadTasks), settled, "each task is settled once:\n%v", logs.All())
	assert.Empty(t, logs.FilterMessageSnippet("this replica's heartbeat lapsed").All(), "no live replica was taken for dead")
	r, err := taskstore.Load(ctx, s.db, "dead-7")
	require.NoError(t, err)
	assert.Equal(t, "the replica running it (dead) stopped sending heartbeats (killed, crashed or cut off from the store): its outcome is unknown", r.Error)
}

// A task whose first record committed while the audit log failed is not
// run, and is answered 503 with its id; the store says what the answer
// says ("rejected", with the reason), not "running". /dev/full fails every
// write, for root too: the audit log fails once its buffer is full.
func TestATaskTheAuditLogRefusesLeavesNoRunningRecord(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	s := start(t, "audit: {path: /dev/full}\n")
	s.waitHealthy()
	var (
		code int
		rec  taskstore.Record
		msg  string
	)
	for range 5000 {
		code, rec, msg = s.task("echo/v1", "echo", []int{1})
		if code == 200 {
			continue
		}
		if rec.Status == "unrecorded" {
			// The audit log failed between this task's first record and
			// its outcome's (how soon a full buffer's write fails depends
			// on the machine's load): it ran, and its answer says its
			// outcome is not recorded. The next task meets the failure
			// before it runs.
			continue
		}
		break
	}
	require.Equal(t, 503, code, msg)
	assert.Contains(t, msg, "the audit log is unavailable: the task was not run")
	assert.NotContains(t, msg, "task store is unavailable", "only the audit log failed")
	require.NotEmpty(t, rec.ID, "a 503 for a recorded task carries its id: %s", msg)
	assert.Equal(t, "rejected", rec.Status)

	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &stored))
	assert.Equal(t, "rejected", stored.Status)
	assert.Contains(t, stored.Error, "the audit log is unavailable: the task was not run")
	db, err := s.engine.store.DB()
	require.NoError(t, err)
	var running int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE status = 'running'`).Scan(&running))
	assert.Equal(t, 0, running, "no task is left running")

	// The audit log's cleanup cannot flush what it holds either.
	s.stopped = true
	stop, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	assert.ErrorContains(t, s.app.Stop(stop), `provider "audit": cleanup`)
}

// A replica's own running task that no request of it runs any more (its
// outcome could not be recorded, or its first record committed after its
// request gave up) is settled at the replica's next sweep; one that a
// request runs is left alone.
func TestAReplicasAbandonedTaskIsSettled(t *testing.T) {
	s := emptyStores(t)[sqldb.SQLite]
	ctx := context.Background()
	_, err := taskstore.Migrate(ctx, s.db, sqldb.SQLite, false)
	require.NoError(t, err)
	rep := newReplica(time.Second, zap.NewNop())
	require.NoError(t, rep.open(ctx, s.db, sqldb.SQLite))
	done := rep.running("runs")
	defer done()
	for _, id := range []string{"runs", "abandoned"} {
		require.NoError(t, taskstore.Begin(ctx, s.db, taskstore.Record{ID: id, Protocol: "p", Method: "m", Status: "running", Started: time.Now(), Replica: rep.id}))
	}
	n, err := rep.sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	r, err := taskstore.Load(ctx, s.db, "abandoned")
	require.NoError(t, err)
	assert.Equal(t, "interrupted", r.Status)
	assert.Equal(t, "the replica running it ("+rep.id+") could not record its outcome: it is unknown", r.Error)
	r, err = taskstore.Load(ctx, s.db, "runs")
	require.NoError(t, err)
	assert.Equal(t, "running", r.Status)
	require.NoError(t, taskstore.Finish(ctx, s.db, taskstore.Record{ID: "runs", Status: "ok", Provider: "x"}))
	assert.ErrorContains(t, taskstore.Finish(ctx, s.db, taskstore.Record{ID: "abandoned", Status: "ok", Provider: "x"}),
		"is no longer running in the store", "a settled task keeps what it was settled as")
}
