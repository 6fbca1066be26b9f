package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
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
	// The SDK's errors and its own log, redacted, to the service's log:
	// what it prints by itself (a malformed OTEL_EXPORTER_OTLP_HEADERS
	// entry) may hold a token.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing", zap.String("error", lifecycle.Redact(err.Error())))
	}))
	otel.SetLogger(funcr.New(func(prefix, args string) {
		log.Warn("tracing", zap.String("detail", lifecycle.Redact(strings.TrimSpace(prefix+" "+args))))
	}, funcr.Options{}))
	limits := sdktrace.NewSpanLimits() // the OTEL_*_LIMIT variables
	limits.AttributeValueLengthLimit = attributeLength(getenv, log)
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(detached{}), sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(limits)), nil
}

// attributeLength is the longest attribute value, in characters: what
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (or its span-only twin) says, negative
// for none, or DefaultAttributeLength. A value that is not a number is
// warned about and the default kept: the SDK would read it as no limit.
func attributeLength(getenv func(string) string, log *zap.Logger) int {
	for _, name := range []string{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"} {
		v := getenv(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			log.Warn("tracing: not a number of characters; the default limit holds",
				zap.String("variable", name), zap.String("value", v), zap.Int("limit", DefaultAttributeLength))
			return DefaultAttributeLength
		}
		return n
	}
	return DefaultAttributeLength
}

// detached gives each span a copy of its string attributes. The SDK cuts a
// long value to its limit as a substring, and otelhttp's values (a
// User-Agent, url.path, a query) are substrings of the request's own
// buffers: a span waiting in the exporter's queue for a collector that is
// away would hold a megabyte of a client's request for a kilobyte of
// attribute. It runs first, as each span starts: the attributes a span
// starts with are the ones a request gives.
type detached struct{}

func (detached) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	for _, kv := range s.Attributes() {
		if kv.Value.Type() == attribute.STRING {
			s.SetAttributes(attribute.String(string(kv.Key), strings.Clone(kv.Value.AsString())))
		}
	}
}
func (detached) OnEnd(sdktrace.ReadOnlySpan)      {}
func (detached) Shutdown(context.Context) error   { return nil }
func (detached) ForceFlush(context.Context) error { return nil }

// DefaultAttributeLength bounds a span attribute's value, in characters,
// unless the OpenTelemetry variables say otherwise.
const DefaultAttributeLength = 1024

// Tracing gives the service's parts tp: the registry traces every start
// and stop (fxmodule finds tp in the graph), the engine each task, the
// HTTP server each request, the Ollama clients their requests. A nil tp,
// such as NewTracerProvider's when tracing is off, adds nothing: nothing
// is traced, and nothing pays for it.
func Tracing(tp trace.TracerProvider) fx.Option {
	if absent(tp) {
		return fx.Options()
	}
	return fx.Supply(fx.Annotate(tp, fx.As(new(trace.TracerProvider))))
}

// absent reports whether tp is nil, as an interface or as the pointer in
// it: a nil *sdktrace.TracerProvider passed on as a TracerProvider.
func absent(tp trace.TracerProvider) bool {
	if tp == nil {
		return true
	}
	v := reflect.ValueOf(tp)
	return v.Kind() == reflect.Pointer && v.IsNil()
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
