package ollama_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gleitzeit/gleitzeit/providers/ollama"
)

// A call made for a traced caller is a client span under the caller's,
// and carries the trace to the server in its traceparent header. A health
// probe, which has no caller, makes no span and sends none. The URL's
// password and query are in no span.
func TestATracedCallCarriesItsTraceToTheServer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	s := serve(t)
	withPassword := strings.Replace(s.URL(), "http://", "http://svc:hunter2@", 1) + "/?api_key=hunter3"
	p := client(t, ollama.Config{URL: withPassword, TracerProvider: tp})

	ctx, task := tp.Tracer("test").Start(context.Background(), "task")
	require.NoError(t, p.Chat(ctx, &api.ChatRequest{Model: model, Stream: no(),
		Messages: []api.Message{{Role: "user", Content: "hi"}}}, func(api.ChatResponse) error { return nil }))
	task.End()
	p.HealthCheck(context.Background())

	parents := s.Traceparents("/api/chat")
	require.Len(t, parents, 1)
	assert.Contains(t, parents[0], task.SpanContext().TraceID().String(), "the server is told the caller's trace")
	assert.Empty(t, s.Traceparents("/api/version"), "a health probe carries no trace")

	var calls []sdktrace.ReadOnlySpan
	urls := 0
	for _, sp := range rec.Ended() {
		if sp.Name() != "task" {
			calls = append(calls, sp)
		}
		for _, kv := range sp.Attributes() {
			assert.NotContains(t, kv.Value.String(), "hunter2", "%s's %s", sp.Name(), kv.Key)
			assert.NotContains(t, kv.Value.String(), "hunter3", "%s's %s", sp.Name(), kv.Key)
			if kv.Key == "url.full" {
				assert.Equal(t, s.URL()+"/api/chat", kv.Value.String())
				urls++
			}
		}
	}
	require.Len(t, calls, 1, "one span: the chat's, none for the probe")
	assert.Equal(t, 1, urls, "the chat's span names its URL")
	assert.Equal(t, task.SpanContext().SpanID(), calls[0].Parent().SpanID())
	assert.Contains(t, parents[0], calls[0].SpanContext().SpanID().String(), "the server's parent is the client span")
}

// A nil *sdktrace.TracerProvider, as a caller's "off" may be, is no tracer.
func TestATypedNilTracerProviderIsNone(t *testing.T) {
	s := serve(t)
	var off *sdktrace.TracerProvider
	p := client(t, ollama.Config{URL: s.URL(), TracerProvider: off})
	_, err := p.Version(context.Background())
	require.NoError(t, err)
}
