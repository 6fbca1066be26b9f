package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// everything starts the MCP project's reference server, as pinned in
// internal/mcptest.
func everything(t *testing.T, cfg mcp.Config) (*mcp.Client, *observer.ObservedLogs) {
	t.Helper()
	return started(t, mcptest.Everything(t), nil, cfg)
}

// The handshake with the real server: it speaks the newest version, says
// who it is, answers ping, and announces the tools it adds once
// initialized.
func TestEverythingHandshake(t *testing.T) {
	c, logs := everything(t, mcp.Config{})
	h := c.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	assert.Equal(t, "mcp-servers/everything", h.Resources["server_name"])
	assert.NotEmpty(t, h.Resources["server_version"])
	assert.Equal(t, mcp.LatestVersion, h.Resources["protocol_version"])
	assert.Contains(t, h.Resources["capabilities"], "tools")
	assert.Contains(t, h.Resources["capabilities"], "logging")

	s, ok := c.Session()
	require.True(t, ok)
	assert.NotEmpty(t, s.Instructions)

	require.Eventually(t, func() bool {
		return logs.FilterMessage("server list changed").FilterField(zap.String("method", "notifications/tools/list_changed")).Len() > 0
	}, testkit.Wait, 5*time.Millisecond)
}

// The real server's tools, through one client: answers, tool errors,
// progress, and a cancellation after which the client goes on.
func TestEverythingTools(t *testing.T) {
	// The cancelled operation's timers keep node alive after its stdin
	// ends: no need to wait long for an exit that will not come.
	c, logs := everything(t, mcp.Config{CloseWait: 100 * time.Millisecond})

	t.Run("echo answers its message", func(t *testing.T) {
		result, err := callTool(t, c, "echo", map[string]string{"message": "hello, everything"})
		require.NoError(t, err)
		assert.Contains(t, text(t, result), "hello, everything")
	})

	t.Run("get-sum adds", func(t *testing.T) {
		a, b := 17, 25
		result, err := callTool(t, c, "get-sum", map[string]int{"a": a, "b": b})
		require.NoError(t, err)
		assert.Contains(t, text(t, result), strconv.Itoa(a+b))
	})

	t.Run("an unknown tool is a tool error", func(t *testing.T) {
		result, err := callTool(t, c, "no-such-tool", map[string]any{})
		require.ErrorIs(t, err, mcp.ErrToolError)
		var toolErr *mcp.ToolError
		require.ErrorAs(t, err, &toolErr)
		assert.Equal(t, "no-such-tool", toolErr.Tool)
		assert.Contains(t, toolErr.Message, "no-such-tool")
		assert.NotEmpty(t, result)
	})

	t.Run("a progress token brings progress", func(t *testing.T) {
		logs.TakeAll()
		const steps = 3
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_, err := c.Call(ctx, "tools/call", toolParams(t, "trigger-long-running-operation",
			map[string]any{"duration": 0.3, "steps": steps}, map[string]any{"progressToken": "tok-1"}))
		require.NoError(t, err)
		// Each notification came before the answer; the SDK handles them
		// on a goroutine of its own, so the last may be logged after it.
		require.Eventually(t, func() bool { return logs.FilterMessage("server progress").Len() == steps }, testkit.Wait, 2*time.Millisecond)
		got := logs.FilterMessage("server progress").All()
		for i, e := range got {
			assert.Equal(t, map[string]any{"provider": "mcp", "progress_token": "tok-1",
				"progress": float64(i + 1), "total": float64(steps)}, e.ContextMap())
		}
	})

	t.Run("CallWithProgress hands this call's progress over as it comes", func(t *testing.T) {
		// A minute-long call, cancelled from its first progress: that
		// came while the call ran.
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		var early int
		_, err := c.CallWithProgress(ctx, "tools/call", toolParams(t, "trigger-long-running-operation",
			map[string]any{"duration": 60, "steps": 60}, nil), func(json.RawMessage) {
			early++
			cancel()
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Positive(t, early)

		const steps = 4
		ctx, cancel = context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		var got []json.RawMessage
		result, err := c.CallWithProgress(ctx, "tools/call", toolParams(t, "trigger-long-running-operation",
			map[string]any{"duration": 0.4, "steps": steps}, nil), func(p json.RawMessage) { got = append(got, p) })
		require.NoError(t, err)
		assert.NotEmpty(t, text(t, result))
		// The steps, in order, each handed over before the call returned;
		// the SDK may handle the last after the answer, and then it is
		// not.
		require.GreaterOrEqual(t, len(got), steps-1, "the steps before the last")
		require.LessOrEqual(t, len(got), steps)
		for i, p := range got {
			var n struct {
				ProgressToken string
				Progress      float64
			}
			require.NoError(t, json.Unmarshal(p, &n))
			assert.Equal(t, float64(i+1), n.Progress)
			assert.Contains(t, n.ProgressToken, "gleitzeit-")
		}
		_, err = c.CallWithProgress(ctx, "tools/call", toolParams(t, "echo", map[string]string{"message": "x"},
			map[string]any{"progressToken": "mine"}), func(json.RawMessage) {})
		require.ErrorContains(t, err, "the client chooses the token")
	})

	t.Run("a cancelled call returns and the client goes on", func(t *testing.T) {
		logs.TakeAll()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		params := toolParams(t, "trigger-long-running-operation",
			map[string]any{"duration": 60, "steps": 600}, map[string]any{"progressToken": "tok-2"})
		called := testkit.Go(func() error { _, err := c.Call(ctx, "tools/call", params); return err })
		// Cancelled once the operation runs on the server: its first
		// progress has come.
		require.Eventually(t, func() bool { return logs.FilterMessage("server progress").Len() > 0 }, testkit.Wait, 5*time.Millisecond)
		cancel()
		require.ErrorIs(t, testkit.Receive(t, called, "the cancelled call"), context.Canceled)

		result, err := callTool(t, c, "echo", map[string]string{"message": "after the cancel"})
		require.NoError(t, err)
		assert.Contains(t, text(t, result), "after the cancel")
		h := c.HealthCheck(context.Background())
		assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	})
}

// The real server's log messages arrive at the level they name.
func TestEverythingLogs(t *testing.T) {
	c, logs := everything(t, mcp.Config{})
	_, err := callTool(t, c, "toggle-simulated-logging", map[string]any{})
	require.NoError(t, err)
	// The first message is sent at once, but not before the answer.
	require.Eventually(t, func() bool { return logs.FilterMessage("server log").Len() > 0 }, testkit.Wait, 5*time.Millisecond)
	_, err = callTool(t, c, "toggle-simulated-logging", map[string]any{}) // off again
	require.NoError(t, err)

	e := logs.FilterMessage("server log").All()[0]
	fields := e.ContextMap()
	assert.Equal(t, "mcp", fields["provider"])
	assert.NotEmpty(t, fields["data"])
	want := map[string]string{"debug": "debug", "info": "info", "notice": "warn", "warning": "warn",
		"error": "error", "critical": "error", "alert": "error", "emergency": "error"}
	require.Contains(t, want, fields["server_level"])
	assert.Equal(t, want[fields["server_level"].(string)], e.Level.String())
}

// Cleanup closes the server's stdin, node exits by itself, and nothing of
// its process group is left.
func TestEverythingCleanup(t *testing.T) {
	ch, onExit := exits()
	cfg := mcp.Config{CloseWait: testkit.Wait}
	cfg.Process.OnExit = onExit
	c, _ := everything(t, cfg)
	pid, ok := c.HealthCheck(context.Background()).Resources["pid"].(int)
	require.True(t, ok)

	var err error
	testkit.Within(t, "Cleanup", func() { err = c.Cleanup(context.Background()) })
	require.NoError(t, err)
	got := testkit.Receive(t, ch, "OnExit")
	assert.Equal(t, process.Exit{Pid: pid, Code: 0, CleanedUp: true}, got, "node exited by itself: %v", got)
	assert.True(t, errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH), "the process group is gone")
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "node is gone, not a zombie")
}

