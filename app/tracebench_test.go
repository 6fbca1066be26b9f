package app

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/internal/tracemeta"
)

// BenchmarkTracing measures what tracing costs a task, through POST
// /v1/tasks as BenchmarkTasks does (group commit), at 1 and 16 clients:
// off (no OTEL_TRACES_EXPORTER), on with every trace sampled and its spans
// batched to an exporter that drops them (the service's own cost, not the
// network's), and on with none sampled (OTEL_TRACES_SAMPLER=always_off).
// allocs/op counts the whole process, client and service.
func BenchmarkTracing(b *testing.B) {
	protocols := []struct{ name, body string }{
		{"echo-jsonrpc", `{"protocol":"echo/v1","method":"echo","params":{"n":1}}`},
		{"llm-version-http", `{"protocol":"llm/v1","method":"version"}`},
	}
	modes := []struct {
		name    string
		sampler sdktrace.Sampler // nil: tracing off
	}{
		{"off", nil},
		{"on-sampled", sdktrace.AlwaysSample()},
		{"on-unsampled", sdktrace.NeverSample()},
	}
	for _, p := range protocols {
		for _, m := range modes {
			b.Run(p.name+"/"+m.name, func(b *testing.B) {
				var opts []fx.Option
				if m.sampler != nil {
					tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(m.sampler), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
					b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
					opts = append(opts, Tracing(tp))
				}
				s := startWith(b, "", "", opts...)
				s.waitHealthy()
				for _, clients := range []int{1, 16} {
					b.Run(fmt.Sprintf("clients-%d", clients), func(b *testing.B) {
						b.ReportAllocs()
						load(b, s.base, p.body, clients)
					})
				}
			})
		}
	}
}

// BenchmarkTracingHooks measures the code tracing adds to a task's path
// where it runs whether tracing is on or not: the JSON-RPC child's params
// and the MCP request's _meta, which take the caller's trace if its
// context has one. Off (no span in the context), it allocates nothing.
// (Engine.Run and runOn test e.tracer, and the HTTP handler and the Ollama
// transport are wrapped only when tracing is on.)
func BenchmarkTracingHooks(b *testing.B) {
	params := json.RawMessage(`{"name":"echo","arguments":{"message":"bench"}}`)
	meta := map[string]any{"progressToken": 1}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{
		{"off", context.Background()},
		{"traced", trace.ContextWithSpanContext(context.Background(), sc)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tracemeta.InjectJSON(c.ctx, params)
				_ = tracemeta.Inject(c.ctx, meta)
			}
		})
	}
}
