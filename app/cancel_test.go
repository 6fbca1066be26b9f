package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// startEverything starts the service with one instance of the MCP
// project's reference server, which takes several calls at once.
func startEverything(t *testing.T) *service {
	t.Helper()
	return startEverythingPool(t, "{min: 1, max: 1, per_instance: 8}")
}

// taskAnswer is the final answer to POST /v1/tasks.
type taskAnswer struct {
	code int
	rec  taskstore.Record // the record, or for an error, the one it carries
	msg  string           // the error, if any
}

// begin posts a task, asking for its id at once, and returns the id, from
// the early answer, and its final answer, once it comes.
func (s *service) begin(body map[string]any) (string, <-chan taskAnswer) {
	s.t.Helper()
	ids := make(chan string, 1)
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			select {
			case ids <- h.Get("Task-Id"):
			default:
			}
		}
		return nil
	}}
	answer := testkit.Go(func() taskAnswer { return s.post(httptrace.WithClientTrace(context.Background(), trace), body) })
	select {
	case id := <-ids:
		return id, answer
	case a := <-answer:
		s.t.Fatalf("the task was answered (%d %s) without an early answer that gives its id", a.code, a.msg)
	case <-time.After(testkit.Wait):
		s.t.Fatalf("no early answer with the task's id within %v", testkit.Wait)
	}
	return "", nil
}

