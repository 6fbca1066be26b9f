package tracemeta_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/gleitzeit/gleitzeit/internal/tracemeta"
)

func traced() (context.Context, trace.SpanContext) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestInjectJSON(t *testing.T) {
	ctx, _ := traced()
	tests := []struct {
		name, give, want string
	}{
		{"an object", `{"name":"echo"}`, `{"_meta":{"traceparent":"` + want + `"},"name":"echo"}`},
		{"its own _meta kept", `{"_meta":{"progressToken":7},"x":1}`, `{"_meta":{"progressToken":7,"traceparent":"` + want + `"},"x":1}`},
		{"a null _meta", `{"_meta":null}`, `{"_meta":{"traceparent":"` + want + `"}}`},
		{"a stale traceparent replaced", `{"_meta":{"traceparent":"00-old"}}`, `{"_meta":{"traceparent":"` + want + `"}}`},
		{"an array: no place for it", `[1,2]`, `[1,2]`},
		{"no params", ``, ``},
		{"a _meta that is not an object", `{"_meta":3}`, `{"_meta":3}`},
		{"not JSON", `{"x":`, `{"x":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tracemeta.InjectJSON(ctx, json.RawMessage(tt.give))
			if tt.want == tt.give {
				assert.Equal(t, tt.give, string(got))
				return
			}
			assert.JSONEq(t, tt.want, string(got))
		})
	}
}

func TestNoSpanNoChange(t *testing.T) {
	params := json.RawMessage(`{"name":"echo"}`)
	assert.Equal(t, string(params), string(tracemeta.InjectJSON(context.Background(), params)))
	meta := map[string]any{"progressToken": 1}
	assert.Equal(t, meta, tracemeta.Inject(context.Background(), meta))
	allocs := testing.AllocsPerRun(100, func() {
		tracemeta.InjectJSON(context.Background(), params)
		tracemeta.Inject(context.Background(), meta)
	})
	assert.Zero(t, allocs, "untraced calls pay nothing")
}

func TestInjectLeavesTheCallersMapAlone(t *testing.T) {
	ctx, _ := traced()
	meta := map[string]any{"progressToken": 1}
	got := tracemeta.Inject(ctx, meta)
	require.Equal(t, want, got["traceparent"])
	assert.Equal(t, 1, got["progressToken"])
	assert.NotContains(t, meta, "traceparent")
}
