package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Three replicas of the service share one PostgreSQL database, started at
// the same moment on the empty database (so they migrate it at once), and
// 16 clients spread their tasks over them while each replica in turn gets
// SIGTERM, exits 0 with a full cleanup report, and starts again on the
// same address and data directory. Nothing is lost and nothing is cut:
//
//   - every request is answered 2xx with a task id, or refused before
//     anything ran (connection refused or reset before an answer, 503 with
//     no task or with a task recorded "rejected");
//   - every task answered 2xx is found, status ok, by a replica other than
//     the one that answered it, and no id was answered twice;
//   - the store holds no task "running" or "cancelled", and no task that no
//     client was answered about: a request cut mid-task would leave one.
func TestThreeReplicasOnOnePostgreSQLRollingRestartsLoseNothing(t *testing.T) {
	// This package's only PostgreSQL test starts its own server; one that
	// cannot start fails the test with the reason.
	pg, err := pgtest.Start()
	require.NoError(t, err, "PostgreSQL is needed for this test")
	t.Cleanup(pg.Stop)
	_, err = openStore(t, pg.DSN("postgres")).Exec(`CREATE DATABASE replicas`)
	require.NoError(t, err)
	dsn := pg.DSN("replicas")

	llm := ollamatest.Start()
	defer llm.Close()
	_, err = binary() // built once, before the replicas start at the same moment
	require.NoError(t, err)

	const n = 3
	env := []string{"GLEITZEIT_STORE_DSN=" + dsn, "GLEITZEIT_DRAIN_DELAY=1s"}
	var reps [n]struct {
		addr, cfg string
		svc       *running
		draining  atomic.Bool // SIGTERM is (about to be) sent, and the process has not exited
	}
	for i := range reps {
		reps[i].addr = freeAddr(t)
		reps[i].cfg = config(t, reps[i].addr, t.TempDir(), llm.URL(), "")
	}
	var starting sync.WaitGroup
	for i := range reps {
		starting.Go(func() { reps[i].svc = run(t, reps[i].cfg, env...) })
	}
	starting.Wait()
	for i := range reps {
		reps[i].svc.waitReady(reps[i].addr)
	}

	var (
		mu        sync.Mutex
		acked     = map[string]int{} // task id: the replica that answered it 2xx
		ackedBy   [n]int
		rejected  = map[string]string{} // task id: status, of 503s that carried a recorded task
		refused   = map[string]int{}    // by how: "connection refused", "reset before an answer", "503"
		resets    = map[string]int{}    // the resets' errors
		drainSeen [n]map[string]int     // of the requests sent to a draining replica: by outcome
		failures  []string
		stop      atomic.Bool
		clients   sync.WaitGroup
		conns     []*http.Transport
	)
	for i := range drainSeen {
		drainSeen[i] = map[string]int{}
	}
	bodies := []string{
		`{"protocol":"work/v1","method":"sleep","params":[20]}`,
		`{"protocol":"work/v1","method":"echo","params":{"x":1}}`,
		`{"protocol":"llm/v1","method":"generate","params":{"model":"llama3.2","prompt":"one two three"}}`,
	}
	for c := range 16 {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		conns = append(conns, tr)
		client := &http.Client{Transport: tr, Timeout: 8 * time.Second}
		clients.Go(func() {
			// Round robin from replica c%3: a replica that is down refuses
			// at once, and the next request goes to the next one.
			for k := c; !stop.Load(); k++ {
				r := k % n
				draining := reps[r].draining.Load()
				a := send(client, "http://"+reps[r].addr, bodies[k%len(bodies)])
				mu.Lock()
				switch {
				case a.kind == "acked":
					if first, dup := acked[a.id]; dup {
						failures = append(failures, fmt.Sprintf("task %s answered 2xx twice: by replica %d and by replica %d", a.id, first, r))
					}
					acked[a.id] = r
					ackedBy[r]++
				case a.kind == "refused":
					refused[a.how]++
					if a.how == "reset before an answer" {
						resets[a.detail]++
					}
					if a.id != "" {
						rejected[a.id] = a.status
						if a.status != "rejected" {
							failures = append(failures, fmt.Sprintf("replica %d (draining %v) refused a task that was recorded %q, not \"rejected\": %s", r, draining, a.status, a.detail))
						}
					}
				default:
					failures = append(failures, fmt.Sprintf("replica %d (draining %v): %s", r, draining, a.detail))
				}
				if draining {
					key := a.kind
					if a.how != "" {
						key += " (" + a.how + ")"
					}
					drainSeen[r][key]++
				}
				mu.Unlock()
				if a.kind == "refused" {
					time.Sleep(5 * time.Millisecond) // a replica that is down refuses at once: do not spin on it
				}
			}
		})
	}
	defer func() {
		for _, tr := range conns {
			tr.CloseIdleConnections()
		}
	}()

	// A moment of load: until every replica has answered a few more tasks,
	// however long that takes on this machine.
	loadOn := func() {
		t.Helper()
		mu.Lock()
		before := ackedBy
		mu.Unlock()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for r := range ackedBy {
				if ackedBy[r] < before[r]+20 {
					return false
				}
			}
			return true
		}, time.Minute, 10*time.Millisecond, "the replicas answered too few tasks")
	}

	// Each replica in turn: SIGTERM, exit 0 with a full cleanup report,
	// start again on the same address and data, ready; a moment of load.
	loadOn()
	restarts := 0
	for i := range reps {
		rp := &reps[i]
		rp.draining.Store(true)
		require.NoError(t, rp.svc.cmd.Process.Signal(syscall.SIGTERM))
		code := rp.svc.exitCode()
		rp.draining.Store(false)
		require.Equal(t, 0, code, "replica %d's exit code; log:\n%s", i, rp.svc.stderr)
		requireFullCleanupReport(t, rp.svc.stderr.String())
		rp.svc = run(t, rp.cfg, env...)
		rp.svc.waitReady(rp.addr)
		restarts++
		loadOn()
	}
	stop.Store(true)
	testkit.Within(t, "the clients", clients.Wait)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, failures, "%d requests neither answered 2xx with a task nor refused before anything ran; the first: %s",
		len(failures), strings.Join(failures[:min(len(failures), 20)], "\n"))
	for i := range reps {
		t.Logf("replica %d: %d tasks answered 2xx; requests sent while it drained: %v", i, ackedBy[i], drainSeen[i])
		require.NotZero(t, ackedBy[i], "replica %d answered no task", i)
	}

	// Every task answered 2xx, looked up at another replica.
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	missing := lookUpElsewhere(t, ids, acked, func(r int) string { return "http://" + reps[r].addr })
	t.Logf("%d tasks answered 2xx (%d ids, none twice), %d refused %v, %d restarts, %d looked up at another replica, %d missing",
		len(ids), len(acked), sum(refused), refused, restarts, len(ids), len(missing))
	if len(resets) > 0 {
		t.Logf("the resets before an answer: %v", resets)
	}
	require.Empty(t, missing, "tasks answered 2xx and not found ok at another replica")

	// Stopped, all three report a full cleanup.
	for i := range reps {
		require.NoError(t, reps[i].svc.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i := range reps {
		require.Equal(t, 0, reps[i].svc.exitCode(), "replica %d's exit code; log:\n%s", i, reps[i].svc.stderr)
		requireFullCleanupReport(t, reps[i].svc.stderr.String())
	}

	// The store: every task ended, and every task it holds was answered.
	rows, err := openStore(t, dsn).Query(`SELECT id, status FROM tasks`)
	require.NoError(t, err)
	defer rows.Close()
	byStatus := map[string]int{}
	var unanswered []string
	for rows.Next() {
		var id, status string
		require.NoError(t, rows.Scan(&id, &status))
		byStatus[status]++
		_, ok := acked[id]
		switch {
		case ok && status != "ok":
			unanswered = append(unanswered, fmt.Sprintf("%s: answered 2xx, stored %q", id, status))
		case !ok && rejected[id] == "":
			unanswered = append(unanswered, fmt.Sprintf("%s: stored %q, and no client was answered about it", id, status))
		}
	}
	require.NoError(t, rows.Err())
	t.Logf("the store's tasks by status: %v", byStatus)
	assert.Zero(t, byStatus["running"], "tasks cut mid-run")
	assert.Zero(t, byStatus["cancelled"], "tasks cut short by the shutdown")
	assert.Empty(t, unanswered, "tasks stored that no client got the answer for: cut mid-task, or an answer lost")
	assert.Equal(t, len(acked)+len(rejected), sum(byStatus), "the store holds every task answered, and no other")
}

// reply is how one request ended, as the clients classify it.
type reply struct {
	kind   string // "acked", "refused" or "failed"
	how    string // for refused: how
	id     string // the task's id: answered 2xx, or recorded and refused
	status string // the refused task's recorded status
	detail string // what happened, for a failure message
}

// send posts a task and classifies the answer. A connection refused or
// reset before any answer is a refusal: whether the service ran nothing
// for it is for the store to tell (no task stored that no client was
// answered about).
func send(client *http.Client, base, body string) reply {
	resp, err := client.Post(base+"/v1/tasks", "application/json", strings.NewReader(body))
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return reply{kind: "refused", how: "connection refused"}
	case errors.As(err, &timeout) && timeout.Timeout():
		return reply{kind: "failed", detail: "no answer in time: " + err.Error()}
	case err != nil:
		return reply{kind: "refused", how: "reset before an answer", detail: err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{kind: "failed", detail: fmt.Sprintf("%d, and the answer was cut: %v", resp.StatusCode, err)}
	}
	var answer struct {
		ID    string
		Error string
		Task  struct{ ID, Status string }
	}
	_ = json.Unmarshal(data, &answer)
	switch {
	case resp.StatusCode/100 == 2 && answer.ID != "":
		return reply{kind: "acked", id: answer.ID}
	case resp.StatusCode == http.StatusServiceUnavailable:
		return reply{kind: "refused", how: "503", id: answer.Task.ID, status: answer.Task.Status, detail: string(data)}
	}
	return reply{kind: "failed", detail: fmt.Sprintf("answered %d: %s", resp.StatusCode, data)}
}

// lookUpElsewhere looks every task up at a replica other than the one that
// answered it, eight at a time, and returns those not found with status ok.
func lookUpElsewhere(t *testing.T, ids []string, answeredBy map[string]int, base func(int) string) []string {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 8 * time.Second}
	var (
		mu      sync.Mutex
		missing []string
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				j := int(next.Add(1)) - 1
				if j >= len(ids) {
					return
				}
				id := ids[j]
				other := (answeredBy[id] + 1 + j%2) % 3
				if why := lookUp(client, base(other), id); why != "" {
					mu.Lock()
					missing = append(missing, fmt.Sprintf("%s (answered by replica %d, looked up at %d): %s", id, answeredBy[id], other, why))
					mu.Unlock()
				}
			}
		})
	}
	testkit.Within(t, "the look-ups", wg.Wait)
	sort.Strings(missing)
	return missing
}

