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
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// waitHealthy waits until the engine's health poll has seen every provider.
func (s *service) waitHealthy() {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		snap := s.engine.health.Load()
		return snap != nil && snap.rep.Status == lifecycle.StatusHealthy
	}, testkit.Wait, 10*time.Millisecond)
}

func TestTasksRunAndAreRecorded(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	tests := []struct {
		protocol, method string
		params           any
		check            func(t *testing.T, out json.RawMessage)
	}{
		{"llm/v1", "generate", map[string]any{"model": "llama3.2", "prompt": "why?"}, func(t *testing.T, out json.RawMessage) {
			var r struct{ Response string }
			require.NoError(t, json.Unmarshal(out, &r))
			assert.Equal(t, ollamatest.Reply("why?"), r.Response)
		}},
		{"llm/v1", "chat", map[string]any{"model": "llama3.2", "messages": []map[string]string{{"role": "user", "content": "hi"}}},
			func(t *testing.T, out json.RawMessage) {
				var r struct{ Message struct{ Content string } }
				require.NoError(t, json.Unmarshal(out, &r))
				assert.Equal(t, ollamatest.Reply("hi"), r.Message.Content)
			}},
		{"llm/v1", "embed", map[string]any{"model": "llama3.2", "input": "x"}, func(t *testing.T, out json.RawMessage) {
			var r struct{ Embeddings [][]float32 }
			require.NoError(t, json.Unmarshal(out, &r))
			assert.Len(t, r.Embeddings, 1)
		}},
		{"llm/v1", "models", nil, func(t *testing.T, out json.RawMessage) {
			assert.Contains(t, string(out), "llama3.2:latest")
		}},
		{"llm/v1", "version", nil, func(t *testing.T, out json.RawMessage) {
			assert.JSONEq(t, `{"version":"`+ollamatest.Version+`"}`, string(out))
		}},
		{"echo/v1", "echo", map[string]int{"n": 7}, func(t *testing.T, out json.RawMessage) {
			assert.JSONEq(t, `{"n":7}`, string(out))
		}},
	}
	var ids []string
	for _, tt := range tests {
		t.Run(tt.protocol+" "+tt.method, func(t *testing.T) {
			code, rec, msg := s.task(tt.protocol, tt.method, tt.params)
			require.Equal(t, 200, code, msg)
			assert.Equal(t, "ok", rec.Status)
			tt.check(t, rec.Output)
			var stored taskstore.Record
			require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &stored))
			assert.Equal(t, rec.ID, stored.ID)
			assert.Equal(t, rec.Provider, stored.Provider)
			assert.JSONEq(t, string(rec.Output), string(stored.Output))
			ids = append(ids, rec.ID)
		})
	}
	s.stop() // flushes the audit log
	// Each task has two lines: when it began, and its outcome.
	lines := auditLines(t, s.settings.AuditPath)
	require.Len(t, lines, 2*len(tests))
	for i, id := range ids {
		assert.Contains(t, lines[2*i], id)
		assert.Contains(t, lines[2*i], `"status":"running"`)
		assert.Contains(t, lines[2*i+1], id)
		assert.Contains(t, lines[2*i+1], `"status":"ok"`)
	}
}

func TestTaskErrors(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	tests := []struct {
		name             string
		protocol, method string
		params           any
		code             int
		status, want     string
		timeout          string // the task's own, or the service's (a minute)
	}{
		{"unknown llm method", "llm/v1", "dance", nil, 400, "error", `llm/v1 has no method "dance"`, ""},
		{"bad llm params", "llm/v1", "generate", map[string]any{"modle": "x"}, 400, "error", `unknown field "modle"`, ""},
		{"unknown model", "llm/v1", "generate", map[string]any{"model": "nope"}, 404, "error", `model "nope:latest" not found`, ""},
		{"stream asked for", "llm/v1", "chat", map[string]any{"model": "llama3.2", "stream": true}, 400, "error", "send the header Accept: text/event-stream", ""},
		{"unknown rpc method", "echo/v1", "dance", nil, 400, "error", `no method "dance"`, ""},
		{"timeout", "echo/v1", "sleep", []int{5000}, 504, "timeout", "task timed out after 200ms", "200ms"},
		{"params neither object nor array", "echo/v1", "echo", 1, 400, "error", "params: JSON-RPC wants an object or an array, got 1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, rec, msg := s.taskWithin(tt.protocol, tt.method, tt.params, tt.timeout)
			assert.Equal(t, tt.code, code, msg)
			assert.Equal(t, tt.status, rec.Status)
			assert.Contains(t, msg, tt.want)
			var stored taskstore.Record
			require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &stored), "failed tasks are recorded too")
			assert.Equal(t, tt.status, stored.Status)
		})
	}
	require.Equal(t, 404, s.call("GET", "/v1/tasks/nope", "", nil, nil))

	s.llm.Fail(1 << 20) // the LLM server fails: the health poll marks it unhealthy
	require.Eventually(t, func() bool {
		code, _, _ := s.task("llm/v1", "version", nil)
		return code == 503
	}, testkit.Wait, 20*time.Millisecond)
	_, _, msg := s.task("llm/v1", "version", nil)
	assert.Contains(t, msg, "no healthy provider")
	assert.Contains(t, msg, "llm-1:")
}

