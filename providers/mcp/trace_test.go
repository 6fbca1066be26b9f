package mcp_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// A call made in a traced context carries the trace to the server in
// params._meta.traceparent, as MCP's convention has it (a _meta of the
// caller's own does not stop it); an untraced call carries none.
func TestATracedCallCarriesItsTraceInMeta(t *testing.T) {
	c, _ := strict(t, mcp.Config{})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	_, err := c.Call(context.Background(), "tools/call", json.RawMessage(`{"name": "echo", "arguments": {"message": "untraced"}}`))
	require.NoError(t, err)
	out, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name": "echo", "arguments": {"message": "traced"}, "_meta": {"note": "mine"}}`))
	require.NoError(t, err)
	assert.Contains(t, string(out), "traced")

	got := seen(t, c)
	assert.Equal(t, []string{"00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"}, got.Traceparents)
}
