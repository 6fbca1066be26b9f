package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// A child that hangs but stays alive (stopped, as kill -STOP
// stops it) fails every health check. Once it has for
// restart.unhealthy_after it is cut off as dead, which the log says once,
// and replaced through the ordinary restart: the pool and readiness come
// back by themselves.
func TestAChildThatHangsIsCutOffAndReplaced(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  hang:
    kind: process
    protocol: hang/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
    pool: {min: 1, max: 1, queue: 4, queue_timeout: 1s}
    restart: {backoff: 10ms, max_backoff: 100ms, unhealthy_after: 1s}`, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	hang := s.engine.pools["hang"]
	pid := s.pidOf("hang/v1")
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))

	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 503 }, testkit.Wait, 10*time.Millisecond,
		"the stopped child never went unhealthy; log:\n%s", s.logs)
	require.Eventually(t, func() bool { return hang.Stats().Restarts == 1 && hang.MemberState("hang-1") == "ready" }, 2*testkit.Wait, 10*time.Millisecond,
		"the stopped child was never replaced; log:\n%s", s.logs)
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, testkit.Wait, 10*time.Millisecond,
		"readiness never came back; log:\n%s", s.logs)
	assert.NotEqual(t, pid, s.pidOf("hang/v1"), "a new child serves")

	log := s.logs.String()
	cut := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "child process cut off") && strings.Contains(line, `"provider": "hang-1"`) {
			cut++
			assert.Contains(t, line, "WARN")
			assert.Contains(t, line, "unhealthy at every health check for ")
			assert.Contains(t, line, "(at least 1s)")
		}
	}
	assert.Equal(t, 1, cut, "logged once; log:\n%s", log)
}

// A hung child that tasks keep busy is
// found degraded, not unhealthy (busy is not broken), so it must still be
// cut off once the tasks given it run out of time unanswered: tasks sent
// without pause from the moment it stops, each with a short timeout, do
// not keep it from being replaced, and the tasks after that are answered.
func TestAHungChildUnderLoadIsCutOffAndReplaced(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	s := startWith(t, fmt.Sprintf(`  hang:
    kind: process
    protocol: hang/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
    pool: {min: 1, max: 1, per_instance: 2, queue: 8, queue_timeout: 1s}
    restart: {backoff: 10ms, max_backoff: 100ms, unhealthy_after: 1s}`, argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	hang := s.engine.pools["hang"]
	pid := s.pidOf("hang/v1")
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))

	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		for {
			select {
			case <-stop:
				return
			default:
			}
			body := map[string]any{"protocol": "hang/v1", "method": "echo", "params": []int{1}, "timeout": "300ms"}
			_ = s.call("POST", "/v1/tasks", "", body, nil)
		}
	}()
	require.Eventually(t, func() bool { return hang.Stats().Restarts == 1 && hang.MemberState("hang-1") == "ready" }, 2*testkit.Wait, 10*time.Millisecond,
		"the stopped child, kept busy by tasks, was never replaced; log:\n%s", s.logs)
	close(stop)
	testkit.Receive(t, loaded, "the load's end")
	assert.NotEqual(t, pid, s.pidOf("hang/v1"), "a new child serves")
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, testkit.Wait, 10*time.Millisecond,
		"readiness never came back; log:\n%s", s.logs)
}

// pidOf asks an instance of the rpctest protocol for its child's pid.
func (s *service) pidOf(protocol string) int {
	s.t.Helper()
	code, rec, msg := s.task(protocol, "pid", nil)
	require.Equal(s.t, 200, code, msg)
	var pid int
	require.NoError(s.t, json.Unmarshal(rec.Output, &pid))
	return pid
}
