package fxmodule_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// deadlines is a provider that records how long its Initialize and its
// Cleanup were given.
type deadlines struct {
	id              string
	init, clean     time.Duration
	initOK, cleanOK bool
}

func (d *deadlines) ID() string { return d.id }
func (d *deadlines) Initialize(ctx context.Context) error {
	var dl time.Time
	dl, d.initOK = ctx.Deadline()
	d.init = time.Until(dl)
	return nil
}
func (d *deadlines) Cleanup(ctx context.Context) error {
	var dl time.Time
	dl, d.cleanOK = ctx.Deadline()
	d.clean = time.Until(dl)
	return nil
}

// fx's StartTimeout and StopTimeout bound a provider as they bound a hook,
// and nothing else does: a minute each, in both twins.
func TestFxTimeoutsAreAProvidersOnlyBound(t *testing.T) {
	timeouts := fx.Options(fx.StartTimeout(time.Minute), fx.StopTimeout(time.Minute))

	t.Run("plain fx", func(t *testing.T) {
		d := &deadlines{id: "db"}
		app := fxtest.New(t, timeouts,
			fx.Provide(func(lc fx.Lifecycle) *deadlines {
				lc.Append(fx.Hook{OnStart: d.Initialize, OnStop: d.Cleanup})
				return d
			}),
			fx.Invoke(func(*deadlines) {}))
		app.RequireStart().RequireStop()
		assert.Greater(t, d.init, 50*time.Second)
		assert.Greater(t, d.clean, 50*time.Second)
	})

	t.Run("fxmodule", func(t *testing.T) {
		d := &deadlines{id: "db"}
		var reg *lifecycle.Registry
		app := fxtest.New(t, timeouts, fxmodule.Module,
			fxmodule.Provide(func() *deadlines { return d }),
			fx.Populate(&reg))
		app.RequireStart()
		assert.Equal(t, lifecycle.NoTimeout, reg.Providers()[0].Timeout, "no timeout of the registry's own")
		app.RequireStop()
		require.True(t, d.initOK && d.cleanOK, "fx's deadlines reach the provider")
		// Less than fx's minute by the hooks' margin (see the package doc).
		assert.Greater(t, d.init, 50*time.Second, "Initialize is given fx's StartTimeout, not lifecycle.DefaultTimeout")
		assert.Greater(t, d.clean, 50*time.Second, "Cleanup is given fx's StopTimeout, not lifecycle.DefaultTimeout")
	})

	t.Run("fxmodule, a provider that asks for less", func(t *testing.T) {
		d := &deadlines{id: "db"}
		app := fxtest.New(t, timeouts, fxmodule.Module,
			fxmodule.Provide(func() *deadlines { return d }, lifecycle.Timeout(2*time.Second)))
		app.RequireStart().RequireStop()
		assert.LessOrEqual(t, d.init, 2*time.Second)
		assert.LessOrEqual(t, d.clean, 2*time.Second)
	})
}

// hung is a provider whose Cleanup ignores its context until released.
type hung struct {
	id      string
	release chan struct{}
}

func (h *hung) ID() string { return h.id }
func (h *hung) Cleanup(context.Context) error {
	<-h.release
	return nil
}

// When fx's stop deadline passes with a provider's cleanup still running,
// an error-level line names it, even where fx returns only its bare
// context error: here a plain component stopped after the providers takes
// the time that was left.
func TestAStopDeadlineNamesTheProviderStillCleaningUp(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := &hung{id: "hung-db", release: make(chan struct{})}
	defer close(h.release)
	app := fxtest.New(t,
		fx.StopTimeout(500*time.Millisecond),
		fx.Supply(zap.New(core)),
		// Built first, so stopped last: after the providers' hooks.
		fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.StopHook(func() { time.Sleep(400 * time.Millisecond) }))
		}),
		fxmodule.Module,
		fxmodule.Provide(func() *hung { return h }),
	)
	app.RequireStart()
	ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	err := app.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	var alarm []observer.LoggedEntry
	require.Eventually(t, func() bool {
		alarm = logs.FilterMessageSnippet("stop context ended").All()
		return len(alarm) > 0
	}, 5*time.Second, 10*time.Millisecond, "no line names the provider; app.Stop said only %v", err)
	assert.Equal(t, zapcore.ErrorLevel, alarm[0].Level)
	assert.Equal(t, []any{"hung-db"}, alarm[0].ContextMap()["providers"])
}

