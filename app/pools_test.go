package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// crashy is a pooled, critical template of the test child, restarted
// quickly, at most twice a minute.
func crashy() string {
	argv, env := rpctest.Command(rpctest.Server, false)
	return fmt.Sprintf(`  crashy:
    kind: process
    protocol: crashy/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
    pool: {min: 1, max: 1, per_instance: 4, queue: 4, queue_timeout: 5s, cooldown: 1h}
    restart: {policy: on-failure, backoff: 10ms, max_backoff: 20ms, max_restarts: 2, window: 1m}`, argv[0], argv[1], env[0])
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
// restarts, the pool gives up, readiness says so, and the metrics count it.
func TestSupervisedChild(t *testing.T) {
	s := startWith(t, crashy(), "admin_token: "+token+"\n")
	s.waitHealthy()
	first := s.pid("crashy-1")

	sleeping := testkit.Go(func() TaskRecord { _, rec, _ := s.task("crashy/v1", "sleep", []int{5000}); return rec })
	require.Eventually(t, func() bool { return leasesOn(s.reg, "crashy-1") == 1 }, testkit.Wait, time.Millisecond)
	code, rec, msg := s.task("crashy/v1", "exit", []int{3})
	assert.Equal(t, 502, code, msg)
	assert.Equal(t, "error", rec.Status)
	slept := testkit.Receive(t, sleeping, "the task in flight")
	assert.Equal(t, "error", slept.Status)
	assert.Contains(t, slept.Error, "exit status 3", "the task in flight fails with the exit's reason")
	var stored TaskRecord
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+slept.ID, "", nil, &stored))
	assert.Equal(t, "error", stored.Status)

	require.Eventually(t, func() bool { return s.engine.pools["crashy"].MemberState("crashy-1") == "ready" },
		testkit.Wait, time.Millisecond, "log:\n%s", s.logs)
	assert.NotEqual(t, first, s.pid("crashy-1"), "a new child under the same id")
	log := s.logs.String()
	assert.Contains(t, log, "child process exited")
	assert.Contains(t, log, fmt.Sprintf(`"pid": %d`, first))
	assert.Contains(t, log, `"exit": "exit status 3"`)
	assert.Contains(t, log, `"reason": "exited: exit status 3"`, "the dead one's removal, with its cleanup")

	// The pool decides its instances, not the admin API.
	assert.Equal(t, 409, s.call("POST", "/v1/providers", token, map[string]string{"id": "x", "template": "crashy"}, nil))
	assert.Equal(t, 409, s.call("DELETE", "/v1/providers/crashy-1", token, nil, nil))

	// Two more crashes: the second restart is the last one allowed, the
	// third crash gives up.
	s.task("crashy/v1", "exit", []int{4})
	require.Eventually(t, func() bool { return s.engine.pools["crashy"].MemberState("crashy-1") == "ready" }, testkit.Wait, time.Millisecond)
	s.task("crashy/v1", "exit", []int{5})
	require.Eventually(t, func() bool { return s.engine.pools["crashy"].GaveUp() != "" }, testkit.Wait, time.Millisecond)
	var ready struct {
		Ready   bool
		Reasons []string
	}
	require.Equal(t, 503, s.call("GET", "/readyz", "", nil, &ready))
	require.Len(t, ready.Reasons, 1)
	assert.Contains(t, ready.Reasons[0], "template crashy gave up restarting: more than 2 restarts within 1m0s")
	assert.Contains(t, s.logs.String(), "giving up restarting the template")

	var pools []PoolView
	require.Equal(t, 200, s.call("GET", "/v1/pools", "", nil, &pools))
	require.Len(t, pools, 1)
	assert.Equal(t, "crashy", pools[0].Template)
	assert.Equal(t, 2, pools[0].Restarts)
	assert.NotEmpty(t, pools[0].GaveUp)

	resp, err := http.Get(s.base + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(b)
	for _, series := range []string{
		`gleitzeit_provider_restarts_total{template="crashy"} 2`,
		`gleitzeit_pool_size{template="crashy"} 0`, // its one instance is dead
		`gleitzeit_pool_queue_depth{template="crashy"} 0`,
		`gleitzeit_pool_scale_events_total{direction="up",template="crashy"} 0`,
		`gleitzeit_provider_restarts_total{template="echo"} 0`,
	} {
		assert.True(t, strings.Contains(metrics, series+"\n"), "no %s", series) // not the whole page, on failure
	}

	// The dead child stays registered, so health says why, and the
	// shutdown cleans it up once.
	s.stop()
	rep := s.reg.Report()
	require.Contains(t, rep.Providers, "crashy-1")
	assert.False(t, rep.Providers["crashy-1"].Result.Failed(), "%+v", rep.Providers["crashy-1"])
}
