package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
)

// answer is one task's HTTP answer.
type answer struct {
	code       int
	retryAfter string
	body       string
}

// postTask sends a task and returns its answer. Its client gives up after
// a minute, past the service's task_timeout: every wait for an answer is
// bounded.
func postTask(t *testing.T, base, body string) answer {
	return postTaskCtx(context.Background(), base, body)
}

// postTaskCtx sends a task whose client goes away when ctx ends, which
// cancels the task.
func postTaskCtx(ctx context.Context, base, body string) answer {
	client := &http.Client{Timeout: time.Minute}
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/tasks", strings.NewReader(body))
	if err != nil {
		return answer{body: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return answer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

type poolView struct {
	Template   string
	Size       int
	Starting   int
	Busy       int
	QueueDepth int `json:"queue_depth"`
	Restarts   int
	LastScale  *struct {
		Direction string
		Reason    string
	} `json:"last_scale_event"`
}

func pools(t *testing.T, base string) poolView {
	t.Helper()
	var list []poolView
	getJSON(t, base+"/v1/pools", &list)
	require.Len(t, list, 1)
	return list[0]
}

// waitPool waits until the pool is as cond says. The bound is for a pool
// that never gets there: node's start alone has taken seconds on a loaded
// machine, and a pool may be waiting for three.
func waitPool(t *testing.T, base, what string, cond func(poolView) bool) {
	t.Helper()
	const bound = time.Minute
	deadline := time.Now().Add(bound)
	for p := pools(t, base); !cond(p); p = pools(t, base) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; the pool: %+v", what, bound, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// longRun is a task of the server's long-running tool.
func longRun(seconds int) string {
	return fmt.Sprintf(`{"protocol": "mcp/v1", "method": "tools/call", "params": {"name": "trigger-long-running-operation", "arguments": {"duration": %d, "steps": 2}}}`, seconds)
}

// longRuns sends n tasks of the server's long-running tool at once, and
// returns their answers once all are in: each within its client's
// timeout (see postTask), however long the pool takes to serve them all.
func longRuns(t *testing.T, base string, n, seconds int) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = postTask(t, base, longRun(seconds)) })
	}
	wg.Wait()
	return out
}