// A server built from a provider drains until just before fx's stop
// deadline, past the hooks' margin: as in plain fx, the provider's cleanup
// begins once the server has stopped, within fx's deadline, and the stop
// succeeds.
func TestAProviderOutlastsAServerDrainingToTheDeadline(t *testing.T) {
	type server struct{}
	run := func(t *testing.T, provide fx.Option) *journal {
		jnl := &journal{}
		// In a bubble, time is the test's: the drain ends 50ms before
		// fx's deadline, past the hooks' 200ms margin, however loaded the
		// machine.
		synctest.Test(t, func(t *testing.T) {
			app := fx.New(fx.NopLogger, fx.StopTimeout(2*time.Second), fx.Supply(jnl), provide,
				fx.Provide(func(lc fx.Lifecycle, j *journal, _ *DB) *server {
					lc.Append(fx.StopHook(func() { time.Sleep(1950 * time.Millisecond); j.Add("server drained") }))
					return &server{}
				}),
				fx.Invoke(func(*server) {}))
			require.NoError(t, start(t, app))
			require.NoError(t, stop(t, app))
		})
		return jnl
	}
	t.Run("plain fx", func(t *testing.T) {
		jnl := run(t, fx.Provide(func(lc fx.Lifecycle, j *journal) *DB {
			db := NewDB(j)
			lc.Append(fx.Hook{OnStart: db.Initialize, OnStop: db.Cleanup})
			return db
		}))
		jnl.Before(t, "server drained", "cleanup db")
	})
	t.Run("fxmodule", func(t *testing.T) {
		jnl := run(t, fx.Options(fxmodule.Module, fxmodule.Provide(NewDB)))
		jnl.Before(t, "server drained", "cleanup db")
	})
}

// A provider whose own timeout ran out is reported by the stop; a context
// cancelled after the stop returned raises no alarm.
func TestNoAlarmAfterAStopThatReturned(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	synctest.Test(t, func(t *testing.T) {
		h := &hung{id: "hung-db", release: make(chan struct{})} // made in the bubble, so that waiting on it is blocking there
		defer close(h.release)
		app := fx.New(fx.NopLogger, fx.Supply(zap.New(core)), fxmodule.Module,
			fxmodule.Provide(func() *hung { return h }, lifecycle.Timeout(50*time.Millisecond)))
		require.NoError(t, start(t, app))
		ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
		err := app.Stop(ctx)
		cancel()
		synctest.Wait() // the alarm, if any, has run: it runs when ctx ends
		require.ErrorContains(t, err, `provider "hung-db"`)
		assert.Empty(t, logs.FilterMessageSnippet("stop context ended").All())
	})
}

// Near fx's stop deadline, app.Stop's error names the provider still
// cleaning up and the one whose cleanup failed before.
func TestAStopNearItsDeadlineNamesTheHungAndTheFailed(t *testing.T) {
	// In a bubble, the hooks' margin before fx's deadline holds however
	// loaded the machine.
	synctest.Test(t, func(t *testing.T) {
		h := &hung{id: "hung-db", release: make(chan struct{})} // made in the bubble, so that waiting on it is blocking there
		defer close(h.release)
		app := fx.New(fx.NopLogger, fx.StopTimeout(300*time.Millisecond), fx.Supply(&journal{}), fxmodule.Module,
			fxmodule.Provide(func() *hung { return h }),
			fxmodule.Provide(func(j *journal) *Cache {
				return &Cache{base{id: "cache", jnl: j, cleanup: func(context.Context) error { return assert.AnError }}}
			}))
		require.NoError(t, start(t, app))
		err := stop(t, app)
		require.Error(t, err)
		assert.ErrorContains(t, err, `provider "hung-db"`)
		assert.ErrorIs(t, err, assert.AnError)
	})
}
