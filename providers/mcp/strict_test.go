package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// seen asks the strict server what it saw.
func seen(t *testing.T, c *mcp.Client) mcptest.Seen {
	t.Helper()
	got, err := askSeen(c)
	require.NoError(t, err)
	return got
}

// askSeen is seen for a goroutine other than the test's.
func askSeen(c *mcp.Client) (mcptest.Seen, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	result, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name": "seen", "arguments": {}}`))
	if err != nil {
		return mcptest.Seen{}, err
	}
	var r struct{ StructuredContent mcptest.Seen }
	err = json.Unmarshal(result, &r)
	return r.StructuredContent, err
}

// The handshake is initialize, then notifications/initialized, and nothing
// else before: the strict server, which refuses and records anything
// else, saw no violation. initialize asks for the newest version and
// offers no capabilities.
func TestHandshakeComesFirst(t *testing.T) {
	c, _ := strict(t, mcp.Config{ClientName: "test-client", ClientVersion: "0.1"})
	got := seen(t, c)
	assert.Empty(t, got.Violations)

	var sent struct {
		ProtocolVersion string
		Capabilities    map[string]any
		ClientInfo      map[string]string
	}
	require.NoError(t, json.Unmarshal(got.Initialize, &sent))
	assert.Equal(t, mcp.LatestVersion, sent.ProtocolVersion)
	assert.Equal(t, mcp.SupportedVersions()[0], sent.ProtocolVersion)
	assert.NotNil(t, sent.Capabilities, "capabilities is an object")
	assert.Empty(t, sent.Capabilities)
	assert.Equal(t, map[string]string{"name": "test-client", "version": "0.1"}, sent.ClientInfo)
}

// Before Initialize, the client sends nothing and says why.
func TestNothingBeforeInitialize(t *testing.T) {
	argv, env := mcptest.Strict()
	c, _ := client(t, argv, env, mcp.Config{})
	_, err := c.Call(context.Background(), "tools/list", nil)
	require.ErrorIs(t, err, mcp.ErrNotInitialized)
	h := c.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
}

// Without a name and version of its own, the client names itself after
// this module.
func TestClientInfoDefaults(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	var sent struct{ ClientInfo map[string]string }
	require.NoError(t, json.Unmarshal(seen(t, c).Initialize, &sent))
	assert.Equal(t, mcp.DefaultClientName, sent.ClientInfo["name"])
	assert.NotEmpty(t, sent.ClientInfo["version"])
}

func TestToolAnswers(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	result, err := callTool(t, c, "echo", map[string]string{"message": "hello, strict"})
	require.NoError(t, err)
	assert.Equal(t, "hello, strict", text(t, result))
}

// A tool result with "isError": true is returned, with a ToolError that
// carries its text.
func TestToolErrorCarriesTheText(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	result, err := callTool(t, c, "fail", map[string]string{"text": "disk full"})
	require.ErrorIs(t, err, mcp.ErrToolError)
	var toolErr *mcp.ToolError
	require.ErrorAs(t, err, &toolErr)
	assert.Equal(t, "fail", toolErr.Tool)
	assert.Equal(t, "disk full", toolErr.Message)
	assert.Equal(t, "mcp", toolErr.Provider)
	assert.Equal(t, "disk full", text(t, result), "the result comes with the error")
}

// A tool error's text is redacted, then cut short at a rune's boundary.
func TestToolErrorTextIsBoundedAndRedacted(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	long := "connect postgres://app:hunter2@db/app: " + strings.Repeat("é", 1000)
	_, err := callTool(t, c, "fail", map[string]string{"text": long})
	var toolErr *mcp.ToolError
	require.ErrorAs(t, err, &toolErr)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.True(t, utf8.ValidString(toolErr.Message))
	assert.LessOrEqual(t, len(toolErr.Message), 500+len("…"))
	assert.True(t, strings.HasSuffix(toolErr.Message, "…"))
	assert.Contains(t, toolErr.Message, "postgres://")
}