// post sends a task, asking for its id at once, and decodes its answer;
// it may run on any goroutine.
func (s *service) post(ctx context.Context, body map[string]any) taskAnswer {
	b, err := json.Marshal(body)
	if err != nil {
		return taskAnswer{msg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/tasks", bytes.NewReader(b))
	if err != nil {
		return taskAnswer{msg: err.Error()}
	}
	req.Header.Set("Prefer", "early-task-id")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return taskAnswer{msg: err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return taskAnswer{code: resp.StatusCode, msg: err.Error()}
	}
	var out struct {
		taskstore.Record
		Error string           `json:"error"`
		Task  taskstore.Record `json:"task"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return taskAnswer{code: resp.StatusCode, msg: fmt.Sprintf("%v: %s", err, data)}
	}
	if out.Error != "" {
		return taskAnswer{code: resp.StatusCode, rec: out.Task, msg: out.Error}
	}
	return taskAnswer{code: resp.StatusCode, rec: out.Record}
}

// cancel sends DELETE /v1/tasks/{id}: its status, the record it carries,
// and its error, if any.
func (s *service) cancel(id string) (int, taskstore.Record, string) {
	s.t.Helper()
	var out struct {
		taskstore.Record                   // the record, when cancelled; else "error" only
		Task             *taskstore.Record `json:"task"`
	}
	code := s.call("DELETE", "/v1/tasks/"+id, "", nil, &out)
	switch {
	case out.Task != nil:
		return code, *out.Task, out.Error
	case code == http.StatusAccepted:
		return code, out.Record, ""
	}
	return code, taskstore.Record{}, out.Error
}

// longOperation is server-everything's slow tool, which answers after
// seconds unless it is cancelled.
func longOperation(seconds int) map[string]any {
	return map[string]any{"protocol": "mcp/v1", "method": "tools/call",
		"params": map[string]any{"name": "trigger-long-running-operation", "arguments": map[string]any{"duration": seconds, "steps": seconds}}}
}

// Case 7 of issue 21: request ids count up from 1 on each instance, so a
// caller could cancel another caller's call by naming its id in
// notifications/cancelled, as an outsider would, trying them in turn. It
// is refused, and the other call ends with its result.
func TestACallerCannotCancelAnotherCallersMCPCall(t *testing.T) {
	s := startEverything(t)
	body := longOperation(2)
	body["timeout"] = "30s"
	other := testkit.Go(func() taskAnswer { return s.post(context.Background(), body) })
	require.Eventually(t, func() bool { return s.engine.Pools()[0].Busy == 1 }, testkit.Wait, 5*time.Millisecond,
		"the other caller's call holds the instance")

	// Every id the instance can have used by now, twice over: the second
	// round comes after the other call's request was sent, whatever its id.
	refused := map[int]int{}
	var msg string
	for range 2 {
		for id := 1; id <= 300; id++ {
			code, _, m := s.task("mcp/v1", "notifications/cancelled", map[string]any{"requestId": id, "reason": "mine now"})
			refused[code]++
			msg = m
		}
	}
	assert.Equal(t, map[int]int{400: 600}, refused, "answers to notifications/cancelled, by status")
	assert.Contains(t, msg, "DELETE /v1/tasks/{id}", "the refusal says how to cancel a task")

	got := testkit.Receive(t, other, "the other caller's call")
	require.Equal(t, 200, got.code, got.msg)
	assert.Equal(t, "ok", got.rec.Status)
	assert.Contains(t, string(got.rec.Output), "Long running operation completed")
}

// DELETE /v1/tasks/{id} cancels the running task it names, and no other:
// the call ends at once as cancelled, and is stored so; another call on the
// same instance ends with its result. An id that names no task is 404, one
// that ended 409, with its record.
func TestDeleteCancelsARunningMCPCall(t *testing.T) {
	s := startEverything(t)
	long, longAnswer := s.begin(longOperation(600))
	short, shortAnswer := s.begin(longOperation(2))
	require.Eventually(t, func() bool { return s.engine.Pools()[0].Busy == 2 }, testkit.Wait, 5*time.Millisecond,
		"both calls hold the instance")

	code, rec, msg := s.cancel(long)
	require.Equal(t, 202, code, msg)
	assert.Equal(t, long, rec.ID)
	assert.Equal(t, "cancelled", rec.Status)
	assert.Contains(t, rec.Error, "cancelled by a client")

	// Within testkit.Wait, far less than the operation's 600 s.
	a := testkit.Receive(t, longAnswer, "the cancelled call's answer")
	assert.Equal(t, 409, a.code, a.msg)
	assert.Equal(t, "cancelled", a.rec.Status)
	assert.Contains(t, a.msg, "DELETE /v1/tasks/{id}")
	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+long, "", nil, &stored))
	assert.Equal(t, "cancelled", stored.Status)

	a = testkit.Receive(t, shortAnswer, "the other call's answer")
	require.Equal(t, 200, a.code, a.msg)
	assert.Contains(t, string(a.rec.Output), "Long running operation completed")

	for id, status := range map[string]string{long: "cancelled", short: "ok"} {
		code, rec, msg := s.cancel(id)
		assert.Equal(t, 409, code, msg)
		assert.Equal(t, status, rec.Status)
		assert.Contains(t, msg, "ended "+status)
	}
	for _, id := range []string{newTaskID(), "nope", "%00", "0123456789ABCDEF01234567"} {
		code, _, msg := s.cancel(id)
		assert.Equal(t, 404, code, "%s: %s", id, msg)
	}
}

// Against the strict server, which records what it gets: a caller's
// notifications/cancelled naming another call's request id, or its
// progress, never reaches the server; DELETE sends notifications/cancelled
// for its task's request only, with the reason.
func TestDeleteSendsCancelledForThatRequestOnly(t *testing.T) {
	s := startStrict(t)
	slow := map[string]any{"protocol": "mcp/v1", "method": "tools/call", "params": map[string]any{"name": "slow", "arguments": map[string]any{}}}

	first, firstAnswer := s.begin(slow)
	require.Eventually(t, func() bool { return len(s.seen().Slow) == 1 }, testkit.Wait, 5*time.Millisecond)
	second, secondAnswer := s.begin(slow)
	require.Eventually(t, func() bool { return len(s.seen().Slow) == 2 }, testkit.Wait, 5*time.Millisecond)
	ids := s.seen().Slow

	for _, n := range []struct {
		method string
		params map[string]any
	}{
		{"notifications/cancelled", map[string]any{"requestId": ids[0]}},
		{"notifications/progress", map[string]any{"progressToken": 1, "progress": 1}},
		{"notifications/tasks/status", map[string]any{"taskId": "t", "status": "cancelled"}},
		{"notifications/made_up", nil},
	} {
		code, _, msg := s.task("mcp/v1", n.method, n.params)
		assert.Equal(t, 400, code, "%s: %s", n.method, msg)
		assert.Contains(t, msg, "every caller of the instance shares", n.method)
	}
	assert.Empty(t, s.seen().Cancelled, "no caller's cancellation reached the server")

	code, _, msg := s.cancel(first)
	require.Equal(t, 202, code, msg)
	a := testkit.Receive(t, firstAnswer, "the cancelled call's answer")
	assert.Equal(t, "cancelled", a.rec.Status)
	require.Eventually(t, func() bool { return len(s.seen().Cancelled) > 0 }, testkit.Wait, 5*time.Millisecond)
	seen := s.seen()
	assert.Equal(t, ids[:1], seen.Cancelled, "the cancellation names the first call's request only")
	assert.Equal(t, context.Canceled.Error(), seen.Reasons[0], "the SDK gives the context's error as the reason")

	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+second, "", nil, &stored))
	assert.Equal(t, "running", stored.Status, "the second call runs on")
	code, _, msg = s.cancel(second)
	require.Equal(t, 202, code, msg)
	testkit.Receive(t, secondAnswer, "the second call's answer")
	require.Eventually(t, func() bool { return len(s.seen().Cancelled) == 2 }, testkit.Wait, 5*time.Millisecond)
	assert.Equal(t, ids, s.seen().Cancelled)
}

// The task's id comes in a 103 answer only to a client that asks for it
// (some take any 1xx for the final answer), and in the final answer's
// header to every client.
func TestTaskIDComesEarlyOnlyWhenAsked(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	for _, prefer := range []string{"", "respond-async, early-task-id"} {
		var early []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			early = append(early, fmt.Sprint(code, " ", h.Get("Task-Id")))
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", s.base+"/v1/tasks",
			bytes.NewReader([]byte(`{"protocol": "echo/v1", "method": "echo", "params": {"x": 1}}`)))
		require.NoError(t, err)
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		resp, err := (&http.Client{Timeout: testkit.Wait}).Do(req)
		require.NoError(t, err)
		var rec taskstore.Record
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
		require.NoError(t, resp.Body.Close())
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, rec.ID, resp.Header.Get("Task-Id"))
		if prefer == "" {
			assert.Empty(t, early, "no early answer unasked")
			continue
		}
		assert.Equal(t, []string{"103 " + rec.ID}, early)
	}
}

// MCP's tasks/* requests reach the tasks of the session every caller
// shares: tasks/list would show one caller the others' tasks and
// tasks/cancel end them. They are refused before they reach the server, as
// are a request asking to run as such a task, the requests that change the
// session for every caller, and params a server may leave unanswered; the
// instance serves on.
func TestACallerCannotReachTheSessionsTasks(t *testing.T) {
	s := startEverything(t)
	for _, method := range []string{"tasks/list", "tasks/get", "tasks/cancel", "tasks/result"} {
		code, _, msg := s.task("mcp/v1", method, map[string]any{"taskId": "x"})
		assert.Equal(t, 400, code, method)
		assert.Contains(t, msg, "every caller of the instance shares", method)
	}
	code, _, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}, "task": map[string]any{"ttl": 60000}})
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "params.task")

	// What would change the session for every caller, or name something
	// of it, or leave the server silent (params that are not an object).
	for _, c := range []struct {
		method string
		params any
		want   string
	}{
		{"logging/setLevel", map[string]any{"level": "debug"}, "for every caller"},
		{"resources/subscribe", map[string]any{"uri": "demo://resource/static/document/architecture.md"}, "for every caller"},
		{"resources/unsubscribe", map[string]any{"uri": "demo://resource/static/document/architecture.md"}, "for every caller"},
		{"tools/call", []any{"echo"}, "MCP params are a JSON object"},
		{"tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}, "_meta": map[string]any{"progressToken": 7}}, "progressToken"},
		{"tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"},
			"_meta": map[string]any{"io.modelcontextprotocol/related-task": map[string]any{"taskId": "x"}}}, "related-task"},
	} {
		code, _, msg := s.task("mcp/v1", c.method, c.params)
		assert.Equal(t, 400, code, "%s %v", c.method, c.params)
		assert.Contains(t, msg, c.want, "%s %v", c.method, c.params)
	}

	code, rec, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}})
	require.Equal(t, 200, code, msg)
	assert.Contains(t, string(rec.Output), "hi")
}

// The MCP reference server answers an unknown tool and arguments its
// schema refuses with a tool result that says isError: the caller's
// mistakes, 422, with that whole result as the task's output.
func TestAToolsRefusalIsTheCallersMistake(t *testing.T) {
	s := startEverything(t)
	for name, params := range map[string]map[string]any{
		"an unknown tool":    {"name": "no-such-tool", "arguments": map[string]any{}},
		"a bad argument":     {"name": "get-structured-content", "arguments": map[string]any{"location": "Atlantis"}},
		"a missing argument": {"name": "echo", "arguments": map[string]any{}},
	} {
		code, rec, msg := s.task("mcp/v1", "tools/call", params)
		assert.Equal(t, 422, code, "%s: %s", name, msg)
		assert.Equal(t, "error", rec.Status, name)
		var result struct {
			IsError bool `json:"isError"`
			Content []struct{ Type, Text string }
		}
		require.NoError(t, json.Unmarshal(rec.Output, &result), "%s: the tool's result is the output: %s", name, msg)
		assert.True(t, result.IsError, name)
		assert.NotEmpty(t, result.Content, name)
	}
	// A tool that succeeds keeps its structured content, as before.
	code, rec, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "get-structured-content", "arguments": map[string]any{"location": "Chicago"}})
	require.Equal(t, 200, code, msg)
	var ok struct {
		StructuredContent map[string]any `json:"structuredContent"`
	}
	require.NoError(t, json.Unmarshal(rec.Output, &ok))
	assert.Contains(t, ok.StructuredContent, "temperature")
}
