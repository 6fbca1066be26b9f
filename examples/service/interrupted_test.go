package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// heartbeat is the replicas' heartbeat in these tests: a dead replica's
// tasks are settled within about four of them.
const heartbeat = "GLEITZEIT_STORE_HEARTBEAT=200ms"

// sleepyConfig is a service with one worker child, whose shutdown does not
// wait long for a task in flight.
func sleepyConfig(t *testing.T, addr, dataDir string) string {
	t.Helper()
	argv, env := rpctest.Command(rpctest.Server, false)
	return config(t, addr, dataDir, "", fmt.Sprintf(`
task_timeout: 5m
store: {retention: 0s}
shutdown: {timeout: 6s, drain_delay: 0s, cleanup_reserve: 3s}
templates:
  worker:
    kind: process
    protocol: work/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
providers:
  - {id: worker-1, template: worker}
`, argv[0], argv[1], env[0]))
}

// sleepFor sends n tasks that sleep for a minute, each in a goroutine of
// its own whose answer nobody waits for: the replica is killed under them.
func sleepFor(base string, n int) {
	for range n {
		go func() {
			client := &http.Client{Timeout: 2 * time.Minute} // the service ends the request first
			resp, err := client.Post(base+"/v1/tasks", "application/json",
				strings.NewReader(`{"protocol": "work/v1", "method": "sleep", "params": [60000]}`))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
}

// statuses counts the store's tasks by status.
func statuses(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT status, count(*) FROM tasks GROUP BY status`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// runningIDs are the ids of the store's running tasks, sorted.
func runningIDs(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT id FROM tasks WHERE status = 'running'`)
	require.NoError(t, err)
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	sort.Strings(ids)
	return ids
}

// requireInterrupted looks each task up on the replica at base: settled
// as interrupted, naming the dead replica's heartbeat.
func requireInterrupted(t *testing.T, base string, ids []string) {
	t.Helper()
	for _, id := range ids {
		resp, err := http.Get(base + "/v1/tasks/" + id)
		require.NoError(t, err)
		var rec struct{ Status, Error, Replica string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "task %s", id)
		assert.Equal(t, "interrupted", rec.Status, "task %s", id)
		assert.Contains(t, rec.Error, "("+rec.Replica+") stopped sending heartbeats", "task %s", id)
	}
}

// kill -9 under tasks in flight on SQLite: the replica started again on the
// same file settles them as interrupted, within a few heartbeats, and a
// clean stop leaves no replica row behind.
func TestKill9LeavesNoTaskRunningOnSQLite(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	cfg := sleepyConfig(t, addr, data)
	svc := run(t, cfg, heartbeat)
	svc.waitReady(addr)
	db := openStore(t, filepath.Join(data, "gleitzeit.db"))

	sleepFor(svc.base, 3)
	require.Eventually(t, func() bool { return svc.leases("worker-1") == 3 }, testkit.Wait, 10*time.Millisecond, "log:\n%s", svc.stderr)
	ids := runningIDs(t, db)
	require.Len(t, ids, 3)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGKILL))
	svc.exitCode()
	assert.Equal(t, map[string]int{"running": 3}, statuses(t, db), "kill -9 leaves them running")

	again := run(t, cfg, heartbeat)
	again.waitReady(addr)
	require.Eventually(t, func() bool { return len(runningIDs(t, db)) == 0 }, 30*time.Second, 20*time.Millisecond,
		"the tasks of the killed replica stay running: %v\n%s", statuses(t, db), again.stderr)
	assert.Equal(t, map[string]int{"interrupted": 3}, statuses(t, db))
	requireInterrupted(t, again.base, ids)

	require.NoError(t, again.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, again.exitCode(), "log:\n%s", again.stderr)
	var replicas int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM gleitzeit_replicas`).Scan(&replicas))
	assert.Equal(t, 0, replicas, "a replica that stops cleanly removes its row; the dead one's was removed by the sweep")
}

// Two replicas on one PostgreSQL database, each with tasks in flight: the
// one killed -9 has its tasks settled as interrupted by the other, which
// goes on running its own, untouched, through many of its sweeps.
func TestKill9LeavesNoTaskRunningOnPostgreSQL(t *testing.T) {
	pg, err := pgtest.Start()
	require.NoError(t, err, "PostgreSQL is needed for this test")
	t.Cleanup(pg.Stop)
	_, err = openStore(t, pg.DSN("postgres")).Exec(`CREATE DATABASE interrupted`)
	require.NoError(t, err)
	dsn := pg.DSN("interrupted")
	db := openStore(t, dsn)
	env := []string{heartbeat, "GLEITZEIT_STORE_DSN=" + dsn}

	addrA, addrB := freeAddr(t), freeAddr(t)
	a := run(t, sleepyConfig(t, addrA, t.TempDir()), env...)
	a.waitReady(addrA)
	b := run(t, sleepyConfig(t, addrB, t.TempDir()), env...)
	b.waitReady(addrB)

	sleepFor(a.base, 3)
	require.Eventually(t, func() bool { return a.leases("worker-1") == 3 }, testkit.Wait, 10*time.Millisecond, "log:\n%s", a.stderr)
	ofA := runningIDs(t, db)
	require.Len(t, ofA, 3)
	sleepFor(b.base, 2)
	require.Eventually(t, func() bool { return b.leases("worker-1") == 2 }, testkit.Wait, 10*time.Millisecond, "log:\n%s", b.stderr)
	ofB := slices.DeleteFunc(runningIDs(t, db), func(id string) bool { return slices.Contains(ofA, id) })
	require.Len(t, ofB, 2)

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	a.exitCode()
	require.Eventually(t, func() bool { return len(runningIDs(t, db)) == 2 }, 30*time.Second, 20*time.Millisecond,
		"the tasks of the killed replica stay running: %v\n%s", statuses(t, db), b.stderr)
	assert.Equal(t, ofB, runningIDs(t, db), "the live replica's tasks run on")
	requireInterrupted(t, b.base, ofA)

	// The live replica sweeps every heartbeat: through many more of them,
	// by the database's clock, its own tasks stay running.
	var now time.Time
	require.NoError(t, db.QueryRow(`SELECT now()`).Scan(&now))
	require.Eventually(t, func() bool {
		var passed bool
		require.NoError(t, db.QueryRow(`SELECT now() > $1::timestamptz + interval '3 seconds'`, now).Scan(&passed))
		return passed
	}, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, ofB, runningIDs(t, db), "the live replica's tasks run on")
	assert.Equal(t, 2, b.leases("worker-1"))

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, b.exitCode(), "log:\n%s", b.stderr)
	assert.Empty(t, runningIDs(t, db), "the stopped replica's tasks were cut short and recorded: %v", statuses(t, db))
	var replicas int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM gleitzeit_replicas`).Scan(&replicas))
	assert.Equal(t, 0, replicas)
}