// A call whose context ends first returns the context's error and tells
// the server with notifications/cancelled, naming the request's id; the
// client goes on working.
func TestCancelledCallIsNamedToTheServer(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	params := toolParams(t, "slow", map[string]any{}, nil)
	result := testkit.Go(func() error { _, err := c.Call(ctx, "tools/call", params); return err })
	// The context ends once the server has the call: one that ends before
	// the call is sent cancels nothing (TestCallWithAnEndedContextIsNotSent).
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got, err := askSeen(c)
		require.NoError(ct, err)
		assert.Len(ct, got.Slow, 1)
	}, testkit.Wait, 5*time.Millisecond, "the slow call reaches the server")
	cancel()
	require.ErrorIs(t, testkit.Receive(t, result, "the cancelled call"), context.Canceled)

	// The SDK sends the cancellation off the caller's way back.
	var got mcptest.Seen
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		got, err = askSeen(c)
		require.NoError(ct, err)
		assert.Len(ct, got.Cancelled, 1)
	}, testkit.Wait, 5*time.Millisecond, "the cancellation reaches the server")
	require.Len(t, got.Slow, 1)
	assert.JSONEq(t, string(got.Slow[0]), string(got.Cancelled[0]), "the cancellation names the request")
	assert.Equal(t, []string{context.Canceled.Error()}, got.Reasons)
	assert.Empty(t, got.Violations)

	_, err := callTool(t, c, "echo", map[string]string{"message": "still here"})
	require.NoError(t, err)
}

// A call whose context has ended before it is sent is not sent, and so
// not cancelled.
func TestCallWithAnEndedContextIsNotSent(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Call(ctx, "tools/call", toolParams(t, "slow", map[string]any{}, nil))
	require.ErrorIs(t, err, context.Canceled)
	got := seen(t, c)
	assert.Empty(t, got.Slow)
	assert.Empty(t, got.Cancelled)
}

// The server's requests are refused with an error, whatever they ask; the
// client offers none of them (roots only when it has some). Those of MCP
// are logged as warnings; the SDK refuses a method MCP does not have
// before the client sees it.
func TestServerRequestsAreRefused(t *testing.T) {
	c, logs := strict(t, mcp.Config{Process: processID("tools")})
	for _, method := range []string{"sampling/createMessage", "roots/list", "elicitation/create", "anything/else"} {
		t.Run(method, func(t *testing.T) {
			logs.TakeAll()
			result, err := callTool(t, c, "ask", map[string]string{"method": method})
			require.NoError(t, err)
			var answer struct {
				Error struct {
					Code    int
					Message string
				}
			}
			require.NoError(t, json.Unmarshal([]byte(text(t, result)), &answer))
			assert.NotZero(t, answer.Error.Code, "an error, not a result: %s", text(t, result))
			assert.NotEmpty(t, answer.Error.Message)

			warned := logs.FilterMessage("server request refused").All()
			if method == "anything/else" {
				assert.Empty(t, warned)
				return
			}
			require.Len(t, warned, 1)
			assert.Equal(t, zapcore.WarnLevel, warned[0].Level)
			assert.Equal(t, map[string]any{"provider": "tools", "method": method}, warned[0].ContextMap())
		})
	}
}

