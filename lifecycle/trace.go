package lifecycle

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope of the registry's spans.
const TracerName = "github.com/gleitzeit/gleitzeit/lifecycle"

// The attributes of the registry's spans.
const (
	AttrProviderID = attribute.Key("gleitzeit.provider.id") // the provider's id
	AttrTrigger    = attribute.Key("gleitzeit.trigger")     // stop, rollback or unregister
	AttrMethod     = attribute.Key("gleitzeit.method")      // Cleanup, Shutdown or Close
	AttrResult     = attribute.Key("gleitzeit.result")      // ok, error, panic, timeout, skipped, abandoned
	AttrReason     = attribute.Key("gleitzeit.reason")      // why a cleanup was skipped
	AttrLate       = attribute.Key("gleitzeit.late")        // the method returned after the registry stopped waiting
	AttrFailed     = attribute.Key("gleitzeit.failed")      // how many of a run's providers failed
)

// WithTracerProvider makes the registry trace its lifecycle with spans
// from tp:
//
//   - gleitzeit.start, from Start's call until every provider's Initialize
//     has ended (those [Registry.StartProvider] runs included), with a child
//     span initialize per provider, and gleitzeit.rollback under it if the
//     start failed;
//   - gleitzeit.stop, and gleitzeit.unregister for each Unregister, with a
//     child span cleanup per provider;
//   - gleitzeit.register for a provider registered while the registry
//     runs, with its initialize.
//
// The children carry the provider's id ([AttrProviderID]) and what became
// of it ([AttrResult], [AttrReason], [AttrLate]), and are placed at the
// times the call began and ended, so a tracing tool draws a stop as a
// waterfall. A cleanup's span links to the cleanups it waited for (those of
// the providers that depend on it): following the links back from the
// last to end reads the stop's critical path. A cleanup abandoned by Stop
// whose method returns later gets a second span, [AttrLate] set, with what
// it returned.
//
// The spans are made once a call has ended, so a provider's own spans are
// not their children: they are the registry's record of what happened,
// as [Registry.Report] is. The lifecycle spans are children of the span
// in the context given to Start, Stop or Unregister, if any.
//
// Start, Stop and Unregister begin their spans holding the registry's
// lock, so tp's samplers and span processors must not call the registry.
//
// Without this option, or with a nil tp, the registry makes no span and
// pays nothing for tracing.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerOption{tp} }

type tracerOption struct{ tp trace.TracerProvider }

func (o tracerOption) apply(c *config) {
	if !isNil(o.tp) { // a typed nil, as an fx graph may hold, is none too
		c.tracer = o.tp.Tracer(TracerName)
	}
}
func (o tracerOption) String() string { return "WithTracerProvider(...)" }

// span begins a span of the registry's own, a child of ctx's; without a
// tracer it returns ctx and a nil span.
func (r *Registry) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, nil
	}
	return r.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// endSpan ends a span that span began, with err as its status.
func endSpan(s trace.Span, err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.SetStatus(codes.Error, statusText(err))
	}
	s.End()
}

// maxStatusText bounds a span's status description: the span limits of
// an SDK bound attributes, not the status, and an error may quote a
// provider's output.
const maxStatusText = 1024

// statusText is err as a span's status says it: redacted, and cut to
// maxStatusText bytes of valid UTF-8.
func statusText(err error) string {
	s := Redact(err.Error())
	if len(s) <= maxStatusText {
		return s
	}
	cut := maxStatusText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// settleStart ends the start's span once the start is over: Start failed,
// Stop began (force), or no staged provider is left to initialize.
func (r *Registry) settleStart(force bool) {
	if r.tracer == nil {
		return
	}
	r.mu.Lock()
	s := r.startSpan
	if s == nil || !force && r.startErr == nil && r.phase < phaseStopping && r.stagedLeft() {
		r.mu.Unlock()
		return
	}
	r.startSpan = nil
	err := r.startErr
	r.mu.Unlock()
	endSpan(s, err)
}

// stagedLeft reports whether a staged provider has yet to be initialized.
// r.mu is held.
func (r *Registry) stagedLeft() bool {
	for _, n := range r.order {
		if n.staged && n.state == StateRegistered && n.cleanup == nil {
			return true
		}
	}
	return false
}

// stagedSpan returns the context StartProvider initializes n with: the
// start's span in it while the start is not over, since n's Initialize is
// the start's whatever context an outer framework calls it with; a
// gleitzeit.register span of its own for a provider registered while the
// registry ran (a pool's instance), as Register makes for one not staged.
func (r *Registry) stagedSpan(ctx context.Context, n *node) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, nil
	}
	r.mu.Lock()
	start, joined := r.startSpan, n.joinedRunning
	r.mu.Unlock()
	switch {
	case joined: // not the start's, even while the start waits for others
		return r.span(ctx, "gleitzeit.register", AttrProviderID.String(n.id))
	case start != nil:
		return trace.ContextWithSpan(ctx, start), nil
	}
	return ctx, nil
}

// traceInit records one provider's Initialize, from began for took, as a
// child of ctx's span: the start's, a registration's, or the caller's.
func (r *Registry) traceInit(ctx context.Context, id string, began time.Time, took time.Duration, err error) {
	if r.tracer == nil {
		return
	}
	_, s := r.tracer.Start(ctx, "initialize", trace.WithTimestamp(began),
		trace.WithAttributes(AttrProviderID.String(id), AttrResult.String(initResult(err).String())))
	if err != nil {
		s.SetStatus(codes.Error, statusText(err))
	}
	s.End(trace.WithTimestamp(began.Add(took)))
}

// initResult says what became of an Initialize, in a cleanup's words:
// ok, error, panic, timeout (its own timeout ran out) or abandoned (its
// caller's context ended first).
func initResult(err error) Result {
	var p *PanicError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &p):
		return ResultPanic
	case errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	case errors.Is(err, context.Canceled):
		return ResultAbandoned
	}
	return ResultError
}

// traceCleanup records c's outcome o as a child of its claimer's span,
// linked to the cleanups it waited for, and keeps the span's context for
// the cleanups that wait for c.
func (r *Registry) traceCleanup(c *cleanup, o Outcome, waited []*cleanup) {
	if r.tracer == nil {
		return
	}
	began := o.Began
	if began.IsZero() { // it never began: a mark where it was decided
		began = time.Now()
	}
	attrs := []attribute.KeyValue{AttrProviderID.String(c.n.id), AttrTrigger.String(string(c.trigger)),
		AttrResult.String(o.Result.String())}
	if o.Method != "" {
		attrs = append(attrs, AttrMethod.String(o.Method))
	}
	if o.Reason != "" {
		attrs = append(attrs, AttrReason.String(o.Reason))
	}
	if o.Late {
		attrs = append(attrs, AttrLate.Bool(true))
	}
	var links []trace.Link
	r.mu.Lock()
	for _, w := range waited {
		if w.span.IsValid() {
			links = append(links, trace.Link{SpanContext: w.span})
		}
	}
	r.mu.Unlock()
	_, s := r.tracer.Start(c.caller, "cleanup", trace.WithTimestamp(began), trace.WithAttributes(attrs...), trace.WithLinks(links...))
	if o.Err != nil {
		s.SetStatus(codes.Error, statusText(o.Err))
	}
	if !o.Late {
		r.mu.Lock()
		c.span = s.SpanContext()
		r.mu.Unlock()
	}
	s.End(trace.WithTimestamp(began.Add(o.Duration)))
}
