package app

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap/zapcore"
)

// Tracing is set up from the OTEL_* variables, as the OpenTelemetry SDKs
// read them; what is wrong in them is named, and what is optional does not
// stop the service.
func TestTracingFollowsTheOTELVariables(t *testing.T) {
	var logs bytes.Buffer
	log := newLogger("console", zapcore.InfoLevel, &logs)
	env := func(vars ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(vars); i += 2 {
				if vars[i] == k {
					return vars[i+1]
				}
			}
			return ""
		}
	}
	ctx := context.Background()

	for _, off := range [][]string{nil, {"OTEL_TRACES_EXPORTER", "none"}, {"OTEL_TRACES_EXPORTER", "console", "OTEL_SDK_DISABLED", "true"}} {
		tp, err := NewTracerProvider(ctx, env(off...), log)
		require.NoError(t, err)
		assert.Nil(t, tp, "%v: off", off)
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "zipkinish")
	_, err := NewTracerProvider(ctx, env("OTEL_TRACES_EXPORTER", "zipkinish"), log)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `OTEL_TRACES_EXPORTER="zipkinish"`)

	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=llm,") // a stray comma
	tp, err := NewTracerProvider(ctx, env("OTEL_TRACES_EXPORTER", "console"), log)
	require.NoError(t, err, "a resource attribute gone wrong does not stop the service")
	defer func() { _ = tp.Shutdown(ctx) }()
	assert.Contains(t, logs.String(), "resource attributes left out")

	// A client's text cannot make a span of a megabyte.
	_, span := tp.Tracer("test").Start(ctx, "task", sdktraceAttr("gleitzeit.task.method", strings.Repeat("m", 1<<20)))
	got := span.(sdktrace.ReadOnlySpan).Attributes()
	span.End()
	require.Len(t, got, 1)
	assert.Len(t, got[0].Value.AsString(), DefaultAttributeLength)
}

func sdktraceAttr(k, v string) trace.SpanStartOption {
	return trace.WithAttributes(attribute.String(k, v))
}
