package lifecycle_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The callbacks the registry runs (providers' methods and observers) may
// end their goroutine with runtime.Goexit, as t.FailNow does in a test
// fake, or panic. Neither may leave the registry waiting for an answer
// that never comes, nor reach the caller or crash the process.

// goexiting is a provider method that ends its goroutine with
// runtime.Goexit instead of returning.
func goexiting(context.Context) error {
	runtime.Goexit()
	return nil
}

// An Initialize that ends its goroutine with runtime.Goexit has failed:
// Start returns an error naming the provider and Goexit, the rollback
// cleans the provider up once (it may hold half of its resources), and its
// health reads unhealthy rather than "initializing".
func TestGoexitInInitializeFailsStart(t *testing.T) {
	r := lifecycle.NewRegistry()
	db := newFake("db", &journal{})
	db.initialize = goexiting
	mustRegister(t, r, db)

	var err error
	within(t, "Start", func() { err = r.Start(context.Background()) })
	var pe *lifecycle.ProviderError
	if assert.ErrorAs(t, err, &pe, "Start after an Initialize that called Goexit") {
		assert.Equal(t, "db", pe.ProviderID)
		assert.Equal(t, "initialize", pe.Op)
		assert.Contains(t, err.Error(), "Goexit")
	}
	assert.EqualValues(t, 1, db.cleanups.Load(), "the rollback cleans up the provider")

	var rep lifecycle.HealthReport
	within(t, "Health", func() { rep = r.Health(context.Background()) })
	assert.Equal(t, lifecycle.StatusUnhealthy, rep.Providers["db"].Status, "health: %+v", rep.Providers["db"])

	within(t, "Stop", func() { _ = r.Stop(context.Background()) })
	assert.EqualValues(t, 1, db.cleanups.Load(), "cleanup runs exactly once")
}

// A HealthCheck that ends its goroutine with runtime.Goexit reads as
// unhealthy at once, with a message that says so, not after the health
// timeout; and the next Health call runs a new check, so a provider whose
// check answers again reads healthy again.
func TestGoexitInHealthCheckIsUnhealthyAtOnce(t *testing.T) {
	r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(time.Hour))
	db := newFake("db", &journal{})
	var checks atomic.Int32
	db.health = func(context.Context) lifecycle.Health {
		if checks.Add(1) == 1 {
			runtime.Goexit()
		}
		return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "fine"}
	}
	mustRegister(t, r, db)
	require.NoError(t, r.Start(context.Background()))

	var rep lifecycle.HealthReport
	within(t, "Health with a check that called Goexit", func() { rep = r.Health(context.Background()) })
	assert.Equal(t, lifecycle.StatusUnhealthy, rep.Providers["db"].Status)
	assert.Contains(t, rep.Providers["db"].Message, "Goexit")

	within(t, "the second Health", func() { rep = r.Health(context.Background()) })
	assert.EqualValues(t, 2, checks.Load(), "the second Health runs a new check")
	assert.Equal(t, lifecycle.StatusHealthy, rep.Providers["db"].Status, "health: %+v", rep.Providers["db"])

	var err error
	within(t, "Stop", func() { err = r.Stop(context.Background()) })
	assert.NoError(t, err)
}

// A Cleanup that ends its goroutine with runtime.Goexit has failed: Stop
// returns at once (not at the provider's timeout) an error naming the
// provider and Goexit, the report says error rather than timeout, and the
// cleanup of the provider it depends on still runs after it.
func TestGoexitInCleanupFailsIt(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	db := newFake("db", jnl)
	svc := newFake("svc", jnl)
	svc.cleanup = goexiting
	mustRegister(t, r, db, lifecycle.Timeout(time.Hour))
	mustRegister(t, r, svc, lifecycle.DependsOn("db"), lifecycle.Timeout(time.Hour))
	require.NoError(t, r.Start(context.Background()))

	var err error
	within(t, "Stop with a cleanup that called Goexit", func() { err = r.Stop(context.Background()) })
	var pe *lifecycle.ProviderError
	if assert.ErrorAs(t, err, &pe) {
		assert.Equal(t, "svc", pe.ProviderID)
		assert.Equal(t, "cleanup", pe.Op)
		assert.Contains(t, err.Error(), "Goexit")
	}
	rep := r.Report()
	assert.Equal(t, lifecycle.ResultError, rep.Providers["svc"].Result)
	assert.Equal(t, lifecycle.ResultOK, rep.Providers["db"].Result)
	assert.EqualValues(t, 1, db.cleanups.Load())
	jnl.Before(t, "begin svc", "begin db")
}

