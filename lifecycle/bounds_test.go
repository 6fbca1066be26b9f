package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Property 5: a provider's own timeout bounds its cleanup even when it
// ignores its context, and the error names it. The timeout bounds the
// provider's Initialize too: on synctest's clock it passes only while every
// goroutine waits, so Start succeeds however slowly the machine runs it,
// and the cleanup takes exactly its timeout.
func TestCleanupTimeoutBoundsAProviderThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		stuck := newFake("stuck", &journal{})
		stuck.cleanup = ignoring(release)
		r := started(t, stuck, lifecycle.Timeout(30*time.Millisecond))

		var err error
		within(t, "Stop", func() { err = r.Stop(context.Background()) })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var pe *lifecycle.ProviderError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "stuck", pe.ProviderID)
		assert.Equal(t, "cleanup", pe.Op)
		assert.Contains(t, err.Error(), `provider "stuck"`)
		assert.Contains(t, err.Error(), "30ms timeout")

		o := r.Report().Providers["stuck"]
		assert.Equal(t, lifecycle.ResultTimeout, o.Result)
		assert.Equal(t, "Cleanup", o.Method)
		assert.Equal(t, 30*time.Millisecond, o.Duration)
	})
}

// Property 5: Stop's context bounds every cleanup, and Stop returns once it
// is done even though the provider ignores it.
func TestStopNeverWaitsPastItsContext(t *testing.T) {
	release, _ := gate(t)
	jnl := &journal{}
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(time.Hour))
	stuck := newFake("stuck", jnl)
	stuck.cleanup = ignoring(release)
	// quick depends on stuck, so its cleanup cannot begin before Stop's
	// context is done: it must then begin at once, with the done context.
	var quickCtxErr error
	quick := newFake("quick", jnl)
	quick.cleanup = func(ctx context.Context) error { quickCtxErr = ctx.Err(); return nil }
	mustRegister(t, r, quick)
	mustRegister(t, r, stuck, lifecycle.DependsOn("quick"))
	require.NoError(t, r.Start(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var err error
	within(t, "Stop", func() { err = r.Stop(ctx) })
	require.ErrorIs(t, err, context.DeadlineExceeded)

	assert.Equal(t, lifecycle.ResultAbandoned, r.Report().Providers["stuck"].Result)
	assert.Contains(t, err.Error(), `provider "stuck"`)
	// The quick close still happened, with the done context, and its real
	// result replaced abandoned in the report, marked late.
	eventually(t, "quick's cleanup runs", func() bool { return jnl.Has("end quick") })
	require.ErrorIs(t, quickCtxErr, context.DeadlineExceeded)
	assert.EqualValues(t, 1, quick.cleanups.Load())
	eventually(t, "quick's late result is reported", func() bool {
		o := r.Report().Providers["quick"]
		return o.Result == lifecycle.ResultOK && o.Late
	})
	assert.Equal(t, lifecycle.ResultAbandoned, r.Report().Providers["stuck"].Result, "stuck has not returned")
}

// Property 5: each cleanup's context carries the earlier of the two
// deadlines: Stop's context's, or the provider's timeout counted from when
// its cleanup began, which is some moment between Stop's call and its
// return. On synctest's clock, which stands still while goroutines run,
// the second-long timeout also bounds Initialize without ever running out
// on a loaded machine.
func TestCleanupContextDeadlineIsTheEarlierOfBoth(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		stopIn  time.Duration
	}{
		{"own timeout first", time.Second, time.Hour},
		{"stop context first", time.Hour, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := lifecycle.NewRegistry()
				var deadline time.Time
				f := newFake("f", &journal{})
				f.cleanup = func(ctx context.Context) error {
					d, ok := ctx.Deadline()
					require.True(t, ok)
					deadline = d
					return nil
				}
				mustRegister(t, r, f, lifecycle.Timeout(tt.timeout))
				require.NoError(t, r.Start(context.Background()))
				ctx, cancel := context.WithTimeout(context.Background(), tt.stopIn)
				defer cancel()
				stopDeadline, _ := ctx.Deadline()
				earliest := time.Now().Add(tt.timeout)
				require.NoError(t, r.Stop(ctx))
				latest := time.Now().Add(tt.timeout)
				if earliest.After(stopDeadline) {
					earliest = stopDeadline
				}
				if latest.After(stopDeadline) {
					latest = stopDeadline
				}
				assert.False(t, deadline.Before(earliest), "deadline %v, before %v", deadline, earliest)
				assert.False(t, deadline.After(latest), "deadline %v, after %v", deadline, latest)
			})
		})
	}
}

