package app

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// observed is an fx option that copies the service's log lines, at info
// and above, where the test can count them.
func observed() (fx.Option, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return fx.Decorate(func(l *zap.Logger) *zap.Logger {
		return zap.New(zapcore.NewTee(l.Core(), core))
	}), logs
}

// lines counts the log lines with that message at warn or above, and at
// any level.
func lines(logs *observer.ObservedLogs, msg string) (warned, all int) {
	for _, e := range logs.FilterMessage(msg).All() {
		all++
		if e.Level >= zapcore.WarnLevel {
			warned++
		}
	}
	return warned, all
}

// readyz answers /readyz's status and reasons.
func (s *service) readyz() (int, []string) {
	s.t.Helper()
	var out struct {
		Reasons []string `json:"reasons"`
	}
	code := s.call("GET", "/readyz", "", nil, &out)
	return code, out.Reasons
}

// refusedTotal reads gleitzeit_tasks_refused_total for a reason.
func (s *service) refusedTotal(reason string) int {
	s.t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	m := regexp.MustCompile(`(?m)^gleitzeit_tasks_refused_total\{reason="` + reason + `"\} (\d+)$`).FindSubmatch(body)
	require.NotNil(s.t, m, "no refusal series for %s in /metrics", reason)
	n, err := strconv.Atoi(string(m[1]))
	require.NoError(s.t, err)
	return n
}

// refusals runs tasks until one is refused (503 without an id, or with
// one recorded as rejected: a task whose first record committed before
// its audit line failed) and returns how many were, bounded.
func (s *service) refusals(t *testing.T) int {
	t.Helper()
	refused := 0
	require.Eventually(t, func() bool {
		code, rec, _ := s.task("echo/v1", "echo", map[string]any{"pad": strings.Repeat("x", 100)})
		if code == http.StatusServiceUnavailable && (rec.ID == "" || rec.Status == "rejected") {
			refused++
		}
		return refused > 0
	}, 4*testkit.Wait, time.Millisecond, "no task was refused")
	return refused
}

// Case 2 and 9 of issue 21: the audit log's directory gone (replaced by a
// file, which stops root too) fails its rotation; readiness turns 503
// naming it, and once the buffer is full tasks are refused and counted.
// When the directory is back, the log recovers and readiness is 200 again
// without a restart, and the failure, the recovery and readiness's two
// turns are logged once each.
func TestTheAuditLogRecoversWithoutARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	require.NoError(t, os.Mkdir(dir, 0o755))
	opt, logs := observed()
	s := startWith(t, "", "audit: {path: "+filepath.Join(dir, "audit.jsonl")+", max_bytes: 2000, max_files: 2}\n", opt)
	s.waitHealthy()
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 200 }, testkit.Wait, time.Millisecond)
	code, _, msg := s.task("echo/v1", "echo", nil)
	require.Equal(t, 200, code, msg)

	away := dir + ".away"
	require.NoError(t, os.Rename(dir, away))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o644))
	refused := s.refusals(t) // the rotation fails, then the buffer fills
	code, why := s.readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, strings.Join(why, "; "), "audit is unhealthy")
	assert.Equal(t, refused, s.refusedTotal(refusedAuditUnavailable), "every refused task is counted")

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Rename(away, dir))
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 200 }, 2*testkit.Wait, 10*time.Millisecond,
		"the audit log recovers without a restart")
	code, _, msg = s.task("echo/v1", "echo", nil)
	require.Equal(t, 200, code, msg)

	for msg, want := range map[string][2]int{
		"audit log failing: writes are kept in its buffer and retried; tasks are refused once it is full": {1, 1},
		"audit log recovered: writes succeed again":                                                       {1, 1},
		"not ready: /readyz answers 503":                                                                  {1, 1},
		"ready again: /readyz answers 200":                                                                {0, 1},
	} {
		warned, all := lines(logs, msg)
		assert.Equal(t, want, [2]int{warned, all}, "%q: [at warn or above, at any level]", msg)
	}
	for _, e := range logs.FilterMessage("not ready: /readyz answers 503").All() {
		assert.Contains(t, fmt.Sprint(e.ContextMap()["reasons"]), "audit is unhealthy", "the reasons are logged")
	}
}