const token = "s3cret-t0ken"

func TestAdminAPIGuardsMutations(t *testing.T) {
	t.Run("no token configured", func(t *testing.T) {
		s := start(t, "")
		var out map[string]string
		assert.Equal(t, 403, s.call("POST", "/v1/providers", "", map[string]string{"id": "x", "template": "llm"}, &out))
		assert.Contains(t, out["error"], "no admin_token is configured")
		assert.Equal(t, 403, s.call("DELETE", "/v1/providers/llm-1", "anything", nil, nil))
	})
	t.Run("token configured", func(t *testing.T) {
		s := start(t, "admin_token: "+token+"\n")
		assert.Equal(t, 401, s.call("POST", "/v1/providers", "", map[string]string{"id": "x", "template": "llm"}, nil))
		assert.Equal(t, 401, s.call("POST", "/v1/providers", "wrong", map[string]string{"id": "x", "template": "llm"}, nil))
		assert.Equal(t, 401, s.call("DELETE", "/v1/providers/llm-1", "wrong", nil, nil))
		var out map[string]string
		assert.Equal(t, 400, s.call("POST", "/v1/providers", token, map[string]string{"id": "x", "template": "nope"}, &out))
		assert.Contains(t, out["error"], `no template "nope"`)
		assert.Equal(t, 400, s.call("POST", "/v1/providers", token, map[string]string{"id": "x", "url": "http://evil"}, nil),
			"no URL arrives over HTTP")
		assert.Equal(t, 409, s.call("POST", "/v1/providers", token, map[string]string{"id": "llm-1", "template": "llm"}, nil))
		assert.Equal(t, 409, s.call("DELETE", "/v1/providers/store", token, nil, nil))
		assert.Equal(t, 404, s.call("DELETE", "/v1/providers/nope", token, nil, nil))
	})
}

// A pool: two echo providers serve one protocol; one is added at run time,
// one removed while a task runs on it, which the removal waits for.
func TestPoolsGrowAndShrinkAtRunTime(t *testing.T) {
	s := start(t, "admin_token: "+token+"\n")
	s.waitHealthy()
	var view ProviderView
	require.Equal(t, 201, s.call("POST", "/v1/providers", token, map[string]string{"id": "echo-2", "template": "echo"}, &view))
	assert.Equal(t, "ready", view.State)
	assert.Equal(t, "echo/v1", view.Protocol)

	// Tasks spread over both: each goes to the one with fewer in flight.
	// A task holds echo-1 (the lower id, which a tie goes to) until its
	// client goes away; the next goes to echo-2.
	held, leave := context.WithCancel(context.Background())
	defer leave()
	holding := testkit.Go(func() error {
		req, err := http.NewRequestWithContext(held, "POST", s.base+"/v1/tasks",
			strings.NewReader(`{"protocol":"echo/v1","method":"sleep","params":[60000]}`))
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		return err
	})
	require.Eventually(t, func() bool { return leasesOn(s.reg, "echo-1") == 1 }, testkit.Wait, time.Millisecond)
	code, rec, msg := s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, msg)
	assert.Equal(t, "echo-2", rec.Provider, "the task went to the instance with fewer in flight")
	leave()
	require.ErrorIs(t, testkit.Receive(t, holding, "the held task's client"), context.Canceled)
	require.Eventually(t, func() bool { return leasesOn(s.reg, "echo-1") == 0 }, testkit.Wait, time.Millisecond,
		"the task whose client went away gave its lease back")

	// Remove echo-1 while a task runs on it: the task finishes, then the
	// removal returns, and no new task reaches echo-1.
	// With both idle, a task goes to the lower id.
	running := testkit.Go(func() int { code, _, _ := s.task("echo/v1", "sleep", []int{300}); return code })
	require.Eventually(t, func() bool { return leasesOn(s.reg, "echo-1") == 1 }, testkit.Wait, time.Millisecond)
	var removed struct {
		ID      string
		Cleanup struct{ Result string }
	}
	require.Equal(t, 200, s.call("DELETE", "/v1/providers/echo-1", token, nil, &removed))
	assert.Equal(t, "ok", removed.Cleanup.Result)
	assert.Equal(t, 200, testkit.Receive(t, running, "the task on echo-1"), "its lease delayed the removal")
	for range 5 {
		code, rec, msg := s.task("echo/v1", "echo", []int{1})
		require.Equal(t, 200, code, msg)
		assert.Equal(t, "echo-2", rec.Provider)
	}

	var list struct{ Providers []ProviderView }
	require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
	states := map[string]string{}
	for _, p := range list.Providers {
		states[p.ID] = p.State
	}
	assert.Equal(t, map[string]string{"audit": "ready", "store": "ready", "llm-1": "ready", "echo-2": "ready", "echo-1": "removed"}, states)
}