// Roots offered: the real server shows the tool it hides from a client
// without them, and its call reads the roots back through roots/list.
func TestEverythingSeesTheRootsOffered(t *testing.T) {
	toolNames := func(c *mcp.Client) []string {
		var names []string
		require.Eventually(t, func() bool {
			out, err := c.Call(context.Background(), "tools/list", nil)
			require.NoError(t, err)
			var r struct{ Tools []struct{ Name string } }
			require.NoError(t, json.Unmarshal(out, &r))
			names = names[:0]
			for _, tool := range r.Tools {
				names = append(names, tool.Name)
			}
			return slices.Contains(names, "echo")
		}, testkit.Wait, 10*time.Millisecond)
		return names
	}
	plain, _ := everything(t, mcp.Config{})
	assert.NotContains(t, toolNames(plain), "get-roots-list", "hidden from a client without roots")

	root := mcp.Root{URI: "file:///srv/data", Name: "data"}
	c, _ := everything(t, mcp.Config{Roots: []mcp.Root{root}})
	var names []string
	require.Eventually(t, func() bool { names = toolNames(c); return slices.Contains(names, "get-roots-list") },
		testkit.Wait, 50*time.Millisecond, "the tool shows once the server has the roots: %v", names)
	result, err := callTool(t, c, "get-roots-list", map[string]any{})
	require.NoError(t, err)
	assert.Contains(t, string(result), root.URI)
}