// Case 9 of issue 21: a PostgreSQL outage (its own server, halted as a
// crash would) refuses tasks, counted as store_unavailable, and logs one
// error that the store is unavailable and, once it is back, one line that
// it is available again, however many tasks and polls failed between. So
// does the replica: its heartbeat's failure and its sweep's once each,
// however many heartbeats failed, and once each that they work again.
func TestAStoreOutageIsHeardOnce(t *testing.T) {
	pg, err := pgtest.Start()
	require.NoError(t, err, "PostgreSQL is needed for this test")
	t.Cleanup(pg.Stop)
	opt, logs := observed()
	s := startWith(t, "", "store: {dsn: "+strconv.Quote(pg.DSN("postgres"))+", heartbeat: 100ms}\n", opt)
	s.waitHealthy()
	code, _, msg := s.task("echo/v1", "echo", nil)
	require.Equal(t, 200, code, msg)

	require.NoError(t, pg.Halt())
	beats := s.engine.replica.beats.Load()
	refused := s.refusals(t)
	require.Eventually(t, func() bool { return s.engine.replica.beats.Load() >= beats+3 }, 2*testkit.Wait, 10*time.Millisecond,
		"heartbeats while PostgreSQL is down")
	for range 20 { // more refusals, and more polls: still one line
		code, rec, _ := s.task("echo/v1", "echo", nil)
		require.Equal(t, http.StatusServiceUnavailable, code)
		if rec.ID == "" {
			refused++
		}
	}
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 503 }, testkit.Wait, 10*time.Millisecond)
	assert.Equal(t, refused, s.refusedTotal(refusedStoreUnavailable), "every refused task is counted")
	warned, _ := lines(logs, "task store unavailable: tasks are refused until it is back")
	assert.Equal(t, 1, warned)

	require.NoError(t, pg.Resume())
	require.Eventually(t, func() bool {
		code, _, _ := s.task("echo/v1", "echo", nil)
		return code == 200
	}, 2*testkit.Wait, 10*time.Millisecond, "tasks run again once PostgreSQL is back")
	require.Eventually(t, func() bool { code, _ := s.readyz(); return code == 200 }, testkit.Wait, 10*time.Millisecond)
	for range 20 {
		code, _, msg := s.task("echo/v1", "echo", nil)
		require.Equal(t, 200, code, msg)
	}
	require.Eventually(t, func() bool {
		return logs.FilterMessage(heartbeatWorks).Len() > 0 && logs.FilterMessage(sweepWorks).Len() > 0
	}, 2*testkit.Wait, 10*time.Millisecond, "the replica's heartbeat and sweep work again")
	for msg, want := range map[string][2]int{
		"task store unavailable: tasks are refused until it is back": {1, 1},
		"task store available again":                                 {1, 1},
		"not ready: /readyz answers 503":                             {1, 1},
		"ready again: /readyz answers 200":                           {0, 1},
		heartbeatFailed:                                              {1, 1},
		heartbeatWorks:                                               {0, 1},
		sweepFailed:                                                  {1, 1},
		sweepWorks:                                                   {0, 1},
	} {
		warned, all := lines(logs, msg)
		assert.Equal(t, want, [2]int{warned, all}, "%q: [at warn or above, at any level]", msg)
	}
	for _, e := range logs.FilterMessage("task store unavailable: tasks are refused until it is back").All() {
		assert.Equal(t, config.StoreID, e.ContextMap()["store"])
		assert.NotContains(t, e.ContextMap()["error"], pg.Password, "no secret from the DSN")
	}
}

// The replica's lines about its heartbeat and its sweep.
const (
	heartbeatFailed = "task store: heartbeat failed; other replicas settle this replica's running tasks as interrupted if it stays silent"
	heartbeatWorks  = "task store: heartbeat works again"
	sweepFailed     = "task store: settling the tasks of dead replicas failed; it is tried again at the next heartbeat"
	sweepWorks      = "task store: settling the tasks of dead replicas works again"
)

// A provider that fails its health checks for a while (the Ollama server
// answering 503) is logged unhealthy once, with the reason, and healthy
// again once, however many polls saw it either way.
func TestAProviderTurningUnhealthyIsLoggedOnce(t *testing.T) {
	opt, logs := observed()
	s := startWith(t, "", "", opt)
	s.waitHealthy()
	s.llm.Fail(10)
	require.Eventually(t, func() bool { return logs.FilterMessage("provider healthy again").Len() > 0 }, testkit.Wait, 10*time.Millisecond)
	polls := s.llm.Requests("/api/version")
	require.Eventually(t, func() bool { return s.llm.Requests("/api/version") >= polls+10 }, testkit.Wait, 10*time.Millisecond,
		"ten more polls, healthy")

	down := logs.FilterMessage("provider unhealthy").All()
	require.Len(t, down, 1, "one line, not one per failed poll")
	assert.Equal(t, zapcore.WarnLevel, down[0].Level)
	assert.Equal(t, "llm-1", down[0].ContextMap()["provider"])
	assert.Contains(t, down[0].ContextMap()["reason"], "unreachable")
	up := logs.FilterMessage("provider healthy again").All()
	require.Len(t, up, 1)
	assert.Equal(t, "llm-1", up[0].ContextMap()["provider"])
}