// A handler that panics gives its lease back: the task is answered and
// recorded as failed, and the provider's removal does not wait for a lease
// that no one will release.
func TestPanickingHandlerReleasesItsLease(t *testing.T) {
	s := start(t, "admin_token: "+token+"\n")
	s.waitHealthy()
	s.engine.endpointHook = func(ep endpoint) endpoint {
		ep.call = func(context.Context, string, json.RawMessage) (json.RawMessage, error) { panic("handler bug") }
		return ep
	}
	require.Equal(t, 200, s.call("DELETE", "/v1/providers/echo-1", token, nil, nil))
	require.Equal(t, 201, s.call("POST", "/v1/providers", token, map[string]string{"id": "echo-3", "template": "echo"}, nil))

	code, rec, msg := s.task("echo/v1", "echo", []int{1})
	assert.GreaterOrEqual(t, code, 500, msg)
	assert.Equal(t, "echo-3", rec.Provider)
	assert.Equal(t, "error", rec.Status)
	assert.Contains(t, msg, "panicked")
	for _, info := range s.engine.reg.Providers() {
		assert.Zero(t, info.Leases, info.ID)
	}
	assert.Zero(t, s.engine.pools["echo"].Stats().Busy)
	// A lease left held would make the removal's cleanup time out.
	var removed struct{ Cleanup struct{ Result string } }
	require.Equal(t, 200, s.call("DELETE", "/v1/providers/echo-3", token, nil, &removed))
	assert.Equal(t, "ok", removed.Cleanup.Result)
}

// leasesOn is how many leases a provider has: tasks running on it.
func leasesOn(reg *lifecycle.Registry, id string) int {
	for _, p := range reg.Providers() {
		if p.ID == id {
			return p.Leases
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	s := start(t, "admin_token: "+token+"\n")
	s.waitHealthy()
	code, _, msg := s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, msg)
	s.task("nope/v1", "x", nil)
	require.Equal(t, 201, s.call("POST", "/v1/providers", token, map[string]string{"id": "echo-2", "template": "echo"}, nil))
	require.Equal(t, 200, s.call("DELETE", "/v1/providers/echo-2", token, nil, nil))

	resp, err := http.Get(s.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`gleitzeit_tasks_total{outcome="ok",protocol="echo/v1"} 1`,
		`gleitzeit_tasks_total{outcome="rejected",protocol="unknown"} 1`, // a protocol no provider serves: not a label of its own
		`gleitzeit_task_duration_seconds_count{protocol="echo/v1"} 1`,
		`gleitzeit_provider_cleanup_seconds_count{outcome="ok",provider="echo-2"} 1`,
		`gleitzeit_provider_health{provider="echo-1",status="healthy"} 1`,
		`gleitzeit_leases_in_use{provider="echo-1"} 0`,
		`go_goroutines`,
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, `gleitzeit_provider_health{provider="echo-2"`, "a removed provider's health series is gone")
	assert.NotContains(t, text, fmt.Sprint(token))
	assert.False(t, strings.Contains(text, token))
}

// An audit log that a crash left ending inside a record is repaired when
// the service starts: the torn record is dropped and logged, and the next
// task's audit line is a line of its own.
func TestTornAuditLogIsRepairedOnStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	torn := `{"id":"t1","status":"ok"}` + "\n" + `{"id":"t2","sta`
	require.NoError(t, os.WriteFile(path, []byte(torn), 0o640))
	s := start(t, fmt.Sprintf("audit: {path: %q}\n", path))
	s.waitHealthy()
	assert.Contains(t, s.logs.String(), "audit log repaired")
	assert.Contains(t, s.logs.String(), `"bytes_dropped": 15`)
	code, _, msg := s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, msg)
	s.stop()
	lines := auditLines(t, path)
	require.Len(t, lines, 3, "the whole record, then the task's two")
	for _, l := range lines {
		assert.True(t, json.Valid([]byte(l)), "line %q", l)
	}
}

