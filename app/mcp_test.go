package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// startStrict starts the service with one instance of the tests' strict
// MCP server, which takes several calls at once.
func startStrict(t *testing.T) *service {
	t.Helper()
	argv, env := mcptest.Strict()
	s := startWith(t, fmt.Sprintf(`  strict:
    kind: mcp
    critical: true
    process: {command: [%q, %q], env: [%q, %q], grace: 1s}
    pool: {min: 1, max: 1, per_instance: 4}`, argv[0], argv[1], env[0], env[1]), "")
	s.waitHealthy()
	return s
}

// seen asks the strict MCP server what it saw.
func (s *service) seen() mcptest.Seen {
	s.t.Helper()
	code, rec, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "seen", "arguments": map[string]any{}})
	require.Equal(s.t, 200, code, msg)
	var out struct{ StructuredContent mcptest.Seen }
	require.NoError(s.t, json.Unmarshal(rec.Output, &out))
	return out.StructuredContent
}

// Through the service, against a strict MCP server of the tests' own: the
// handshake before anything, a task that times out and one whose client
// goes away cancelled on the server with their request ids, a notification
// answered 202, a tool's error a failed task.
func TestMCPThroughTheService(t *testing.T) {
	s := startStrict(t)

	var list struct{ Providers []ProviderView }
	require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
	for _, p := range list.Providers {
		if p.ID == "strict-1" {
			assert.Equal(t, "mcp", p.Kind)
			assert.Equal(t, mcptest.StrictInfo["name"], p.Health.Resources["server_name"])
		}
	}

	// A task that times out is cancelled on the server: its deadline
	// passes once the server has the call.
	deadlines := s.taskDeadlines(100 * time.Millisecond)
	type answer struct {
		code int
		rec  taskstore.Record
	}
	timedOut := testkit.Go(func() answer {
		var out struct {
			Task taskstore.Record `json:"task"`
		}
		code := s.call("POST", "/v1/tasks", "", map[string]any{"protocol": "mcp/v1", "method": "tools/call", "timeout": "100ms",
			"params": map[string]any{"name": "slow", "arguments": map[string]any{}}}, &out)
		return answer{code, out.Task}
	})
	pass := testkit.Receive(t, deadlines, "the timed task's deadline")
	require.Eventually(t, func() bool { return len(s.seen().Slow) == 1 }, testkit.Wait, 5*time.Millisecond)
	pass()
	a := testkit.Receive(t, timedOut, "the timed task")
	assert.Equal(t, 504, a.code)
	assert.Equal(t, "timeout", a.rec.Status)
	assert.Contains(t, a.rec.Error, "task timed out after 100ms")

	// A task whose client goes away is cancelled too.
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/tasks",
		strings.NewReader(`{"protocol": "mcp/v1", "method": "tools/call", "params": {"name": "slow", "arguments": {}}}`))
	require.NoError(t, err)
	gone := testkit.Go(func() error { _, err := http.DefaultClient.Do(req); return err })
	require.Eventually(t, func() bool { return len(s.seen().Slow) == 2 }, testkit.Wait, 5*time.Millisecond)
	cancel()
	require.Error(t, testkit.Receive(t, gone, "the request whose client went away"))

	require.Eventually(t, func() bool { return len(s.seen().Cancelled) == 2 }, testkit.Wait, 5*time.Millisecond)
	seen := s.seen()
	assert.Equal(t, seen.Slow, seen.Cancelled, "each cancellation names its request")

	// A notification is the service's to send, and refused, 400; a tool's
	// error fails the task, 422, with the tool's whole result, redacted as
	// the error is.
	require.Equal(t, 400, s.call("POST", "/v1/tasks", "", map[string]any{"protocol": "mcp/v1", "method": "notifications/roots/list_changed"}, nil))
	code, rec, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "fail", "arguments": map[string]any{"text": "no such row, dsn postgres://app:hunter2@db/x"}})
	assert.Equal(t, 422, code, msg)
	assert.Equal(t, "error", rec.Status)
	assert.Contains(t, msg, "no such row")
	assert.NotContains(t, msg, "hunter2")
	var result struct {
		IsError bool `json:"isError"`
		Content []struct{ Type, Text string }
	}
	require.NoError(t, json.Unmarshal(rec.Output, &result), "the tool's result is the task's output: %s", msg)
	assert.True(t, result.IsError)
	require.NotEmpty(t, result.Content)
	assert.Contains(t, result.Content[0].Text, "no such row, dsn postgres://app:")

	seen = s.seen()
	assert.Empty(t, seen.Violations, "nothing out of the protocol's order")
	assert.Empty(t, seen.Notified)
	var init struct {
		ClientInfo struct{ Name, Version string }
	}
	require.NoError(t, json.Unmarshal(seen.Initialize, &init))
	assert.Equal(t, "gleitzeit-service", init.ClientInfo.Name)
	assert.NotEmpty(t, init.ClientInfo.Version)
}

// MCP's lists come whole through the service: every page of a server that
// pages them, unless the caller passes a cursor, when it pages for itself.
func TestMCPListsComeWhole(t *testing.T) {
	s := startStrict(t)
	names := func(output json.RawMessage) ([]string, map[string]json.RawMessage) {
		var r map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(output, &r))
		var tools []struct{ Name string }
		require.NoError(t, json.Unmarshal(r["tools"], &tools))
		var out []string
		for _, tool := range tools {
			out = append(out, tool.Name)
		}
		return out, r
	}
	code, rec, msg := s.task("mcp/v1", "tools/list", nil)
	require.Equal(t, 200, code, msg)
	got, r := names(rec.Output)
	assert.Equal(t, mcptest.StrictTools, got, "every page, in order")
	assert.NotContains(t, r, "nextCursor")

	code, rec, msg = s.task("mcp/v1", "tools/list", map[string]any{"cursor": "2"})
	require.Equal(t, 200, code, msg)
	got, r = names(rec.Output)
	assert.Equal(t, mcptest.StrictTools[2:2+mcptest.StrictPageSize], got, "the caller's page")
	assert.JSONEq(t, `"4"`, string(r["nextCursor"]))
}

// An mcp template's roots reach the reference server, which shows the
// tool it hides from a client without roots and reads them back.
func TestAnMCPTemplatesRootsReachTheServer(t *testing.T) {
	dir := t.TempDir()
	argv := mcptest.Everything(t)
	s := startWith(t, fmt.Sprintf(`  everything:
    kind: mcp
    critical: true
    process: {command: [%q, %q, %q], grace: 1s}
    mcp: {roots: [%q]}
    pool: {min: 1, max: 1, per_instance: 4}`, argv[0], argv[1], argv[2], dir), "")
	s.waitHealthy()
	var rec taskstore.Record
	require.Eventually(t, func() bool {
		var code int
		code, rec, _ = s.task("mcp/v1", "tools/call", map[string]any{"name": "get-roots-list", "arguments": map[string]any{}})
		return code == 200
	}, testkit.Wait, 50*time.Millisecond, "the tool shows once the server has the roots")
	assert.Contains(t, string(rec.Output), "file://"+dir)
}