// withMark lists the processes whose environment carries mark.
func withMark(mark string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte(mark)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// The real MCP reference server, pooled: the handshake at start, a tool
// call, a child killed and replaced, a burst that grows the pool to its
// maximum with the rest queued, the way back to the minimum when idle, 429
// past the queue, and a SIGTERM that leaves no node process.
func TestMCPPoolEndToEnd(t *testing.T) {
	server := mcptest.Everything(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	mark := "E2E_MARK=" + hex.EncodeToString(b)
	addr, data := freeAddr(t), t.TempDir()
	cfg := config(t, addr, data, "", fmt.Sprintf(`
task_timeout: 60s
shutdown: {timeout: 20s}
templates:
  tools:
    kind: mcp
    critical: true
    process: {command: [%q, %q, %q], env: [%q], grace: 2s}
    pool: {min: 1, max: 4, per_instance: 1, cooldown: 1s, queue: 16, queue_timeout: 55s}
    restart: {policy: on-failure, backoff: 200ms, max_backoff: 2s, max_restarts: 5, window: 1m}
providers: []
`, server[0], server[1], server[2], mark))
	svc := run(t, cfg)
	svc.waitReady(addr)

	// The handshake was done at start: the server said who it is.
	var list struct {
		Providers []struct {
			ID, Kind, Template string
			Health             struct{ Resources map[string]any }
		}
	}
	getJSON(t, svc.base+"/v1/providers", &list)
	var first int
	for _, p := range list.Providers {
		if p.ID == "tools-1" {
			assert.Equal(t, "mcp", p.Kind)
			assert.Equal(t, "tools", p.Template)
			assert.NotEmpty(t, p.Health.Resources["server_name"], "resources: %v", p.Health.Resources)
			assert.NotEmpty(t, p.Health.Resources["protocol_version"])
			first = int(p.Health.Resources["pid"].(float64))
		}
	}
	require.NotZero(t, first, "no tools-1 among %+v", list.Providers)

	echo := `{"protocol": "mcp/v1", "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello, pool"}}}`
	a := postTask(t, svc.base, echo)
	require.Equal(t, 200, a.code, a.body)
	assert.Contains(t, a.body, "hello, pool")
	// A tool's own error fails the task.
	a = postTask(t, svc.base, `{"protocol": "mcp/v1", "method": "tools/call", "params": {"name": "no-such-tool", "arguments": {}}}`)
	assert.GreaterOrEqual(t, a.code, 400, a.body)
	assert.Contains(t, a.body, `"status": "error"`)
	// A notification is the service's client's to send.
	a = postTask(t, svc.base, `{"protocol": "mcp/v1", "method": "notifications/roots/list_changed"}`)
	assert.Equal(t, 400, a.code, a.body)
	// The handshake is the service's, once.
	a = postTask(t, svc.base, `{"protocol": "mcp/v1", "method": "initialize", "params": {}}`)
	assert.Equal(t, 400, a.code, a.body)

	// kill -9: the pool replaces the child under the same id.
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	killed := time.Now()
	var back time.Duration
	// A task that reaches the killed child before the service has seen it
	// die fails; the next ones wait in the queue for the replacement. The
	// bound is for a replacement that never comes: node's start under load
	// has taken seconds.
	require.Eventually(t, func() bool {
		if a := postTask(t, svc.base, echo); a.code != 200 {
			return false
		}
		back = time.Since(killed)
		return true
	}, time.Minute, 20*time.Millisecond, "no replacement served:\n%s", svc.stderr)
	t.Logf("a replacement served %v after kill -9 (backoff 200 ms with jitter, plus node's start)", back)
	assert.Contains(t, svc.stderr.String(), `"child process exited"`)
	assert.Contains(t, svc.stderr.String(), `"pid":`+strconv.Itoa(first))
	assert.Contains(t, svc.stderr.String(), `"exit":"signal: killed"`)
	assert.Equal(t, 1, pools(t, svc.base).Restarts)

	// Sixteen 2-second tasks at once: the pool grows to 4, the rest wait,
	// none fails.
	var peak poolView
	watching := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-watching:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var list []poolView
			resp, err := http.Get(svc.base + "/v1/pools")
			if err != nil {
				continue
			}
			_ = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if len(list) == 1 && (list[0].Size > peak.Size || list[0].Size == peak.Size && list[0].QueueDepth > peak.QueueDepth) {
				peak = list[0]
			}
		}
	}()
	for i, a := range longRuns(t, svc.base, 16, 2) {
		assert.Equal(t, 200, a.code, "task %d: %s", i, a.body)
	}
	close(watching)
	<-watched
	t.Logf("16 tasks of 2 s: the pool peaked at %d instances with %d waiting", peak.Size, peak.QueueDepth)
	assert.Equal(t, 4, peak.Size, "the pool grew to its max")
	assert.Positive(t, peak.QueueDepth, "tasks waited in the queue")

	// Idle past the cooldown, it is back at its minimum, and nothing
	// failed on the way.
	require.Eventually(t, func() bool { return pools(t, svc.base).Size == 1 }, 20*time.Second, 50*time.Millisecond)
	p := pools(t, svc.base)
	require.NotNil(t, p.LastScale)
	assert.Equal(t, "down", p.LastScale.Direction)
	a = postTask(t, svc.base, echo)
	require.Equal(t, 200, a.code, a.body)

	// More than the queue and the pool can hold: 429, with Retry-After.
	// The pool at its max and the queue full are held by tasks longer than
	// the test, sent a few at a time so that none is refused, and cut
	// short by their clients going away once the test is done with them.
	held, cancelHeld := context.WithCancel(context.Background())
	defer cancelHeld()
	var holding sync.WaitGroup
	hold := func(n int) {
		for range n {
			holding.Go(func() { postTaskCtx(held, svc.base, longRun(600)) })
		}
	}
	hold(1)
	waitPool(t, svc.base, "the first long task runs", func(p poolView) bool { return p.Busy == 1 })
	hold(16) // they fit the queue; the pool grows for them to its max
	waitPool(t, svc.base, "the pool at its max, the rest queued", func(p poolView) bool {
		return p.Size == 4 && p.Starting == 0 && p.Busy == 4 && p.QueueDepth == 13
	})
	hold(3)
	waitPool(t, svc.base, "the queue full", func(p poolView) bool { return p.Busy == 4 && p.QueueDepth == 16 })
	for range 6 {
		a := postTask(t, svc.base, longRun(1))
		assert.Equal(t, 429, a.code, a.body)
		assert.NotEmpty(t, a.retryAfter, "429 without Retry-After")
		assert.Contains(t, a.body, `"status": "rejected"`)
	}
	cancelHeld()
	holding.Wait() // each post returns as its context ends
	waitPool(t, svc.base, "the cut tasks gone", func(p poolView) bool { return p.Busy == 0 && p.QueueDepth == 0 })

	// SIGTERM: exit 0, no node process left.
	require.Greater(t, len(withMark(mark)), 0, "the children carry the mark")
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, svc.exitCode(), svc.stderr.String())
	assert.Empty(t, withMark(mark), "node processes left after the service exited")
	report := svc.stderr.String()
	report = report[strings.Index(report, `"cleanup report"`):]
	report = report[:strings.IndexByte(report, '\n')]
	assert.Contains(t, report, `"tools-1":{"method":"Cleanup","result":"ok"`)
	assert.Contains(t, report, `"reason":"exited: signal: killed"`, "the killed child, cleaned up while the service ran")
	assert.Contains(t, report, `"reason":"scaled down"`)
	assert.NotContains(t, report, `"result":"error"`)
}
