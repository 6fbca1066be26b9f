package fxmodule_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// waitInit's Initialize says it began, then waits for its context.
type waitInit struct {
	base
	began chan struct{}
}

func (w *waitInit) Initialize(ctx context.Context) error {
	w.jnl.Add("init " + w.id)
	close(w.began)
	<-ctx.Done()
	return ctx.Err()
}

// A Registry.Stop called while fx starts the app (a service that got
// SIGTERM during its start) cancels the Initialize a provider's hook runs,
// which would otherwise end only at fx's start deadline, a minute away:
// the start fails with lifecycle.ErrStopped, and the Stop cleans up what
// was initialized, with that Initialize's provider, and skips the provider
// never reached. fx's events of that start are not logged as errors.
func TestStopDuringAProvidersInitializeCancelsIt(t *testing.T) {
	jnl := &journal{}
	core, logs := observer.New(zapcore.DebugLevel)
	slow := &waitInit{base: base{id: "slow", jnl: jnl}, began: make(chan struct{})}
	var reg *lifecycle.Registry
	app := fx.New(fx.Supply(jnl, zap.New(core)), fx.WithLogger(fxmodule.EventLogger), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(func(*DB) *waitInit { return slow }),
		fxmodule.Provide(func(j *journal, _ *waitInit) *API { return &API{base{id: "api", jnl: j}} }),
		fx.Invoke(func(*API) {}),
		fx.Populate(&reg), fx.StartTimeout(time.Minute))
	require.NoError(t, app.Err())
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	started := testkit.Go(func() error { return app.Start(ctx) })
	testkit.Receive(t, slow.began, "slow's Initialize")

	stopped := testkit.Go(func() error { return reg.Stop(context.Background()) })
	assert.ErrorIs(t, testkit.Receive(t, started, "app.Start"), lifecycle.ErrStopped)
	require.NoError(t, testkit.Receive(t, stopped, "the registry's Stop"))

	rep := reg.Report().Providers
	assert.Equal(t, lifecycle.ResultOK, rep["db"].Result)
	assert.Equal(t, lifecycle.ResultOK, rep["slow"].Result, "its Initialize began: it is cleaned up")
	assert.Equal(t, lifecycle.ReasonNotInitialized, rep["api"].Reason)
	jnl.Before(t, "cleanup slow", "cleanup db")
	assert.Empty(t, logs.FilterLevelExact(zapcore.ErrorLevel).All(), "nothing is logged as an error")
	assert.NotEmpty(t, logs.FilterMessage("start failed").All(), "fx's events are logged, at debug level")
}