// A task the store cannot record is refused with 503 before it reaches a
// provider, and the answer carries no id; a request refused as bad carries
// none either. Every id the service answers with can be looked up.
func TestNothingRunsUnrecorded(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	code, rec, msg := s.task("echo/v1", "", nil)
	require.Equal(t, 400, code, msg)
	assert.Empty(t, rec.ID, "a refused request carries no id")

	// Break the store under the service: the next write fails.
	db, err := s.engine.store.DB()
	require.NoError(t, err)
	_, err = db.Exec(`ALTER TABLE tasks RENAME TO tasks_gone`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec(`ALTER TABLE tasks_gone RENAME TO tasks`) })
	calls := func() int { return s.llm.Requests("/api/generate") } // health checks do not generate
	before := calls()
	code, rec, msg = s.task("llm/v1", "generate", map[string]any{"model": "llama3.2", "prompt": "hi"})
	assert.Equal(t, 503, code, msg)
	assert.Empty(t, rec.ID)
	assert.Contains(t, msg, "task store is unavailable")
	assert.Equal(t, before, calls(), "the task reached the provider")

	_, err = db.Exec(`ALTER TABLE tasks_gone RENAME TO tasks`)
	require.NoError(t, err)
	code, rec, msg = s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, msg)
	var got taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &got))
	assert.Equal(t, "ok", got.Status)
}

// A child's stderr is logged a line at a time with its provider's id, not
// copied raw; a child whose stdout is not JSON-RPC is logged with what it
// printed, and reads unhealthy.
func TestChildOutputIsLoggedWithItsProvider(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Garbage, false)
	s := startWith(t, fmt.Sprintf("  garbage: {kind: process, protocol: garbage/v1, process: {command: [%q, %q], env: [%q], grace: 1s}, restart: {policy: never}}", argv[0], argv[1], env[0]), "")
	s.waitHealthy()
	code, _, msg := s.task("echo/v1", "log", []string{"hello from the child", "a second line"})
	require.Equal(t, 200, code, msg)
	require.Eventually(t, func() bool {
		return strings.Contains(s.logs.String(), `child stderr	{"provider": "echo-1", "line": "a second line"}`)
	}, testkit.Wait, time.Millisecond, "log:\n%s", s.logs)
	assert.Contains(t, s.logs.String(), `child stderr	{"provider": "echo-1", "line": "hello from the child"}`)

	require.NoError(t, s.engine.Add(context.Background(), "garbage-1", "garbage"))
	require.Eventually(t, func() bool {
		return strings.Contains(s.logs.String(), "child process output is not JSON-RPC")
	}, testkit.Wait, time.Millisecond, "log:\n%s", s.logs)
	log := s.logs.String()
	line := log[strings.Index(log, "child process output is not JSON-RPC"):]
	line = line[:strings.IndexByte(line, '\n')]
	assert.Contains(t, line, `"provider": "garbage-1"`)
	assert.Contains(t, line, `this is not JSON`)
	h := s.engine.reg.Health(context.Background()).Providers["garbage-1"]
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, "this is not JSON")
}

