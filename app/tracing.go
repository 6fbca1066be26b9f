package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// ServiceName is the service's name in its traces unless OTEL_SERVICE_NAME
// says otherwise.
const ServiceName = "gleitzeit"

// The attributes of a task's span; its provider is lifecycle.AttrProviderID.
const (
	attrTaskID       = attribute.Key("gleitzeit.task.id")
	attrTaskProtocol = attribute.Key("gleitzeit.task.protocol")
	attrTaskMethod   = attribute.Key("gleitzeit.task.method")
	attrTaskStatus   = attribute.Key("gleitzeit.task.status")
)

// propagator reads and writes W3C trace context: the traceparent header
// of a request that comes in, and of those that go out.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewTracerProvider sets up tracing the OpenTelemetry way, as the
// standard variables say: OTEL_TRACES_EXPORTER is otlp, console or none,
// OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL say where and
// how, OTEL_SERVICE_NAME names the service (ServiceName if unset),
// OTEL_TRACES_SAMPLER samples, OTEL_SDK_DISABLED=true turns it all off.
// Tracing is off unless OTEL_TRACES_EXPORTER is set: it returns nil then,
// and the service makes no span.
//
// An attribute's value is cut at DefaultAttributeLength unless
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (or OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT)
// says otherwise: a client's User-Agent or task method must not make
// spans that fill the exporter's queue while the collector is away.
// Resource attributes that OTEL_RESOURCE_ATTRIBUTES gets wrong are
// warned about and left out: telemetry's settings do not stop the service.
// The SDK's own errors (a collector that does not answer) go to log.
//
// getenv decides whether tracing is on and sets the default limits; the
// exporter and the SDK read their own variables from the process's
// environment. The caller shuts the provider down, which sends the spans
// not yet sent.
func NewTracerProvider(ctx context.Context, getenv func(string) string, log *zap.Logger) (*sdktrace.TracerProvider, error) {
	exporter := getenv("OTEL_TRACES_EXPORTER")
	if exporter == "" || exporter == "none" || strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: %s", exporter, lifecycle.Redact(err.Error()))
	}
	// Later detectors win: the environment's name over the default.
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		log.Warn("tracing: resource attributes left out", zap.String("error", lifecycle.Redact(err.Error())))
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing", zap.String("error", lifecycle.Redact(err.Error())))
	}))
	limits := sdktrace.NewSpanLimits() // the OTEL_*_LIMIT variables
	if getenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" && getenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" {
		limits.AttributeValueLengthLimit = DefaultAttributeLength
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(limits)), nil
}

// DefaultAttributeLength bounds a span attribute's value, in characters,
// unless the OpenTelemetry variables say otherwise.
const DefaultAttributeLength = 1024

// Tracing gives the service's parts tp: the registry traces every start
// and stop (fxmodule finds tp in the graph), the engine each task, the
// HTTP server each request, the Ollama clients their requests. A nil tp
// adds nothing: nothing is traced, and nothing pays for it.
func Tracing(tp trace.TracerProvider) fx.Option {
	if tp == nil {
		return fx.Options()
	}
	return fx.Supply(fx.Annotate(tp, fx.As(new(trace.TracerProvider))))
}

// traced wraps the HTTP server's handler in a span per request, named by
// its route, a child of the caller's span if its traceparent names one.
// Probes and scrapes (/healthz, /readyz, /metrics), which come every few
// seconds and say nothing a trace would, are not traced.
func traced(tp trace.TracerProvider, h http.Handler) http.Handler {
	if tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, "http", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagator),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return op
		}))
}

// traceTask runs a task in a span of its own. Its protocol and method
// are told once checked (the record has them): a refused request's are
// the client's own text.
func (e *Engine) traceTask(ctx context.Context, t Task) (taskstore.Record, error) {
	ctx, span := e.tracer.Start(ctx, "task")
	rec, err := e.run(ctx, t)
	if rec.ID != "" {
		span.SetAttributes(attrTaskID.String(rec.ID), attrTaskProtocol.String(rec.Protocol), attrTaskMethod.String(rec.Method),
			attrTaskStatus.String(rec.Status), lifecycle.AttrProviderID.String(rec.Provider))
	}
	endSpan(span, err)
	return rec, err
}

// traceCall runs the call of a task on its provider in a span of its own,
// under the task's: the one whose context the provider's requests carry.
func (e *Engine) traceCall(ctx context.Context, id string, t Task, call func(context.Context) (json.RawMessage, error)) (json.RawMessage, error) {
	ctx, span := e.tracer.Start(ctx, "call", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(lifecycle.AttrProviderID.String(id), attrTaskMethod.String(t.Method)))
	out, err := call(ctx)
	endSpan(span, err)
	return out, err
}

// endSpan ends span with err, redacted and bounded, as its status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, boundText(lifecycle.Redact(err.Error())))
	}
	span.End()
}

// tracerOf is tp as the interface, nil if tp is: a nil
// *sdktrace.TracerProvider in an interface would not be nil.
func tracerOf(tp *sdktrace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return nil
	}
	return tp
}

// flushTraces sends the spans not yet sent, the stop's among them, and
// shuts tracing down: within a few seconds, however far the collector.
func flushTraces(log *zap.Logger, tp *sdktrace.TracerProvider) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not sent", zap.Error(err))
	}
}

// flushTimeout bounds the last sending of spans, after the stop.
const flushTimeout = 3 * time.Second
