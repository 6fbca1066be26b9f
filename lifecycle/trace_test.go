package lifecycle_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// traced returns a registry that traces to a recorder, and the recorder.
func traced(t *testing.T, opts ...lifecycle.Option) (*lifecycle.Registry, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return lifecycle.NewRegistry(append(opts, lifecycle.WithTracerProvider(tp))...), rec, tp
}

// spansNamed returns the ended spans with the given name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the span's attribute k, and whether it has it.
func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// byProvider indexes spans by their provider id.
func byProvider(t *testing.T, spans []sdktrace.ReadOnlySpan) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	out := make(map[string]sdktrace.ReadOnlySpan)
	for _, s := range spans {
		id, ok := attr(s, lifecycle.AttrProviderID)
		require.True(t, ok, "span %s has no provider id", s.Name())
		require.NotContains(t, out, id.AsString(), "two %s spans for one provider", s.Name())
		out[id.AsString()] = s
	}
	return out
}

func TestAStopIsTracedAsAWaterfallOfItsCleanups(t *testing.T) {
	r, rec, tp := traced(t)
	// api depends on cache and db; cache on db: db's cleanup waits for both.
	mustRegister(t, r, newFake("db", new(journal)))
	cache := newFake("cache", new(journal))
	cache.cleanup = sleeping(20 * time.Millisecond)
	mustRegister(t, r, cache, lifecycle.DependsOn("db"))
	api := newFake("api", new(journal))
	api.cleanup = failing(errBoom)
	mustRegister(t, r, api, lifecycle.DependsOn("db", "cache"))

	// The caller's span is the stop's parent.
	ctx, parent := tp.Tracer("test").Start(context.Background(), "sigterm")
	require.NoError(t, r.Start(context.Background()))
	require.Error(t, r.Stop(ctx))
	parent.End()

	stops := spansNamed(rec, "gleitzeit.stop")
	require.Len(t, stops, 1)
	stop := stops[0]
	assert.Equal(t, parent.SpanContext().SpanID(), stop.Parent().SpanID(), "the stop is a child of the caller's span")
	assert.Equal(t, codes.Error, stop.Status().Code)
	failed, _ := attr(stop, lifecycle.AttrFailed)
	assert.Equal(t, int64(1), failed.AsInt64())

	report := r.Report()
	cleanups := byProvider(t, spansNamed(rec, "cleanup"))
	require.Len(t, cleanups, 3, "one cleanup span per provider")
	for id, s := range cleanups {
		o := report.Providers[id]
		assert.Equal(t, stop.SpanContext().SpanID(), s.Parent().SpanID(), "%s's cleanup is a child of the stop", id)
		assert.True(t, s.StartTime().Equal(o.Began), "%s's span begins when its cleanup began", id)
		assert.True(t, s.EndTime().Equal(o.End()), "%s's span ends when its cleanup ended", id)
		res, _ := attr(s, lifecycle.AttrResult)
		assert.Equal(t, o.Result.String(), res.AsString(), id)
		trig, _ := attr(s, lifecycle.AttrTrigger)
		assert.Equal(t, "stop", trig.AsString(), id)
	}
	assert.Equal(t, codes.Error, cleanups["api"].Status().Code)
	assert.Contains(t, cleanups["api"].Status().Description, "boom")

	// The links say what each cleanup waited for: following them back
	// from db's reads the critical path.
	linked := func(id string) []trace.SpanID {
		var out []trace.SpanID
		for _, l := range cleanups[id].Links() {
			out = append(out, l.SpanContext.SpanID())
		}
		return out
	}
	assert.ElementsMatch(t, []trace.SpanID{cleanups["api"].SpanContext().SpanID(), cleanups["cache"].SpanContext().SpanID()}, linked("db"))
	assert.Equal(t, []trace.SpanID{cleanups["api"].SpanContext().SpanID()}, linked("cache"))
	assert.Empty(t, linked("api"))
	assert.False(t, cleanups["db"].StartTime().Before(cleanups["cache"].EndTime()), "db's cleanup began after cache's ended")
}

