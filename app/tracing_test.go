package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
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

	// A client's text cannot make a span of a megabyte, nor keep one
	// alive: the value kept is a copy, not a piece of the request's.
	big := strings.Repeat("m", 1<<20)
	_, span := tp.Tracer("test").Start(ctx, "task", sdktraceAttr("user_agent.original", big))
	got := span.(sdktrace.ReadOnlySpan).Attributes()
	span.End()
	require.Len(t, got, 1)
	kept := got[0].Value.AsString()
	assert.Len(t, kept, DefaultAttributeLength)
	from, at := uintptr(unsafe.Pointer(unsafe.StringData(big))), uintptr(unsafe.Pointer(unsafe.StringData(kept)))
	assert.False(t, at >= from && at < from+uintptr(len(big)), "the span holds the request's megabyte")

	// A limit that is not a number keeps the default; the SDK would read
	// it as none.
	logs.Reset()
	t.Setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1k")
	assert.Equal(t, DefaultAttributeLength, attributeLength(env("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1k"), log))
	assert.Contains(t, logs.String(), "not a number")
	assert.Equal(t, 64, attributeLength(env("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"), log))

	// Off is nothing to the fx graph: NewTracerProvider's nil passed on.
	off, err := NewTracerProvider(ctx, env(), log)
	require.NoError(t, err)
	assert.True(t, absent(off))
	var inGraph trace.TracerProvider
	fxtest.New(t, Tracing(off), fx.Invoke(func(p struct {
		fx.In
		TP trace.TracerProvider `optional:"true"`
	}) {
		inGraph = p.TP
	})).RequireStart().RequireStop()
	assert.Nil(t, inGraph)
}

func sdktraceAttr(k, v string) trace.SpanStartOption {
	return trace.WithAttributes(attribute.String(k, v))
}
