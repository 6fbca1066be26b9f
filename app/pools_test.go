package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// crashy is a pooled, critical template of the test child, restarted
// quickly, twice a minute, and then after half an hour or more.
func crashy() string {
	argv, env := rpctest.Command(rpctest.Server, false)
	return fmt.Sprintf(`  crashy:
    kind: process
    protocol: crashy/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
    pool: {min: 1, max: 1, per_instance: 4, queue: 4, queue_timeout: 5s, cooldown: 1h}
    restart: {policy: on-failure, backoff: 10ms, max_backoff: 1h, max_restarts: 2, window: 1m}`, argv[0], argv[1], env[0])
}

func (s *service) pid(id string) int {
	s.t.Helper()
	code, rec, msg := s.task("crashy/v1", "pid", nil)
	require.Equal(s.t, 200, code, msg)
	require.Equal(s.t, id, rec.Provider)
	var pid int
	require.NoError(s.t, json.Unmarshal(rec.Output, &pid))
	return pid
}

// A child that exits fails the tasks running on it with its exit status,
// recorded; it is logged with its pid and replaced under its id; past its
// restarts, the supervisor backs off, readiness and the pool say so, and
// the metrics count it.
func TestSupervisedChild(t *testing.T) {
	s := startWith(t, crashy(), "admin_token: "+token+"\n")
	s.waitHealthy()
	first := s.pid("crashy-1")

	sleeping := testkit.Go(func() taskstore.Record { _, rec, _ := s.task("crashy/v1", "sleep", []int{5000}); return rec })
	require.Eventually(t, func() bool { return leasesOn(s.reg, "crashy-1") == 1 }, testkit.Wait, time.Millisecond)
	code, rec, msg := s.task("crashy/v1", "exit", []int{3})
	assert.Equal(t, 502, code, msg)
	assert.Equal(t, "error", rec.Status)
	// The provider's failure is logged at warn, naming the task; the
	// caller's mistake (a method the child does not have) is not, at info.
	assert.Regexp(t, `WARN\s+engine\s+task failed\s+\{"task": "`+rec.ID+`", "protocol": "crashy/v1", "method": "exit", "provider": "crashy-1", "status": "error"`, s.logs.String())
	badCode, bad, badMsg := s.task("crashy/v1", "no-such-method", nil)
	assert.Equal(t, 400, badCode, badMsg)
	assert.NotContains(t, s.logs.String(), bad.ID, "a caller's mistake is logged at debug")
	slept := testkit.Receive(t, sleeping, "the task in flight")
	assert.Equal(t, "error", slept.Status)
	assert.Contains(t, slept.Error, "exit status 3", "the task in flight fails with the exit's reason")
	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+slept.ID, "", nil, &stored))
	assert.Equal(t, "error", stored.Status)

	require.Eventually(t, func() bool { return s.engine.pools["crashy"].MemberState("crashy-1") == "ready" },
		testkit.Wait, time.Millisecond, "log:\n%s", s.logs)
	assert.NotEqual(t, first, s.pid("crashy-1"), "a new child under the same id")
	var list struct{ Providers []ProviderView }
	require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
	for _, p := range list.Providers {
		if p.ID == "crashy-1" {
			require.NotNil(t, p.Previous, "the dead one's removal is shown with its replacement")
			assert.Equal(t, "exited: exit status 3", p.Previous.Reason)
			assert.Equal(t, "ok", p.Previous.Cleanup.Result.String())
		}
	}
	log := s.logs.String()
	assert.Contains(t, log, "child process exited")
	assert.Contains(t, log, fmt.Sprintf(`"pid": %d`, first))
	assert.Contains(t, log, `"exit": "exit status 3"`)
	assert.Contains(t, log, `"reason": "exited: exit status 3"`, "the dead one's removal, with its cleanup")

	// The pool decides its instances, not the admin API.
	assert.Equal(t, 409, s.call("POST", "/v1/providers", token, map[string]string{"id": "x", "template": "crashy"}, nil))
	assert.Equal(t, 409, s.call("POST", "/v1/providers", token, map[string]string{"id": "crashy-7", "template": "echo"}, nil))
	assert.Equal(t, 409, s.call("DELETE", "/v1/providers/crashy-1", token, nil, nil))

	// Crashes while idle (the OOM killer's, say) are the child's own, which
	// the budget counts; the first, a task's doing, was not. The second
	// restart is the last one allowed, the third crash backs off, half an
	// hour or more.
	for i := 1; i <= 3; i++ {
		pid := s.pid("crashy-1")
		require.Eventually(t, func() bool { return s.engine.pools["crashy"].Stats().Busy == 0 }, testkit.Wait, time.Millisecond)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		want := "ready"
		if i == 3 {
			want = "restarting"
		}
		require.Eventually(t, func() bool {
			return s.engine.pools["crashy"].MemberState("crashy-1") == want && s.engine.pools["crashy"].Stats().Restarts == i+1
		},
			testkit.Wait, time.Millisecond, "crash %d while idle; log:\n%s", i, s.logs)
	}
	var ready struct {
		Ready   bool
		Reasons []string
	}
	require.Equal(t, 503, s.call("GET", "/readyz", "", nil, &ready))
	assert.Contains(t, strings.Join(ready.Reasons, "\n"),
		"template crashy is backing off its restarts: more than 2 restarts within 1m0s; the last: crashy-1 exited (signal: killed); next restart at ")
	assert.Contains(t, ready.Reasons, "pool crashy has no healthy instance: crashy-1 is restarting", "which instance, and what it is doing")
	assert.Contains(t, s.logs.String(), "restart budget exhausted: backing off")
	code, _, msg = s.task("crashy/v1", "echo", []int{1})
	assert.Equal(t, 503, code, "refused at once, not kept waiting for the restart: %s", msg)
	assert.Contains(t, msg, "backing off its restarts")

	var pools []PoolView
	require.Equal(t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	require.Len(t, pools, 1)
	assert.Equal(t, "crashy", pools[0].Template)
	assert.Equal(t, 4, pools[0].Restarts, "the fourth is due")
	assert.True(t, pools[0].BackingOff)
	assert.Contains(t, pools[0].BackoffReason, "crashy-1 exited (signal: killed)")
	assert.Equal(t, pools[0].BackoffReason, pools[0].GaveUp)
	assert.Equal(t, 4, pools[0].ConsecutiveFailures)
	require.NotNil(t, pools[0].NextRestart)
	assert.True(t, pools[0].NextRestart.After(time.Now().Add(29*time.Minute)), "%v", pools[0].NextRestart)

	resp, err := http.Get(s.base + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(b)
	for _, series := range []string{
		`gleitzeit_provider_restarts_total{template="crashy"} 4`,
		`gleitzeit_pool_size{template="crashy"} 1`, // its restart due holds its place
		`gleitzeit_pool_queue_depth{template="crashy"} 0`,
		`gleitzeit_pool_scale_events_total{direction="up",template="crashy"} 0`,
		`gleitzeit_provider_restarts_total{template="echo"} 0`,
	} {
		assert.True(t, strings.Contains(metrics, series+"\n"), "no %s", series) // not the whole page, on failure
	}

	// The dead child was removed, its cleanup reported; the shutdown ends
	// the wait for its replacement.
	last := s.engine.removals.latest()[0]
	assert.Equal(t, "exited: signal: killed", last.Reason)
	assert.False(t, last.Outcome.Result.Failed(), "%+v", last)
	s.stop()
	assert.NotContains(t, s.reg.IDs(), "crashy-1")
}

// A task waiting for the only instance while its child dies is not handed
// the dead one: it waits for the replacement, and succeeds.
func TestAQueuedTaskWaitsForTheReplacement(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  one:
    kind: process
    protocol: one/v1
    process: {command: [%q, %q], env: [%q], grace: 1s}
    pool: {min: 1, max: 1, per_instance: 1, queue: 4, queue_timeout: 10s}
    restart: {backoff: 5ms, max_backoff: 10ms, max_restarts: 50, window: 1m}`, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	for round := range 5 {
		code, rec, msg := s.task("one/v1", "pid", nil)
		require.Equal(t, 200, code, msg)
		var pid int
		require.NoError(t, json.Unmarshal(rec.Output, &pid))
		running := testkit.Go(func() taskstore.Record { _, rec, _ := s.task("one/v1", "sleep", []int{5000}); return rec })
		require.Eventually(t, func() bool { return leasesOn(s.reg, "one-1") == 1 }, testkit.Wait, time.Millisecond)
		type answer struct {
			code int
			msg  string
		}
		queued := testkit.Go(func() answer { code, _, msg := s.task("one/v1", "echo", []int{round}); return answer{code, msg} })
		require.Eventually(t, func() bool { return s.engine.pools["one"].Stats().QueueDepth == 1 }, testkit.Wait, time.Millisecond)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		assert.Equal(t, "error", testkit.Receive(t, running, "the task on the killed child").Status)
		a := testkit.Receive(t, queued, "the queued task")
		assert.Equal(t, 200, a.code, "round %d: the queued task was not served by the replacement: %s", round, a.msg)
	}
}

// A child whose output is not JSON-RPC is useless even if it runs on: it
// is replaced like one that died.
func TestAChildWithBrokenOutputIsReplaced(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Garbage, false)
	s := startWith(t, fmt.Sprintf(`  garbage:
    kind: process
    protocol: garbage/v1
    process: {command: [%q, %q], env: [%q], grace: 1s}
    pool: {min: 1, max: 1}
    restart: {backoff: 5ms, max_backoff: 1h, max_restarts: 2, window: 1m}`, argv[0], argv[1], env[0]), "")
	require.Eventually(t, func() bool { return s.engine.pools["garbage"].BackingOff() != "" }, testkit.Wait, time.Millisecond, "log:\n%s", s.logs)
	assert.Contains(t, s.engine.pools["garbage"].BackingOff(), "its output is not JSON-RPC")
	assert.Equal(t, 3, s.engine.pools["garbage"].Stats().Restarts, "two within the budget, and one due in half an hour or more")
}

// A critical pool of min 0 is ready while empty: the first task starts
// its instance.
func TestACriticalPoolOfMinZeroIsReadyEmpty(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  lazy:
    kind: process
    protocol: lazy/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s}
    pool: {min: 0, max: 1, queue: 1, queue_timeout: 10s}`, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	var ready struct{ Reasons []string }
	require.Equal(t, 200, s.call("GET", "/readyz", "", nil, &ready), "%v", ready.Reasons)
	code, rec, msg := s.task("lazy/v1", "echo", []int{7})
	require.Equal(t, 200, code, msg)
	assert.Equal(t, "lazy-1", rec.Provider)
}

// A start that fails leaves no supervisor behind: the children of a
// critical template that died while the registry initialized them are the
// start's failure, not crashes to restart. (Those of a template that is
// not critical are supervised instead: see supervise_test.go.)
func TestAFailedStartRestartsNothing(t *testing.T) {
	llm := ollamatest.Start()
	t.Cleanup(llm.Close)
	cfg := serviceConfig(t, llm.URL(), `  dies:
    kind: process
    protocol: dies/v1
    critical: true
    process: {command: [sh, -c, "exit 1"], ready_method: ping, grace: 1s}
    pool: {min: 1, max: 2}`, "")
	s, err := config.Load([]string{"-config", write(t, "c.yaml", cfg)}, noEnv, io.Discard)
	require.NoError(t, err)
	logs := &testkit.LockedBuffer{}
	var engine *Engine
	var reg *lifecycle.Registry
	app := fx.New(Options(s, newLogger("console", zapcore.InfoLevel, logs), NewMetrics()), fx.Populate(&engine, &reg), fx.NopLogger)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	require.Error(t, app.Start(ctx))
	require.NoError(t, app.Stop(ctx))
	// The rollback cleaned dies-1 up, and a process's Cleanup returns once
	// its exit has been handed to the pool, which decides on a restart, and
	// counts it, while it takes the exit. (The exit is logged as a crash
	// only if the child died before the cleanup began.)
	o, ok := reg.Report().Providers["dies-1"]
	require.True(t, ok, "the rollback did not clean dies-1 up: %+v", reg.Report())
	require.Equal(t, "Cleanup", o.Method)
	assert.Zero(t, engine.pools["dies"].Stats().Restarts)
	assert.NotContains(t, logs.String(), "restarting")
	assert.NotContains(t, logs.String(), "replacement")
}

// Between two health polls, the provider list does not show a dead child
// as healthy, nor its replacement with the dead one's pid: the pool knows
// of the exit at once, and a check begun before the replacement was built
// was of its predecessor.
func TestTheProviderListShowsNoDeadChildAsHealthy(t *testing.T) {
	// One poll, at start: every later look at the list is between polls.
	once := fx.Decorate(func(s *config.Settings) *config.Settings { s.HealthInterval = time.Hour; return s })
	s := startWith(t, crashy(), "", once)
	first := s.pid("crashy-1")
	health := func() (lifecycle.Health, string) {
		var list struct{ Providers []ProviderView }
		require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
		for _, p := range list.Providers {
			if p.ID == "crashy-1" {
				return p.Health, p.Instance
			}
		}
		return lifecycle.Health{}, "absent"
	}
	h, _ := health()
	require.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	require.EqualValues(t, first, h.Resources["pid"])

	p := s.engine.pools["crashy"]
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	require.Eventually(t, func() bool { return p.Stats().Restarts == 1 }, testkit.Wait, time.Millisecond)
	seen := map[string]bool{}
	for deadline := time.Now().Add(testkit.Wait); ; {
		h, instance := health()
		seen[instance] = true
		if h.Status == lifecycle.StatusHealthy {
			assert.NotEqualValues(t, first, h.Resources["pid"], "the dead child's pid shown healthy while %s", instance)
		}
		if instance == "dead" {
			assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
			assert.Equal(t, "exited (signal: killed)", h.Message)
		}
		if instance == "ready" {
			assert.Equal(t, lifecycle.StatusUnknown, h.Status, "no check since the replacement started")
			assert.Equal(t, "not checked since it was started (ready)", h.Message)
			break
		}
		require.True(t, time.Now().Before(deadline), "no replacement within %v; seen %v", testkit.Wait, seen)
		time.Sleep(time.Millisecond)
	}
	assert.NotEqual(t, first, s.pid("crashy-1"))
}

// startEverythingPool starts the service with a pool of the MCP project's
// reference server, one call per instance.
func startEverythingPool(t *testing.T, pool string) *service {
	t.Helper()
	argv := mcptest.Everything(t)
	s := startWith(t, fmt.Sprintf(`  everything:
    kind: mcp
    critical: true
    process: {command: [%q, %q, %q], grace: 1s}
    pool: %s`, argv[0], argv[1], argv[2], pool), "")
	s.waitHealthy()
	return s
}

// Against the reference MCP server: a burst of 12 long tasks on min 1,
// max 4, queue 8 is served whole while the pool starts the instances that
// serve it, and the pool is at max once.
func TestABurstOfLongMCPTasksIsServedWhileThePoolGrows(t *testing.T) {
	s := startEverythingPool(t, "{min: 1, max: 4, per_instance: 1, queue: 8, queue_timeout: 30s}")
	answers := make([]<-chan taskAnswer, 12)
	for i := range answers {
		answers[i] = testkit.Go(func() taskAnswer { return s.post(context.Background(), longOperation(1)) })
	}
	for i, a := range answers {
		got := testkit.Receive(t, a, "a task of the burst")
		assert.Equal(t, 200, got.code, "task %d: %s", i, got.msg)
	}
	var pools []PoolView
	require.Equal(t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	require.Len(t, pools, 1)
	assert.Equal(t, 4, pools[0].Size)
}

// One client sending tasks one at a time, each filling the pool's one
// instance while it runs, does not grow the pool.
func TestOneClientsTasksOneAtATimeDoNotGrowThePool(t *testing.T) {
	s := startEverythingPool(t, "{min: 1, max: 4, per_instance: 1}")
	echo := map[string]any{"protocol": "mcp/v1", "method": "tools/call",
		"params": map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}}}
	for i := range 20 {
		got := s.post(context.Background(), echo)
		require.Equal(t, 200, got.code, "task %d: %s", i, got.msg)
		time.Sleep(20 * time.Millisecond)
	}
	var pools []PoolView
	require.Equal(t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	require.Len(t, pools, 1)
	assert.Equal(t, 1, pools[0].Size, "last scale event: %+v", pools[0].LastScale)
	assert.Zero(t, pools[0].ScaleUps)
}

// A critical pool of min 0 whose child cannot start is not ready, says
// why, and shows the failure in /v1/pools; once the fault passes it comes
// back by itself, with no task to prompt it.
func TestACriticalPoolOfMinZeroThatCannotStartIsNotReadyAndComesBack(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken")
	require.NoError(t, os.WriteFile(broken, nil, 0o644))
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  flaky:
    kind: process
    protocol: flaky/v1
    critical: true
    process: {command: [sh, -c, 'test -e %s && exit 1; exec "$0" "$@"', %q, %q], env: [%q], ready_method: ping, grace: 1s}
    pool: {min: 0, max: 2, queue: 4, queue_timeout: 2s}
    restart: {backoff: 10ms, max_backoff: 20ms, max_restarts: 2, window: 1m, crash_loop_max_backoff: 50ms}`, broken, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	code, _, msg := s.task("flaky/v1", "echo", []int{1})
	require.Equal(t, 503, code, msg)
	require.Eventually(t, func() bool { c, _ := s.readiness(); return c == 503 }, testkit.Wait, time.Millisecond)
	_, why := s.readiness()
	assert.Contains(t, why, "pool flaky has no healthy instance: ")
	assert.Contains(t, why, "its last start failed: ", "a retry may be starting meanwhile")
	var pools []PoolView
	require.Equal(t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	require.Len(t, pools, 1)
	assert.Positive(t, pools[0].ConsecutiveFailures)
	assert.NotEmpty(t, pools[0].StartFailed)

	require.NoError(t, os.Remove(broken)) // the fault passes
	require.Eventually(t, func() bool { c, _ := s.readiness(); return c == 200 }, testkit.Wait, 5*time.Millisecond, "log:\n%s", s.logs)
	code, rec, msg := s.task("flaky/v1", "echo", []int{2})
	require.Equal(t, 200, code, msg)
	assert.Equal(t, "flaky-1", rec.Provider, "started by the pool on its own")
}

// What the provider list shows of an instance the pool knows more of than
// the last check (a slot waiting for its restart, a replacement not yet
// built, a child reaped a moment before the pool is told): never the last
// check's healthy.
func TestAnInstanceIsNotShownByAStaleCheck(t *testing.T) {
	stale := lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "running", Resources: map[string]any{"pid": 4242, "running": true}}
	checked := time.Now()
	for _, m := range []pool.Member{
		{State: "restarting"},
		{State: "starting"}, // its provider not built yet
		{State: "starting", Born: checked.Add(time.Millisecond)},
		{State: "ready", Born: checked.Add(-time.Second), Gone: true},
		{State: "dead", Born: checked.Add(-time.Second), Exit: pool.Exit{Pid: 4242, Status: "signal: killed"}},
	} {
		h := instanceHealth(stale, m, checked)
		assert.NotEqual(t, lifecycle.StatusHealthy, h.Status, "%+v", m)
		assert.NotEqual(t, "running", h.Message, "%+v", m)
	}
	assert.Equal(t, stale, instanceHealth(stale, pool.Member{State: "ready", Born: checked.Add(-time.Second)}, checked), "a check of this instance is shown")
	cut := instanceHealth(stale, pool.Member{State: "dead", Exit: pool.Exit{Status: "unhealthy for 30s", Cut: true}}, checked)
	assert.Equal(t, "cut off (unhealthy for 30s)", cut.Message, "a hung child was cut off, not exited")
}

// Killed again and again, a child whose pid the service has reaped is
// never shown healthy, though the pool is told of the exit a moment later.
func TestAReapedChildIsNeverShownHealthy(t *testing.T) {
	once := fx.Decorate(func(s *config.Settings) *config.Settings { s.HealthInterval = time.Hour; return s })
	s := startWith(t, strings.Replace(crashy(), "max_backoff: 1h, max_restarts: 2, window: 1m", "max_backoff: 20ms, max_restarts: 1000, window: 1h", 1), "", once)
	p := s.engine.pools["crashy"]
	for round := range 20 {
		s.engine.pollHealth(t.Context()) // the replacement is checked healthy
		pid := s.pid("crashy-1")
		require.Eventually(t, func() bool { return p.Stats().Busy == 0 }, testkit.Wait, time.Millisecond)
		restarts := p.Stats().Restarts
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); return err != nil },
			testkit.Wait, 100*time.Microsecond, "reaped by the service")
		var list struct{ Providers []ProviderView }
		require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
		for _, v := range list.Providers {
			if v.ID == "crashy-1" && v.Health.Status == lifecycle.StatusHealthy {
				got, _ := v.Health.Resources["pid"].(float64)
				assert.NotEqual(t, pid, int(got), "round %d: reaped, still shown healthy (%s)", round, v.Instance)
			}
		}
		require.Eventually(t, func() bool { return p.Stats().Restarts > restarts && p.MemberState("crashy-1") == "ready" },
			testkit.Wait, time.Millisecond)
	}
}