func TestAStartIsTracedWithAnInitializePerProvider(t *testing.T) {
	r, rec, _ := traced(t)
	mustRegister(t, r, newFake("db", new(journal)))
	broken := newFake("broken", new(journal))
	broken.initialize = failing(errBoom)
	mustRegister(t, r, broken, lifecycle.DependsOn("db"))
	mustRegister(t, r, newFake("never", new(journal)), lifecycle.DependsOn("broken"))

	require.Error(t, r.Start(context.Background()))

	starts := spansNamed(rec, "gleitzeit.start")
	require.Len(t, starts, 1)
	start := starts[0]
	assert.Equal(t, codes.Error, start.Status().Code)
	inits := byProvider(t, spansNamed(rec, "initialize"))
	require.Len(t, inits, 2, "never's Initialize never began")
	report := r.StartReport()
	for id, s := range inits {
		i := report.Providers[id]
		assert.Equal(t, start.SpanContext().SpanID(), s.Parent().SpanID(), id)
		assert.True(t, s.StartTime().Equal(i.Began), id)
		assert.True(t, s.EndTime().Equal(i.End()), id)
	}
	res, _ := attr(inits["broken"], lifecycle.AttrResult)
	assert.Equal(t, "error", res.AsString())
	assert.Equal(t, codes.Error, inits["broken"].Status().Code)

	// The rollback is under the start, its cleanups under it.
	rollbacks := spansNamed(rec, "gleitzeit.rollback")
	require.Len(t, rollbacks, 1)
	assert.Equal(t, start.SpanContext().SpanID(), rollbacks[0].Parent().SpanID())
	cleanups := byProvider(t, spansNamed(rec, "cleanup"))
	require.Len(t, cleanups, 3)
	for id, s := range cleanups {
		assert.Equal(t, rollbacks[0].SpanContext().SpanID(), s.Parent().SpanID(), id)
	}
	reason, _ := attr(cleanups["never"], lifecycle.AttrReason)
	assert.Equal(t, lifecycle.ReasonNotInitialized, reason.AsString())
}

func TestAStagedStartIsOneSpanUntilItsLastProviderIsInitialized(t *testing.T) {
	r, rec, _ := traced(t)
	mustRegister(t, r, newFake("a", new(journal)), lifecycle.Staged())
	mustRegister(t, r, newFake("b", new(journal)), lifecycle.Staged(), lifecycle.DependsOn("a"))
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.StartProvider(context.Background(), "a"))
	assert.Empty(t, spansNamed(rec, "gleitzeit.start"), "b is still to start")
	require.NoError(t, r.StartProvider(context.Background(), "b"))

	starts := spansNamed(rec, "gleitzeit.start")
	require.Len(t, starts, 1)
	inits := byProvider(t, spansNamed(rec, "initialize"))
	require.Len(t, inits, 2)
	for id, s := range inits {
		assert.Equal(t, starts[0].SpanContext().SpanID(), s.Parent().SpanID(), id)
		assert.False(t, s.EndTime().After(starts[0].EndTime()), "%s ends within the start", id)
	}
	r.AllowCleanup("a")
	r.AllowCleanup("b")
	require.NoError(t, r.Stop(context.Background()))
}

