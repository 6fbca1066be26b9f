package mcptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

func TestMain(m *testing.M) {
	mcptest.Serve()
	goleak.VerifyTestMain(m)
}

// strict starts the strict server with a bare JSON-RPC connection, which
// sends whatever the test says, in any order.
func strict(t *testing.T) *process.Process {
	t.Helper()
	argv, env := mcptest.Strict()
	p, err := process.New(process.Config{Command: argv, Env: env, Stderr: &bytes.Buffer{}})
	require.NoError(t, err)
	require.NoError(t, p.Initialize(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = p.Cleanup(ctx)
	})
	return p
}

func seen(t *testing.T, p *process.Process) mcptest.Seen {
	t.Helper()
	var result struct{ StructuredContent mcptest.Seen }
	require.NoError(t, p.Call(context.Background(), "tools/call", map[string]any{"name": "seen"}, &result))
	return result.StructuredContent
}

func initialize(t *testing.T, p *process.Process, params map[string]any) {
	t.Helper()
	var result map[string]any
	require.NoError(t, p.Call(context.Background(), "initialize", params, &result))
	require.NoError(t, p.Notify(context.Background(), "notifications/initialized", nil))
}

var goodInitialize = map[string]any{
	"protocolVersion": "2025-06-18",
	"capabilities":    map[string]any{},
	"clientInfo":      map[string]string{"name": "test", "version": "1"},
}

// The strict server refuses, and records, what comes before
// notifications/initialized: the check the MCP client is held to can fail.
func TestStrictServerRefusesWhatComesBeforeInitialized(t *testing.T) {
	p := strict(t)
	err := p.Call(context.Background(), "ping", nil, nil)
	var rpcErr *jsonrpc2.Error
	require.ErrorAs(t, err, &rpcErr)
	assert.EqualValues(t, jsonrpc2.CodeInvalidRequest, rpcErr.Code)
	require.NoError(t, p.Notify(context.Background(), "notifications/roots/list_changed", nil))

	initialize(t, p, goodInitialize)
	require.NoError(t, p.Notify(context.Background(), "notifications/roots/list_changed", nil))
	got := seen(t, p)
	assert.Equal(t, []string{
		"request ping before notifications/initialized",
		"notification notifications/roots/list_changed before notifications/initialized",
	}, got.Violations)
	assert.Equal(t, []string{"notifications/roots/list_changed"}, got.Notified)
}

// The strict server checks what initialize offers.
func TestStrictServerChecksInitialize(t *testing.T) {
	p := strict(t)
	initialize(t, p, map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{"roots": map[string]any{}, "sampling": map[string]any{}},
	})
	assert.Equal(t, []string{
		"initialize: clientInfo needs a name and a version",
		"initialize: offers roots",
		"initialize: offers sampling",
	}, seen(t, p).Violations)
}

// A correct handshake leaves nothing to report.
func TestStrictServerAcceptsACorrectHandshake(t *testing.T) {
	p := strict(t)
	initialize(t, p, goodInitialize)
	got := seen(t, p)
	assert.Empty(t, got.Violations)
	var sent map[string]any
	require.NoError(t, json.Unmarshal(got.Initialize, &sent))
	assert.Equal(t, "2025-06-18", sent["protocolVersion"])
}

// Everything names node and the pinned package's entry script.
func TestEverythingIsInstalled(t *testing.T) {
	argv := mcptest.Everything(t)
	require.Len(t, argv, 3)
	assert.Equal(t, "node", filepath.Base(argv[0]))
	assert.Contains(t, filepath.ToSlash(argv[1]), "/node_modules/"+mcptest.EverythingPackage+"/")
	assert.Equal(t, "stdio", argv[2])
	_, err := os.Stat(argv[1])
	require.NoError(t, err)
}
