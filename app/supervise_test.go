package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// poolState is what an operator reads of a pool's supervisor in
// /v1/pools, decoded by its JSON names.
type poolState struct {
	Template            string     `json:"template"`
	Restarts            int        `json:"restarts"`
	BackingOff          bool       `json:"backing_off"`
	BackoffReason       string     `json:"backoff_reason"`
	NextRestart         *time.Time `json:"next_restart"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

func (s *service) poolState(template string) poolState {
	s.t.Helper()
	var pools []poolState
	require.Equal(s.t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	for _, p := range pools {
		if p.Template == template {
			return p
		}
	}
	s.t.Fatalf("no pool %q in /v1/pools: %+v", template, pools)
	return poolState{}
}

// readiness is /readyz's status and reasons.
func (s *service) readiness() (int, string) {
	s.t.Helper()
	var ready struct{ Reasons []string }
	code := s.call("GET", "/readyz", "", nil, &ready)
	return code, strings.Join(ready.Reasons, "; ")
}

// Requests whose answers are not JSON (a number
// written as Infinity) get a critical pool's child cut off, again each
// time the pool comes back, far past max_restarts within the window. A
// death while serving is the request's doing, not a crash loop: each is
// restarted at the ordinary pace, within max_backoff, the supervisor
// never backs off into the crash loop's long waits (which, here, would
// outlast the test's waits), and the pool and readiness come back each
// time without anyone acting.
func TestBadAnswersDoNotTakeAPoolDownNorHoldItInTheCrashLoop(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  inf:
    kind: process
    protocol: inf/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
    pool: {min: 1, max: 1, queue: 4, queue_timeout: 5s}
    restart: {backoff: 10ms, max_backoff: 500ms, max_restarts: 2, window: 1m, crash_loop_max_backoff: 10m}`, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	inf := s.engine.pools["inf"]
	const deaths = 8
	for i := 1; i <= deaths; i++ {
		require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, testkit.Wait, 10*time.Millisecond,
			"readiness before bad answer %d; log:\n%s", i, s.logs)
		code, rec, msg := s.task("inf/v1", "infinity", nil)
		require.Equal(t, 502, code, "bad answer %d: %s", i, msg)
		require.Contains(t, rec.Error, "Infinity", "bad answer %d", i)
		st := s.poolState("inf")
		require.False(t, st.BackingOff, "bad answer %d: %+v", i, st)
		if st.NextRestart != nil {
			assert.False(t, st.NextRestart.After(time.Now().Add(500*time.Millisecond)),
				"bad answer %d: the next restart, at %v, is later than max_backoff", i, st.NextRestart)
		}
		require.Eventually(t, func() bool { return inf.Stats().Restarts == i && inf.MemberState("inf-1") == "ready" }, testkit.Wait, time.Millisecond,
			"restart %d; log:\n%s", i, s.logs)
	}

	st := s.poolState("inf")
	assert.False(t, st.BackingOff, "%+v", st)
	assert.Empty(t, st.BackoffReason)
	assert.Equal(t, deaths, st.Restarts)
	assert.Equal(t, deaths, st.ConsecutiveFailures)
	code, rec, msg := s.task("inf/v1", "echo", []int{7})
	require.Equal(t, 200, code, msg)
	assert.JSONEq(t, "[7]", string(rec.Output))
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, testkit.Wait, 10*time.Millisecond)
	assert.NotContains(t, s.logs.String(), "restart budget exhausted")
}

// A template that is not critical, whose child exits at
// once, does not stop the service from starting. Its instance is
// supervised like any restart: it backs off, and /v1/pools says so, while
// the service is ready; once the fault passes (here, the file the command
// looks for appears) the next restart starts it and it serves.
func TestANonCriticalTemplateThatCannotStartDoesNotStopTheService(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	flag := filepath.Join(t.TempDir(), "fixed")
	s := startWith(t, fmt.Sprintf(`  flaky:
    kind: process
    protocol: flaky/v1
    process: {command: [sh, -c, %q, %q, %q, %q], env: [%q], ready_method: ping, grace: 1s}
    pool: {min: 1, max: 1}
    restart: {backoff: 10ms, max_backoff: 100ms, max_restarts: 2, window: 1m, crash_loop_max_backoff: 400ms}`,
		`test -f "$0" || exit 1; exec "$1" "$2"`, flag, argv[0], argv[1], env[0]), "")

	var st poolState
	require.Eventually(t, func() bool { st = s.poolState("flaky"); return st.BackingOff }, testkit.Wait, time.Millisecond,
		"log:\n%s", s.logs)
	assert.Contains(t, st.BackoffReason, "more than 2 restarts within 1m0s; the last: flaky-1 failed to start: ")
	assert.GreaterOrEqual(t, st.ConsecutiveFailures, 3)
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, testkit.Wait, 10*time.Millisecond,
		"a template that is not critical does not count for readiness")
	code, _, msg := s.task("flaky/v1", "echo", []int{1})
	assert.Equal(t, 503, code, msg)
	log := s.logs.String()
	assert.Regexp(t, `ERROR\s+engine\s+instance failed to start: the supervisor retries it\s+\{"template": "flaky", "provider": "flaky-1"`, log)
	assert.Contains(t, log, "restart budget exhausted: backing off")

	require.NoError(t, os.WriteFile(flag, nil, 0o644))
	require.Eventually(t, func() bool { return s.engine.pools["flaky"].MemberState("flaky-1") == "ready" }, testkit.Wait, time.Millisecond,
		"log:\n%s", s.logs)
	st = s.poolState("flaky")
	assert.False(t, st.BackingOff, "%+v", st)
	code, rec, msg := s.task("flaky/v1", "echo", []int{2})
	require.Equal(t, 200, code, msg)
	assert.JSONEq(t, "[2]", string(rec.Output))
	assert.Regexp(t, `INFO\s+engine\s+template healthy again`, s.logs.String(), "a recovery is news, not a warning")
	code, why := s.readiness()
	assert.Equal(t, 200, code, why)
}
