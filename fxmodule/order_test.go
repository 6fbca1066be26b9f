package fxmodule_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Tracer is a plain fx component with hooks of its own, as an fx program
// has many: providers may be built from it.
type Tracer struct{}

func NewTracer(lc fx.Lifecycle, j *journal) *Tracer {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { j.Add("start tracer"); return nil },
		OnStop:  func(context.Context) error { j.Add("stop tracer"); return nil },
	})
	return &Tracer{}
}

// Client is a plain component between the tracer and a provider.
type Client struct{ tr *Tracer }

func NewClient(tr *Tracer) *Client { return &Client{tr} }

// A provider built from a component with hooks, directly, through another
// constructor or through an fx.In field, is initialized after the
// component starts and cleaned up before it stops: fx's order, whatever the
// order of the options.
func TestProviderBuiltFromAHookedComponent(t *testing.T) {
	type dbParams struct {
		fx.In
		J      *journal
		Client *Client
	}
	tests := []struct {
		name string
		opts fx.Option
	}{
		{"directly", fxmodule.Provide(func(j *journal, _ *Tracer) *DB { return &DB{base{id: "db", jnl: j}} })},
		{"through a constructor", fx.Options(fx.Provide(NewClient),
			fxmodule.Provide(func(j *journal, _ *Client) *DB { return &DB{base{id: "db", jnl: j}} }))},
		{"through an fx.In field", fx.Options(fx.Provide(NewClient),
			fxmodule.Provide(func(p dbParams) *DB { return &DB{base{id: "db", jnl: p.J}} }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tracerFirst := range []bool{true, false} {
				jnl := &journal{}
				opts := []fx.Option{fx.Supply(jnl), fxmodule.Module, tt.opts}
				if tracerFirst {
					opts = append([]fx.Option{fx.Provide(NewTracer)}, opts...)
				} else {
					opts = append(opts, fx.Provide(NewTracer))
				}
				app := fxtest.New(t, opts...)
				app.RequireStart()
				app.RequireStop()
				jnl.Before(t, "start tracer", "init db")
				jnl.Before(t, "cleanup db", "stop tracer")
			}
		})
	}
}

// A provider's own constructor may append hooks: they run once the
// provider is initialized and stop before it is cleaned up.
func TestHooksOfAProviderConstructor(t *testing.T) {
	jnl := &journal{}
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(func(lc fx.Lifecycle, j *journal) *DB {
			lc.Append(fx.Hook{
				OnStart: func(context.Context) error { j.Add("warm db"); return nil },
				OnStop:  func(context.Context) error { j.Add("drain db"); return nil },
			})
			return &DB{base{id: "db", jnl: j}}
		}),
	)
	app.RequireStart()
	app.RequireStop()
	jnl.Before(t, "init db", "warm db")
	jnl.Before(t, "drain db", "cleanup db")
}

// A provider that must be cleaned up before a component it was built from
// stops does not serialize the others: two independent providers, one
// declared before and one after it, are still cleaned up together (each
// cleanup returns only once both have begun).
func TestOrderWithComponentsKeepsCleanupsConcurrent(t *testing.T) {
	jnl := &journal{}
	meet := meeting(2)
	app := fxtest.New(t,
		fx.Supply(jnl),
		fx.Provide(NewTracer),
		fxmodule.Module,
		fxmodule.Provide(func(j *journal) *Cache { return &Cache{base{id: "cache", jnl: j, cleanup: meet}} }),
		fxmodule.Provide(func(j *journal, _ *Tracer) *DB { return &DB{base{id: "db", jnl: j}} }),
		fxmodule.Provide(func(j *journal) *Metrics { return &Metrics{base{id: "metrics", jnl: j, cleanup: meet}} }),
		fxmodule.WithRegistryOptions(lifecycle.WithDefaultTimeout(wait)),
	)
	app.RequireStart()
	app.RequireStop()
	jnl.Before(t, "cleanup db", "stop tracer")
}

// A component built from the registry (an engine that leases providers)
// starts after every provider is initialized and stops before any is
// cleaned up, even when its invoke comes first.
func TestComponentsOfTheRegistryComeAfterEveryProvider(t *testing.T) {
	jnl := &journal{}
	engine := func(lc fx.Lifecycle, _ *lifecycle.Registry) {
		lc.Append(fx.Hook{
			OnStart: func(context.Context) error { jnl.Add("start engine"); return nil },
			OnStop:  func(context.Context) error { jnl.Add("stop engine"); return nil },
		})
	}
	app := fxtest.New(t,
		fx.Supply(jnl),
		fx.Invoke(engine),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(NewMetrics),
	)
	app.RequireStart()
	app.RequireStop()
	for _, id := range []string{"db", "metrics"} {
		jnl.Before(t, "init "+id, "start engine")
		jnl.Before(t, "stop engine", "cleanup "+id)
	}
}

// A *zap.Logger with a hook of its own (a Sync on stop), taken by the
// session and by the providers: it is built before the session and
// stopped after every cleanup, so the providers' cleanups still overlap.
func TestAHookedLoggerKeepsCleanupsConcurrent(t *testing.T) {
	both := meeting(2)
	jnl := &journal{}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fx.StopTimeout(5*time.Second),
		fx.Provide(func(lc fx.Lifecycle) *zap.Logger {
			lc.Append(fx.StopHook(func() { jnl.Add("logger synced") }))
			return zap.NewNop()
		}),
		fxmodule.Provide(func(j *journal, _ *zap.Logger) *DB { return &DB{base{id: "db", jnl: j, cleanup: both}} }),
		fxmodule.Provide(func(j *journal, _ *zap.Logger) *Cache { return &Cache{base{id: "cache", jnl: j, cleanup: both}} }),
	)
	app.RequireStart().RequireStop()
	jnl.Before(t, "cleanup db", "logger synced")
	jnl.Before(t, "cleanup cache", "logger synced")
}