// rawPost sends body as it is to POST /v1/tasks and returns the status and
// the body.
func (s *service) rawPost(body io.Reader, header map[string]string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.base+"/v1/tasks", body)
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The statuses of the README's table that the task table above does not
// reach: each row its own case.
func TestStatusTable(t *testing.T) {
	s := start(t, "admin_token: "+token+"\n")
	s.waitHealthy()

	t.Run("a deadline that passed before a provider was picked is 504", func(t *testing.T) {
		code, body := s.rawPost(strings.NewReader(`{"protocol":"echo/v1","method":"echo","params":[1],"timeout":"1ns"}`), nil)
		assert.Equal(t, 504, code, body)
		assert.Contains(t, body, `"status": "timeout"`)
	})
	t.Run("a body too large is 413", func(t *testing.T) {
		big := `{"protocol":"echo/v1","method":"echo","params":["` + strings.Repeat("x", 2<<20) + `"]}`
		code, body := s.rawPost(strings.NewReader(big), nil)
		assert.Equal(t, 413, code, body)
		assert.Contains(t, body, "larger than")
	})
	t.Run("data after the JSON object is 400", func(t *testing.T) {
		code, body := s.rawPost(strings.NewReader(`{"protocol":"echo/v1","method":"echo","params":[1]} {"again":1}`), nil)
		assert.Equal(t, 400, code, body)
		assert.Contains(t, body, "more data after the JSON object")
		assert.NotContains(t, body, `"id"`, "a refused request carries no id")
	})
	t.Run("a missing admin token is a readable 401", func(t *testing.T) {
		code := s.call("POST", "/v1/providers", "", map[string]string{"id": "x", "template": "echo"}, nil)
		assert.Equal(t, 401, code)
		req, _ := http.NewRequest("POST", s.base+"/v1/providers", strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Contains(t, string(b), "needs the admin token in the Authorization header")
	})
	t.Run("an open breaker is 503", func(t *testing.T) {
		// Which answers first depends on the health poll: the breaker, or
		// routing that already marked the provider unhealthy. Both are 503.
		assert.Equal(t, 503, statusOf(llmError(fmt.Errorf("generate: %w", ollama.ErrUnavailable))))
		s.llm.Fail(1000)
		defer s.llm.Fail(0)
		code, body := 0, ""
		for range 20 {
			code, body = s.rawPost(strings.NewReader(`{"protocol":"llm/v1","method":"generate","params":{"model":"llama3.2","prompt":"x"},"timeout":"2s"}`), nil)
			if code == 503 {
				break
			}
		}
		assert.Equal(t, 503, code, body)
	})
}

// Routing agrees with readiness. When the last poll called every provider
// of a protocol unhealthy, a task checks again, live, before it is refused:
// a provider that came back is used at once. Probes read a recent poll
// rather than calling every provider per look.
func TestRoutingRechecksBeforeRefusing(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	// Stop the poller, so that only this test sets what the last poll saw.
	s.engine.stopPoll.Do(func() { close(s.engine.pollStop); <-s.engine.pollDone })
	stale := func(at time.Time) {
		rep := s.engine.reg.Health(context.Background())
		h := rep.Providers["echo-1"]
		h.Status, h.Message = lifecycle.StatusUnhealthy, "down at the last poll"
		rep.Providers["echo-1"] = h
		s.engine.health.Store(&healthSnapshot{rep: rep, at: at})
	}

	// Stamped ahead, so that it is still recent (within two poll
	// intervals) when readiness reads it, however slow the machine.
	stale(time.Now().Add(time.Hour))
	code, _ := s.rawReady()
	assert.Equal(t, 503, code, "a recent poll is what readiness reads")
	code, rec, msg := s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, "the task was refused on a stale poll: %s", msg)
	assert.Equal(t, "echo-1", rec.Provider)
	code, _ = s.rawReady()
	assert.Equal(t, 200, code, "the live check that the task made is what readiness reads now")

	stale(time.Now().Add(-time.Hour))
	code, _ = s.rawReady()
	assert.Equal(t, 200, code, "a poll too old is checked again")
}

func (s *service) rawReady() (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.base + "/readyz")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The provider's own answers map to the statuses of the README's table.
func TestProviderErrorsMapToStatuses(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"Ollama's 400", api.StatusError{StatusCode: 400, ErrorMessage: "bad input"}, 400},
		{"Ollama's 404", api.StatusError{StatusCode: 404, ErrorMessage: "model not found"}, 404},
		{"Ollama's 500", api.StatusError{StatusCode: 500, ErrorMessage: "boom"}, 502},
		{"breaker open", ollama.ErrUnavailable, 503},
		{"a deadline", context.DeadlineExceeded, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, statusOf(llmError(fmt.Errorf("ollama %q: generate: %w", "llm-1", tt.err))))
		})
	}
}