// The server's ping is answered with an empty object.
func TestServerPingIsAnswered(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	result, err := callTool(t, c, "ask", map[string]string{"method": "ping"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"result": {}}`, text(t, result))
}

// notify has the strict server send a notification, which arrives before
// the tool's answer; the SDK handles it on a goroutine of its own, so it
// may be logged after the answer is returned: see logged.
func notify(t *testing.T, c *mcp.Client, method string, params any) {
	t.Helper()
	_, err := callTool(t, c, "notify", map[string]any{"method": method, "params": params})
	require.NoError(t, err)
}

// logged waits for the one entry that logs, filtered as it wants,
// holds.
func logged(t *testing.T, logs *observer.ObservedLogs, want func(*observer.ObservedLogs) *observer.ObservedLogs) []observer.LoggedEntry {
	t.Helper()
	require.Eventually(t, func() bool { return want(logs).Len() > 0 }, testkit.Wait, 2*time.Millisecond)
	got := want(logs).All()
	require.Len(t, got, 1)
	return got
}

// The server's log messages are logged at the level they name, with the
// server's level, logger and data.
func TestServerLogIsLoggedAtItsLevel(t *testing.T) {
	c, logs := strict(t, mcp.Config{})
	tests := []struct {
		give string
		want zapcore.Level
	}{
		{"debug", zapcore.DebugLevel},
		{"info", zapcore.InfoLevel},
		{"notice", zapcore.WarnLevel},
		{"warning", zapcore.WarnLevel},
		{"error", zapcore.ErrorLevel},
		{"critical", zapcore.ErrorLevel},
		{"alert", zapcore.ErrorLevel},
		{"emergency", zapcore.ErrorLevel},
		{"unheard-of", zapcore.InfoLevel},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			logs.TakeAll()
			notify(t, c, "notifications/message", map[string]any{"level": tt.give, "logger": "db", "data": "pool at 80%"})
			got := logged(t, logs, func(l *observer.ObservedLogs) *observer.ObservedLogs {
				return l.FilterMessage("server log").FilterField(zap.String("server_level", tt.give))
			})
			assert.Equal(t, tt.want, got[0].Level)
			assert.Equal(t, map[string]any{"provider": "mcp", "server_level": tt.give, "server_logger": "db", "data": "pool at 80%"},
				got[0].ContextMap())
		})
	}
}

// Data that is not a string is logged as its JSON, redacted.
func TestServerLogDataIsJSON(t *testing.T) {
	c, logs := strict(t, mcp.Config{})
	notify(t, c, "notifications/message", map[string]any{"level": "info",
		"data": map[string]any{"dsn": "postgres://app:hunter2@db/app", "n": 1}})
	got := logged(t, logs, func(l *observer.ObservedLogs) *observer.ObservedLogs { return l.FilterMessage("server log") })
	data := got[0].ContextMap()["data"].(string)
	assert.Contains(t, data, `"n":1`)
	assert.NotContains(t, data, "hunter2")
}

func TestServerNotificationsAreLogged(t *testing.T) {
	c, logs := strict(t, mcp.Config{})
	tests := []struct {
		name   string
		method string
		params any
		want   zapcore.Level
		msg    string
		fields map[string]any
	}{
		{"progress", "notifications/progress", map[string]any{"progressToken": "tok-1", "progress": 1, "total": 4, "message": "a quarter"},
			zapcore.DebugLevel, "server progress", map[string]any{"progress_token": "tok-1", "progress": 1.0, "total": 4.0, "message": "a quarter"}},
		{"progress without total", "notifications/progress", map[string]any{"progressToken": 7, "progress": 2},
			zapcore.DebugLevel, "server progress", map[string]any{"progress_token": 7.0, "progress": 2.0}},
		{"tools changed", "notifications/tools/list_changed", nil,
			zapcore.InfoLevel, "server list changed", map[string]any{"method": "notifications/tools/list_changed"}},
		{"resources changed", "notifications/resources/list_changed", nil,
			zapcore.InfoLevel, "server list changed", map[string]any{"method": "notifications/resources/list_changed"}},
		{"prompts changed", "notifications/prompts/list_changed", nil,
			zapcore.InfoLevel, "server list changed", map[string]any{"method": "notifications/prompts/list_changed"}},
		{"other", "notifications/resources/updated", map[string]any{"uri": "file:///a"},
			zapcore.DebugLevel, "server notification", map[string]any{"method": "notifications/resources/updated", "params": `{"uri":"file:///a"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.TakeAll()
			notify(t, c, tt.method, tt.params)
			got := logged(t, logs, func(l *observer.ObservedLogs) *observer.ObservedLogs {
				return l.FilterMessage(tt.msg).Filter(func(e observer.LoggedEntry) bool {
					return e.ContextMap()["method"] == tt.fields["method"] && e.ContextMap()["progress_token"] == tt.fields["progress_token"]
				})
			})
			assert.Equal(t, tt.want, got[0].Level)
			tt.fields["provider"] = "mcp"
			assert.Equal(t, tt.fields, got[0].ContextMap())
		})
	}
}