// A client with a Sampler declares sampling: server-everything then shows
// trigger-sampling-request, whose sampling/createMessage reaches the
// Sampler as text, and whose answer is the Sampler's. A Sampler's error
// fails the tool, and the client goes on.
func TestEverythingSamplesThroughTheSampler(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []mcp.SamplingRequest
		fail bool
	)
	sampler := func(_ context.Context, req mcp.SamplingRequest) (mcp.SamplingResult, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, req)
		if fail {
			return mcp.SamplingResult{}, errors.New("no model today")
		}
		return mcp.SamplingResult{Model: "llama3.2", Text: "sampled: " + req.Messages[0].Text, StopReason: "endTurn"}, nil
	}
	plain, _ := everything(t, mcp.Config{})
	_, err := callTool(t, plain, "trigger-sampling-request", map[string]any{"prompt": "hi"})
	require.Error(t, err, "hidden from a client without sampling")

	c, logs := everything(t, mcp.Config{Sampler: sampler})
	var result json.RawMessage
	require.Eventually(t, func() bool {
		result, err = callTool(t, c, "trigger-sampling-request", map[string]any{"prompt": "why is the sky blue?", "maxTokens": 42})
		return err == nil
	}, testkit.Wait, 50*time.Millisecond, "the tool shows once the server knows the client samples: %v", err)
	assert.Contains(t, text(t, result), "sampled: ")
	assert.Contains(t, text(t, result), "why is the sky blue?")
	assert.Contains(t, text(t, result), "llama3.2")

	mu.Lock()
	require.NotEmpty(t, seen)
	got := seen[len(seen)-1]
	fail = true
	mu.Unlock()
	assert.Equal(t, "You are a helpful test server.", got.SystemPrompt)
	assert.Equal(t, int64(42), got.MaxTokens)
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "user", got.Messages[0].Role)

	result, err = callTool(t, c, "trigger-sampling-request", map[string]any{"prompt": "again"})
	require.Error(t, err)
	told := err.Error() + string(result)
	assert.Contains(t, told, "sampling failed", "the server is told sampling failed")
	assert.NotContains(t, told, "no model today", "and not why: that names the client's own providers")
	require.Equal(t, 1, logs.FilterMessage("sampling failed").Len())
	assert.Zero(t, logs.FilterMessage("server request refused").Len(), "a sampling that failed was not refused")
	_, err = callTool(t, c, "echo", map[string]string{"message": "still here"})
	require.NoError(t, err)
}
