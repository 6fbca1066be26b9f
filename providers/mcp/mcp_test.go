package mcp_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

func TestMain(m *testing.M) {
	mcptest.Serve()
	goleak.VerifyTestMain(m)
}

// client builds a client of the server that argv and env run, logging to
// an observer, and cleans it up at the test's end.
func client(t *testing.T, argv, env []string, cfg mcp.Config) (*mcp.Client, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Process.Command, cfg.Process.Env = argv, env
	if cfg.Process.Stderr == nil {
		cfg.Process.Stderr = &testkit.LockedBuffer{}
	}
	cfg.Log = zap.New(core)
	c, err := mcp.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = c.Cleanup(ctx)
	})
	return c, logs
}

// started is client, initialized.
func started(t *testing.T, argv, env []string, cfg mcp.Config) (*mcp.Client, *observer.ObservedLogs) {
	t.Helper()
	c, logs := client(t, argv, env, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	require.NoError(t, c.Initialize(ctx))
	return c, logs
}

func strict(t *testing.T, cfg mcp.Config) (*mcp.Client, *observer.ObservedLogs) {
	t.Helper()
	argv, env := mcptest.Strict()
	return started(t, argv, env, cfg)
}

// callTool calls a tool with arguments, within testkit.Wait.
func callTool(t *testing.T, c *mcp.Client, name string, arguments any) (json.RawMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	return c.Call(ctx, "tools/call", toolParams(t, name, arguments, nil))
}

func toolParams(t *testing.T, name string, arguments, meta any) json.RawMessage {
	t.Helper()
	p := map[string]any{"name": name, "arguments": arguments}
	if meta != nil {
		p["_meta"] = meta
	}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return b
}

// text is the text of a tool result's first content.
func text(t *testing.T, result json.RawMessage) string {
	t.Helper()
	var r struct {
		Content []struct{ Type, Text string }
	}
	require.NoError(t, json.Unmarshal(result, &r))
	require.NotEmpty(t, r.Content, "result: %s", result)
	require.Equal(t, "text", r.Content[0].Type)
	return r.Content[0].Text
}

// exits returns an OnExit that sends what it is told to the channel.
func exits() (chan process.Exit, func(process.Exit)) {
	ch := make(chan process.Exit, 2)
	return ch, func(e process.Exit) { ch <- e }
}