// Call sends requests a client sends, and not notifications (the SDK
// sends the session's own) or the handshake; a method no client sends is
// refused before it is sent.
func TestCallKeepsToRequests(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	_, err := c.Call(context.Background(), "notifications/roots/list_changed", nil)
	require.ErrorContains(t, err, "is a notification")
	_, err = c.Call(context.Background(), "initialize", nil)
	require.ErrorContains(t, err, "Initialize's")
	_, err = c.Call(context.Background(), "sampling/createMessage", nil)
	var rpcErr *jsonrpc.Error
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, int64(jsonrpc.CodeMethodNotFound), rpcErr.Code)
	_, err = c.Call(context.Background(), "tools/call", json.RawMessage(`{"name": 7}`))
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, int64(jsonrpc.CodeInvalidParams), rpcErr.Code)
	assert.Empty(t, seen(t, c).Violations)
	assert.Empty(t, seen(t, c).Notified)
}

// A server that answers a version the client does not speak fails the
// handshake, which names both.
func TestVersionNotSpokenFailsInitialize(t *testing.T) {
	argv, env := mcptest.StrictAnswering("1999-01-01")
	c, _ := client(t, argv, env, mcp.Config{})
	err := c.Initialize(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"1999-01-01"`)
	assert.Contains(t, err.Error(), mcp.LatestVersion)
	require.NoError(t, c.Cleanup(context.Background()))
}

// An older version that the client speaks is accepted.
func TestOlderVersionIsAccepted(t *testing.T) {
	for _, v := range mcp.SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			argv, env := mcptest.StrictAnswering(v)
			c, _ := started(t, argv, env, mcp.Config{})
			h := c.HealthCheck(context.Background())
			assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
			assert.Equal(t, v, h.Resources["protocol_version"])
		})
	}
}

func TestHealth(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	h := c.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	assert.Equal(t, mcptest.StrictInfo["name"], h.Resources["server_name"])
	assert.Equal(t, mcptest.StrictInfo["version"], h.Resources["server_version"])
	assert.Equal(t, mcp.LatestVersion, h.Resources["protocol_version"])
	assert.Contains(t, h.Resources["capabilities"], "tools")
	assert.Positive(t, h.Resources["pid"])
	assert.Equal(t, "mcp", h.Resources["protocol"])
	assert.Empty(t, seen(t, c).Violations, "ping came after the handshake")

	require.NoError(t, c.Cleanup(context.Background()))
	assert.Equal(t, lifecycle.StatusUnhealthy, c.HealthCheck(context.Background()).Status)
}

// Cleanup closes the server's stdin, and a server that exits at its end
// does so by itself, before any signal.
func TestCleanupLetsTheServerExit(t *testing.T) {
	ch, onExit := exits()
	cfg := mcp.Config{CloseWait: testkit.Wait}
	cfg.Process.OnExit = onExit
	c, _ := strict(t, cfg)
	pid := c.HealthCheck(context.Background()).Resources["pid"].(int)
	require.NoError(t, c.Cleanup(context.Background()))
	got := testkit.Receive(t, ch, "OnExit")
	assert.Equal(t, 0, got.Code)
	assert.Empty(t, got.Signal)
	assert.True(t, got.CleanedUp)
	assert.True(t, errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH), "the process group is gone")
}

// A server whose output stops being MCP (a print left in) ends the
// session: the call waiting fails at once, the client is no longer
// Running, its health says why, and Process.OnOutputError is told, once,
// for its supervisor to replace it.
func TestOutputThatIsNotMCPEndsTheSession(t *testing.T) {
	broken := make(chan error, 2)
	cfg := mcp.Config{CloseWait: 100 * time.Millisecond}
	cfg.Process.OnOutputError = func(err error) { broken <- err }
	c, _ := strict(t, cfg)
	_, err := callTool(t, c, "garble", map[string]any{})
	require.Error(t, err)
	why := testkit.Receive(t, broken, "OnOutputError")
	assert.Contains(t, why.Error(), "its output is not MCP")
	assert.False(t, c.Running())
	h := c.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, "its output is broken")
	require.NoError(t, c.Cleanup(context.Background()))
	assert.Empty(t, broken, "told once")
}