// Property 6: an error, a panic or a hang in one provider never stops
// another's cleanup, and never crashes the process. On synctest's clock
// the 50ms timeout that ends the hang passes only while every goroutine
// waits, so the others' cleanups, however slowly the machine runs them,
// end well within theirs.
func TestOneProviderFailingNeverStopsAnother(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		jnl := &journal{}
		r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(50 * time.Millisecond))
		behaviours := map[string]func(context.Context) error{
			"errs":    failing(errBoom),
			"panics":  panicking("kaput"),
			"hangs":   ignoring(release),
			"panics2": panicking(errBoom),
			"fine":    nil,
		}
		// Everything depends on "base", so base's cleanup runs only if every
		// failure above was contained.
		base := newFake("base", jnl)
		mustRegister(t, r, base)
		for id, b := range behaviours {
			f := newFake(id, jnl)
			f.cleanup = b
			mustRegister(t, r, f, lifecycle.DependsOn("base"))
		}
		require.NoError(t, r.Start(context.Background()))

		var err error
		within(t, "Stop", func() { err = r.Stop(context.Background()) })
		rep := r.Report()
		want := map[string]lifecycle.Result{
			"errs": lifecycle.ResultError, "panics": lifecycle.ResultPanic, "panics2": lifecycle.ResultPanic,
			"hangs": lifecycle.ResultTimeout, "fine": lifecycle.ResultOK, "base": lifecycle.ResultOK,
		}
		for id, res := range want {
			assert.Equal(t, res, rep.Providers[id].Result, id)
		}
		assert.EqualValues(t, 1, base.cleanups.Load())

		require.ErrorIs(t, err, errBoom) // from "errs", and from "panics2"'s panic value
		var pan *lifecycle.PanicError
		require.ErrorAs(t, err, &pan)
		assert.NotEmpty(t, pan.Stack)
		for _, id := range []string{"errs", "panics", "panics2", "hangs"} {
			assert.Contains(t, err.Error(), `provider "`+id+`"`)
		}
		assert.NotContains(t, err.Error(), `provider "fine"`)
		assert.Len(t, strings.Split(err.Error(), "\n"), 4, "one line per failure: %v", err)
	})
}

// The cleanup method is chosen once per provider: Cleanup, else Shutdown,
// else Close() error, else Close(); none is skipped, and not an error.
func TestCleanupMethodChoice(t *testing.T) {
	tests := []struct {
		name       string
		give       lifecycle.Provider
		wantMethod string
		wantResult lifecycle.Result
	}{
		{"cleanup preferred", &allMethods{id: "all"}, "Cleanup", lifecycle.ResultOK},
		{"shutdown next", &shutdownAndClose{id: "shut"}, "Shutdown", lifecycle.ResultOK},
		{"close with error", &closeErr{id: "closer"}, "Close", lifecycle.ResultOK},
		{"close without error", &closeNoErr{id: "plain"}, "Close", lifecycle.ResultOK},
		{"none", &noMethod{id: "bare"}, "", lifecycle.ResultSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := lifecycle.NewRegistry()
			mustRegister(t, r, tt.give)
			require.NoError(t, r.Start(context.Background()))
			require.NoError(t, r.Stop(context.Background()), "skipped is not an error")
			o := r.Report().Providers[tt.give.ID()]
			assert.Equal(t, tt.wantMethod, o.Method)
			assert.Equal(t, tt.wantResult, o.Result)
			assert.NoError(t, o.Err)
			if c, ok := tt.give.(interface{ calls() []string }); ok {
				want := []string{tt.wantMethod}
				assert.Equal(t, want, c.calls(), "exactly one method, once")
			}
		})
	}
}

func TestCloseErrorIsReported(t *testing.T) {
	r := lifecycle.NewRegistry()
	mustRegister(t, r, &closeErr{id: "closer", err: errBoom})
	require.NoError(t, r.Start(context.Background()))
	err := r.Stop(context.Background())
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, lifecycle.ResultError, r.Report().Providers["closer"].Result)
}

type called struct{ log []string }

func (c *called) calls() []string { return c.log }

type allMethods struct {
	called
	id string
}

func (p *allMethods) ID() string                     { return p.id }
func (p *allMethods) Cleanup(context.Context) error  { p.log = append(p.log, "Cleanup"); return nil }
func (p *allMethods) Shutdown(context.Context) error { p.log = append(p.log, "Shutdown"); return nil }
func (p *allMethods) Close() error                   { p.log = append(p.log, "Close"); return nil }
func (p *shutdownAndClose) ID() string               { return p.id }
func (p *shutdownAndClose) Shutdown(context.Context) error {
	p.log = append(p.log, "Shutdown")
	return nil
}
func (p *shutdownAndClose) Close() error { p.log = append(p.log, "Close"); return nil }

type shutdownAndClose struct {
	called
	id string
}

type closeErr struct {
	called
	id  string
	err error
}

func (p *closeErr) ID() string   { return p.id }
func (p *closeErr) Close() error { p.log = append(p.log, "Close"); return p.err }

type closeNoErr struct {
	called
	id string
}

func (p *closeNoErr) ID() string { return p.id }
func (p *closeNoErr) Close()     { p.log = append(p.log, "Close") }

type noMethod struct{ id string }

func (p *noMethod) ID() string { return p.id }

// A timeout's error unwraps to context.DeadlineExceeded; an abandoned
// cleanup's to the stop context's cause.
func TestTimeoutErrorsUnwrap(t *testing.T) {
	release, _ := gate(t)
	r := lifecycle.NewRegistry()
	f := newFake("f", &journal{})
	f.cleanup = ignoring(release)
	mustRegister(t, r, f, lifecycle.Timeout(time.Hour))
	require.NoError(t, r.Start(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Stop(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
	assert.Equal(t, lifecycle.ResultAbandoned, r.Report().Providers["f"].Result)
}