// Found in review: more request-body shapes that must not pass, a protocol
// label the client chooses, and a child's stdout carrying a secret.
func TestReviewFindings(t *testing.T) {
	s := startWith(t, `  leaky: {kind: process, protocol: leaky/v1, process: {command: [sh, -c, "echo connecting to postgres://app:hunter2@db/prod; exec sleep 100"], grace: 1s}}`, "")
	s.waitHealthy()
	t.Run("only the end may follow the JSON object", func(t *testing.T) {
		for body, want := range map[string]int{
			`{"protocol":"echo/v1","method":"echo","params":[1]}]`:                                   400,
			`{"protocol":"echo/v1","method":"echo","params":[1]}}}`:                                  400,
			`{"protocol":"echo/v1","method":"echo","params":[1]}` + strings.Repeat(" ", 1<<20) + `x`: 413,
			`{"protocol":"echo/v1","method":"echo","params":[1]}` + "\n \t":                          200,
		} {
			code, answer := s.rawPost(strings.NewReader(body), nil)
			assert.Equal(t, want, code, "%.70q: %s", body, answer)
		}
	})
	t.Run("an unknown protocol is not a label of its own", func(t *testing.T) {
		for i := range 20 {
			code, _ := s.rawPost(strings.NewReader(fmt.Sprintf(`{"protocol":"junk-%d","method":"m"}`, i)), nil)
			require.Equal(t, 404, code)
		}
		resp, err := http.Get(s.base + "/metrics")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.NotContains(t, string(b), "junk-")
	})
	t.Run("a child's stdout is logged redacted", func(t *testing.T) {
		require.NoError(t, s.engine.Add(context.Background(), "leaky-1", "leaky"))
		require.Eventually(t, func() bool { return strings.Contains(s.logs.String(), "not JSON-RPC") }, testkit.Wait, time.Millisecond)
		assert.NotContains(t, s.logs.String(), "hunter2")
	})
	t.Run("short client timeouts do not open the Ollama breaker", func(t *testing.T) {
		// Each deadline passes once the server holds the request.
		deadlines := s.taskDeadlines(30 * time.Millisecond)
		s.llm.SetHang(true)
		for range 8 {
			before := s.llm.Requests("/api/generate")
			answered := testkit.Go(func() int {
				code, _ := s.rawPost(strings.NewReader(`{"protocol":"llm/v1","method":"generate","params":{"model":"llama3.2","prompt":"x"},"timeout":"30ms"}`), nil)
				return code
			})
			pass := testkit.Receive(t, deadlines, "the task's deadline")
			require.Eventually(t, func() bool { return s.llm.Requests("/api/generate") > before }, testkit.Wait, time.Millisecond)
			pass()
			require.Equal(t, 504, testkit.Receive(t, answered, "the timed task"))
		}
		s.llm.SetHang(false)
		code, rec, msg := s.task("llm/v1", "generate", map[string]any{"model": "llama3.2", "prompt": "hi"})
		assert.Equal(t, 200, code, "an honest task after others' short timeouts: %s %s", rec.Status, msg)
	})
}

// Found in review: the engine's stop must not wait for a health poll that
// hangs on a provider for the whole health timeout: that time comes out of
// the providers' cleanup reserve.
func TestEngineStopDoesNotWaitForAHungHealthPoll(t *testing.T) {
	// A health timeout far past testkit.Wait: a stop that waited for the
	// hung poll would not return within it.
	s := startWith(t, "", "", fxmodule.WithRegistryOptions(lifecycle.WithHealthTimeout(time.Hour)))
	s.waitHealthy()
	s.llm.SetHang(true)
	defer s.llm.SetHang(false)
	before := s.llm.Requests("/api/version")
	require.Eventually(t, func() bool { return s.llm.Requests("/api/version") > before }, testkit.Wait, time.Millisecond, "a poll reaches the hung server")
	stopped := testkit.Go(func() error { return s.engine.stop(context.Background()) })
	require.NoError(t, testkit.Receive(t, stopped, "the engine's stop, while a health poll hangs"))
}

// A child's last stderr line that ends without a newline is logged once it
// exits: a crash message is not lost.
func TestChildsLastWordsAreLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	p, err := process.New(process.Config{ID: "c", Command: []string{"sh", "-c", "printf 'first\\nfatal: out of memory' >&2; exit 1"},
		Stderr: newChildStderr(zap.New(core), "c"), Grace: time.Second})
	require.NoError(t, err)
	require.NoError(t, p.Initialize(context.Background()))
	defer p.Cleanup(context.Background())
	require.Eventually(t, func() bool { return logs.Len() == 2 }, testkit.Wait, time.Millisecond)
	var lines []string
	for _, e := range logs.All() {
		lines = append(lines, e.ContextMap()["line"].(string))
		assert.Equal(t, "c", e.ContextMap()["provider"])
	}
	assert.Equal(t, []string{"first", "fatal: out of memory"}, lines)
}