// An observer that panics on ProviderCleaned does not crash the process
// nor cut the stop short: Stop returns, every cleanup runs exactly once,
// the report has every provider, and the panic is logged at error level
// through the registry's logger.
func TestObserverPanicOnProviderCleanedIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	obs := lifecycle.ObserverFunc(func(e lifecycle.Event) {
		if _, ok := e.(lifecycle.ProviderCleaned); ok {
			panic("kaboom-cleaned")
		}
	})
	r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)), lifecycle.WithObserver(obs))
	db := newFake("db", &journal{})
	svc := newFake("svc", &journal{})
	cache := newFake("cache", &journal{})
	mustRegister(t, r, db)
	mustRegister(t, r, svc, lifecycle.DependsOn("db"))
	mustRegister(t, r, cache)
	require.NoError(t, r.Start(context.Background()))

	within(t, "Stop", func() {
		assert.NotPanics(t, func() { _ = r.Stop(context.Background()) })
	})
	for _, f := range []*fake{db, svc, cache} {
		assert.EqualValues(t, 1, f.cleanups.Load(), "cleanups of %s", f.id)
	}
	rep := r.Report()
	assert.Len(t, rep.Providers, 3)
	for _, id := range []string{"db", "svc", "cache"} {
		assert.Equal(t, lifecycle.ResultOK, rep.Providers[id].Result, "outcome of %s", id)
	}

	logged := false
	for _, e := range logs.All() {
		if e.Level != zapcore.ErrorLevel || !strings.Contains(e.Message, "observer") {
			continue
		}
		text := e.Message
		for _, v := range e.ContextMap() {
			text += " " + fmt.Sprint(v)
		}
		if strings.Contains(text, "kaboom-cleaned") {
			logged = true
		}
	}
	assert.True(t, logged, "an error-level entry about the observer that names its panic; logged: %v", logs.All())
}

// An observer that panics on CleanupEnded does not reach Stop's caller,
// and does not leave the stop unfinished: a second Stop returns at once
// with the first one's result instead of waiting for its context.
func TestObserverPanicOnCleanupEndedFinishesStop(t *testing.T) {
	obs := lifecycle.ObserverFunc(func(e lifecycle.Event) {
		if _, ok := e.(lifecycle.CleanupEnded); ok {
			panic("kaboom-ended")
		}
	})
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	bad := newFake("bad", &journal{})
	bad.cleanup = failing(errBoom)
	mustRegister(t, r, bad)
	require.NoError(t, r.Start(context.Background()))

	var first, second error
	within(t, "the first Stop", func() {
		assert.NotPanics(t, func() { first = r.Stop(context.Background()) })
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	within(t, "the second Stop", func() { second = r.Stop(ctx) })
	assert.ErrorIs(t, first, errBoom)
	assert.Equal(t, first, second, "the second Stop returns the first one's result")
}

// An observer that panics on the events of Register and Start does not
// reach their caller nor stop them: both succeed and the provider is
// initialized.
func TestObserverPanicOnStartEventsIsContained(t *testing.T) {
	obs := lifecycle.ObserverFunc(func(e lifecycle.Event) {
		switch e.(type) {
		case lifecycle.ProviderRegistered, lifecycle.StartBegan, lifecycle.StartEnded, lifecycle.ProviderInitialized:
			panic(fmt.Sprintf("kaboom %T", e))
		}
	})
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	db := newFake("db", &journal{})

	var err error
	require.NotPanics(t, func() { err = r.Register(db) }, "Register")
	require.NoError(t, err)
	var calm bool
	within(t, "Start", func() {
		calm = assert.NotPanics(t, func() { err = r.Start(context.Background()) }, "Start")
	})
	require.True(t, calm, "Start panicked")
	require.NoError(t, err)
	assert.EqualValues(t, 1, db.inits.Load())
	_, release, err := r.Acquire(context.Background(), "db")
	assert.NoError(t, err, "the provider is initialized")
	release()
	within(t, "Stop", func() { err = r.Stop(context.Background()) })
	assert.NoError(t, err)
}

// "provider has no cleanup method" is a warning about a provider that was
// initialized and has nothing to release it with. A provider that has no
// cleanup method and was never initialized (registered, Start never
// called, then Stop) holds nothing: it is not warned about, and its
// outcome says it was never initialized. The same provider initialized is
// warned about, also with the logger at info level, as in production.
// (log_test.go covers a never-initialized provider that has a Cleanup, and
// an initialized one without, with the logger at debug level.)
func TestNoCleanupMethodWarnsOnlyOnceInitialized(t *testing.T) {
	t.Run("never initialized", func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
		mustRegister(t, r, &noMethod{id: "bare"})
		var err error
		within(t, "Stop", func() { err = r.Stop(context.Background()) })
		assert.NoError(t, err)

		assert.Equal(t, lifecycle.ReasonNotInitialized, r.Report().Providers["bare"].Reason)
		assert.Empty(t, logs.FilterMessage("provider has no cleanup method").All())
	})
	t.Run("initialized", func(t *testing.T) {
		core, logs := observer.New(zapcore.InfoLevel)
		r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
		mustRegister(t, r, &noMethod{id: "bare"})
		var startErr, stopErr error
		within(t, "Start", func() { startErr = r.Start(context.Background()) })
		require.NoError(t, startErr)
		within(t, "Stop", func() { stopErr = r.Stop(context.Background()) })
		assert.NoError(t, stopErr)

		assert.Equal(t, lifecycle.ReasonNoMethod, r.Report().Providers["bare"].Reason)
		warned := logs.FilterMessage("provider has no cleanup method").All()
		require.Len(t, warned, 1)
		assert.Equal(t, zapcore.WarnLevel, warned[0].Level)
		assert.Equal(t, "bare", warned[0].ContextMap()["provider"])
	})
}
