package fxmodule_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// A TracerProvider in the graph traces the app's start and stop: the
// registry's spans, with a child per provider, whose links follow the
// dependencies fxmodule found.
func TestTheRegistryTracesWithTheGraphsTracerProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(fx.Annotate(tp, fx.As(new(trace.TracerProvider)))),
		fxmodule.Module,
		fxmodule.Provide(NewMailer),
		fx.Provide(NewUsers),
		fxmodule.Provide(NewPool),
	)
	app.RequireStart().RequireStop()

	count := map[string]int{}
	cleanups := map[string]sdktrace.ReadOnlySpan{}
	var stop sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		count[s.Name()]++
		switch s.Name() {
		case "gleitzeit.stop":
			stop = s
		case "cleanup":
			cleanups[providerOf(s)] = s
		}
	}
	assert.Equal(t, map[string]int{"gleitzeit.start": 1, "initialize": 2, "gleitzeit.stop": 1, "cleanup": 2}, count)
	require.NotNil(t, stop)
	require.Contains(t, cleanups, "pool")
	require.Contains(t, cleanups, "mailer")
	for id, s := range cleanups {
		assert.Equal(t, stop.SpanContext().SpanID(), s.Parent().SpanID(), id)
	}
	require.Len(t, cleanups["pool"].Links(), 1, "the pool's cleanup waited for the mailer's")
	assert.Equal(t, cleanups["mailer"].SpanContext().SpanID(), cleanups["pool"].Links()[0].SpanContext.SpanID())
}

func providerOf(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == lifecycle.AttrProviderID {
			return kv.Value.AsString()
		}
	}
	return ""
}