// lookUp says why the task is not found ok, or "" if it is.
func lookUp(client *http.Client, base, id string) string {
	resp, err := client.Get(base + "/v1/tasks/" + id)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var rec struct{ ID, Status string }
	if resp.StatusCode != 200 || json.Unmarshal(data, &rec) != nil || rec.ID != id || rec.Status != "ok" {
		return fmt.Sprintf("%d %s", resp.StatusCode, data)
	}
	return ""
}

// requireFullCleanupReport requires the log's cleanup report to name every
// provider, each cleaned up ok.
func requireFullCleanupReport(t *testing.T, log string) {
	t.Helper()
	var report map[string]json.RawMessage
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"msg":"cleanup report"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &report), line)
		}
	}
	require.NotNil(t, report, "no cleanup report in the log:\n%s", log)
	for _, id := range []string{"llm-1", "worker-1", "worker-2", "store", "audit"} {
		var o struct{ Method, Result string }
		require.Contains(t, report, id, "the report names %s:\n%s", id, log)
		require.NoError(t, json.Unmarshal(report[id], &o))
		require.Equal(t, "ok", o.Result, "%s's cleanup; log:\n%s", id, log)
	}
}

// openStore opens a PostgreSQL pool the way the service does, closed when
// the test ends.
func openStore(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	d, err := sqldb.New(sqldb.Config{ID: "store", DSN: dsn})
	require.NoError(t, err)
	require.NoError(t, d.Initialize(context.Background()))
	t.Cleanup(func() { _ = d.Cleanup(context.Background()) })
	db, err := d.DB()
	require.NoError(t, err)
	return db
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