func TestAStopEndsAStartThatNeverReachedEveryStagedProvider(t *testing.T) {
	r, rec, _ := traced(t)
	mustRegister(t, r, newFake("a", new(journal)), lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	assert.Empty(t, spansNamed(rec, "gleitzeit.start"))
	require.NoError(t, r.Stop(context.Background()))
	require.Len(t, spansNamed(rec, "gleitzeit.start"), 1)
}

func TestAnAbandonedCleanupThatReturnsLateIsTracedTwice(t *testing.T) {
	r, rec, _ := traced(t)
	release := make(chan struct{})
	slow := newFake("slow", new(journal))
	slow.cleanup = ignoring(release)
	mustRegister(t, r, slow, lifecycle.Timeout(time.Hour))
	require.NoError(t, r.Start(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.Error(t, r.Stop(ctx))
	close(release)
	eventually(t, "the late span", func() bool { return len(spansNamed(rec, "cleanup")) == 2 })

	spans := spansNamed(rec, "cleanup")
	first, second := spans[0], spans[1]
	res, _ := attr(first, lifecycle.AttrResult)
	assert.Equal(t, "abandoned", res.AsString())
	_, late := attr(first, lifecycle.AttrLate)
	assert.False(t, late)
	res, _ = attr(second, lifecycle.AttrResult)
	assert.Equal(t, "ok", res.AsString(), "what the method finally returned")
	lateV, _ := attr(second, lifecycle.AttrLate)
	assert.True(t, lateV.AsBool())
	assert.Equal(t, first.Parent().SpanID(), second.Parent().SpanID(), "both under the stop")
	o := r.Report().Providers["slow"]
	assert.True(t, o.Late)
	assert.True(t, second.EndTime().Equal(o.End()))
}

func TestUnregisterIsTracedWithItsCleanup(t *testing.T) {
	r, rec, _ := traced(t)
	f := newFake("gone", new(journal))
	mustRegister(t, r, f)
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.Unregister(context.Background(), "gone"))
	require.Error(t, r.Unregister(context.Background(), "gone"))

	unregs := spansNamed(rec, "gleitzeit.unregister")
	require.Len(t, unregs, 2)
	id, _ := attr(unregs[0], lifecycle.AttrProviderID)
	assert.Equal(t, "gone", id.AsString())
	assert.Equal(t, codes.Unset, unregs[0].Status().Code)
	assert.Equal(t, codes.Error, unregs[1].Status().Code, "an unknown id")
	cleanups := spansNamed(rec, "cleanup")
	require.Len(t, cleanups, 1)
	assert.Equal(t, unregs[0].SpanContext().SpanID(), cleanups[0].Parent().SpanID())
	trig, _ := attr(cleanups[0], lifecycle.AttrTrigger)
	assert.Equal(t, "unregister", trig.AsString())
}

func TestASecretInAFailureIsNotInItsSpan(t *testing.T) {
	r, rec, _ := traced(t)
	f := newFake("db", new(journal))
	f.cleanup = failing(errorString("dial postgres://app:hunter2@db:5432/x: refused"))
	mustRegister(t, r, f)
	require.NoError(t, r.Start(context.Background()))
	require.Error(t, r.Stop(context.Background()))
	for _, s := range rec.Ended() {
		assert.NotContains(t, s.Status().Description, "hunter2", s.Name())
	}
	require.Len(t, spansNamed(rec, "cleanup"), 1)
	assert.Contains(t, spansNamed(rec, "cleanup")[0].Status().Description, "refused")
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestTheReportsSayWhenEachCallBegan(t *testing.T) {
	r := lifecycle.NewRegistry()
	mustRegister(t, r, newFake("a", new(journal)))
	never := newFake("never", new(journal))
	never.initialize = failing(errBoom)
	mustRegister(t, r, never)
	mustRegister(t, r, newFake("after", new(journal)), lifecycle.DependsOn("never"))
	before := time.Now()
	require.Error(t, r.Start(context.Background()))

	start := r.StartReport()
	assert.False(t, start.Began.Before(before))
	require.Len(t, start.Providers, 2)
	assert.False(t, start.Providers["a"].Began.Before(start.Began))
	assert.False(t, start.Providers["never"].Began.Before(start.Providers["a"].End()), "one at a time")
	assert.ErrorIs(t, start.Providers["never"].Err, errBoom)
	assert.Equal(t, start.Providers["never"].End().Sub(start.Began), start.Duration)

	stop := r.Report()
	assert.False(t, stop.Providers["a"].Began.Before(start.Providers["never"].End()), "the rollback follows")
	assert.True(t, stop.Providers["after"].Began.IsZero(), "never initialized: its cleanup never began")
	assert.True(t, stop.Providers["after"].End().IsZero())

	// A provider registered while the registry runs is not the start's:
	// a pool that replaces an instance an hour later does not stretch it.
	r2 := lifecycle.NewRegistry()
	mustRegister(t, r2, newFake("first", new(journal)))
	require.NoError(t, r2.Start(context.Background()))
	mustRegister(t, r2, newFake("joined", new(journal)))
	assert.Equal(t, []string{"first"}, mapKeys(r2.StartReport().Providers))
	require.NoError(t, r2.Stop(context.Background()))

	// The admin API's JSON carries when each began, to the nanosecond.
	b, err := json.Marshal(stop.Providers["a"])
	require.NoError(t, err)
	var back lifecycle.Outcome
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, back.Began.Equal(stop.Providers["a"].Began), "%s", b)
	b, err = json.Marshal(stop.Providers["after"])
	require.NoError(t, err)
	assert.NotContains(t, string(b), "began")
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestARegistrationWhileRunningIsTracedWithItsInitialize(t *testing.T) {
	r, rec, _ := traced(t)
	require.NoError(t, r.Start(context.Background()))
	mustRegister(t, r, newFake("joined", new(journal)))
	broken := newFake("broken", new(journal))
	broken.initialize = failing(errBoom)
	require.Error(t, r.Register(broken))

	regs := byProvider(t, spansNamed(rec, "gleitzeit.register"))
	require.Len(t, regs, 2)
	inits := byProvider(t, spansNamed(rec, "initialize"))
	for _, id := range []string{"joined", "broken"} {
		assert.Equal(t, regs[id].SpanContext().SpanID(), inits[id].Parent().SpanID(), id)
	}
	assert.Equal(t, codes.Error, regs["broken"].Status().Code)

	// A staged one, as a pool adds its instances, is the same.
	mustRegister(t, r, newFake("staged", new(journal)), lifecycle.Staged())
	require.NoError(t, r.StartProvider(context.Background(), "staged"))
	regs = byProvider(t, spansNamed(rec, "gleitzeit.register"))
	inits = byProvider(t, spansNamed(rec, "initialize"))
	require.Contains(t, regs, "staged")
	assert.Equal(t, regs["staged"].SpanContext().SpanID(), inits["staged"].Parent().SpanID())
	assert.Empty(t, r.StartReport().Providers, "none of them is the start's")
	r.AllowCleanup("staged")
	cleanups := byProvider(t, spansNamed(rec, "cleanup"))
	require.Contains(t, cleanups, "broken", "the failed one is cleaned up, under its registration")
	assert.Equal(t, regs["broken"].SpanContext().SpanID(), cleanups["broken"].Parent().SpanID())
	require.NoError(t, r.Stop(context.Background()))
}

// The start's span ends when its last staged provider is unregistered
// rather than started, and a typed nil provider is no provider.
func TestAStartWaitingForAnUnregisteredProviderEnds(t *testing.T) {
	r, rec, _ := traced(t)
	mustRegister(t, r, newFake("a", new(journal)), lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.Unregister(context.Background(), "a"))
	assert.Len(t, spansNamed(rec, "gleitzeit.start"), 1)

	var typedNil *sdktrace.TracerProvider
	r2 := lifecycle.NewRegistry(lifecycle.WithTracerProvider(typedNil))
	mustRegister(t, r2, newFake("b", new(journal)))
	require.NoError(t, r2.Start(context.Background()))
	require.NoError(t, r2.Stop(context.Background()))
}

// A provider added while the start still waits for a staged one is not
// the start's, in the trace as in StartReport; a long failure is cut in
// its span's status.
func TestAProviderJoiningDuringAStagedStartIsNotTheStarts(t *testing.T) {
	r, rec, _ := traced(t)
	mustRegister(t, r, newFake("pending", new(journal)), lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	mustRegister(t, r, newFake("instance", new(journal)), lifecycle.Staged())
	require.NoError(t, r.StartProvider(context.Background(), "instance"))
	noisy := newFake("noisy", new(journal))
	noisy.initialize = failing(errorString(strings.Repeat("output ", 10000)))
	mustRegister(t, r, noisy, lifecycle.Staged())
	require.Error(t, r.StartProvider(context.Background(), "noisy"))
	require.NoError(t, r.StartProvider(context.Background(), "pending"))

	inits := byProvider(t, spansNamed(rec, "initialize"))
	regs := byProvider(t, spansNamed(rec, "gleitzeit.register"))
	starts := spansNamed(rec, "gleitzeit.start")
	require.Len(t, starts, 1)
	assert.Equal(t, regs["instance"].SpanContext().SpanID(), inits["instance"].Parent().SpanID())
	assert.Equal(t, starts[0].SpanContext().SpanID(), inits["pending"].Parent().SpanID())
	assert.Equal(t, []string{"pending"}, mapKeys(r.StartReport().Providers))
	assert.LessOrEqual(t, len(inits["noisy"].Status().Description), 1024+len("…"))
	assert.LessOrEqual(t, len(regs["noisy"].Status().Description), 1024+len("…"))
	for _, id := range []string{"pending", "instance", "noisy"} {
		r.AllowCleanup(id)
	}
	require.NoError(t, r.Stop(context.Background()))
}
