package fxmodule_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	xstore "github.com/gleitzeit/gleitzeit/fxmodule/internal/twostores/x/store"
	ystore "github.com/gleitzeit/gleitzeit/fxmodule/internal/twostores/y/store"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// These are the cases a hostile review of the module found: each hung a
// stop until fx's deadline, lost a provider, or refused an app plain fx
// accepts.

// start runs app.Start with a context of its StartTimeout, within the
// tests' bound.
func start(t *testing.T, app *fx.App) error {
	t.Helper()
	return testkit.Receive(t, testkit.Go(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
		defer cancel()
		return app.Start(ctx)
	}), "app.Start")
}

// stop runs app.Stop with a context of its StopTimeout; a stop that hangs
// until that deadline fails with the error that names it.
func stop(t *testing.T, app *fx.App) error {
	t.Helper()
	return testkit.Receive(t, testkit.Go(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
		defer cancel()
		return app.Stop(ctx)
	}), "app.Stop")
}

// A provider fx builds later is never taken for an input of one built
// before it, whatever fx's graph names suggest: a soft group whose member
// comes later, a name two types print, an optional parameter that a
// sibling module's private provider would serve. Each made the later
// provider, built from a hooked component, wait in its stop hook for a
// cleanup held by its false dependent, until fx's deadline.
func TestNoDependencyOnAProviderBuiltLater(t *testing.T) {
	type softIn struct {
		fx.In
		J *journal
		M []*Metrics `group:"metrics,soft"`
	}
	type optionalIn struct {
		fx.In
		J *journal
		C *Cache `optional:"true"`
	}
	type closure struct{ get func() string }
	later := func(id string) any { // built from the tracer, after the api
		return func(j *journal, _ *Tracer) *Cache { return &Cache{base{id: id, jnl: j}} }
	}
	tests := map[string][]fx.Option{
		"soft group": {
			fxmodule.Provide(func(p softIn) *API { return &API{base{id: "api", jnl: p.J}} }),
			fxmodule.Provide(fx.Annotated{Group: "metrics", Target: func(j *journal, _ *Tracer) *Metrics { return &Metrics{base{id: "later", jnl: j}} }}),
		},
		"a name two types print": {
			fxmodule.Provide(func(j *journal) *ystore.Client { return &ystore.Client{Log: j.Add} }),
			fx.Provide(func(c *ystore.Client) *closure { return &closure{get: c.ID} }),
			fxmodule.Provide(func(j *journal, _ *closure) *API { return &API{base{id: "api", jnl: j}} }),
			fxmodule.Provide(func(j *journal, _ *Tracer) *xstore.Client {
				return &xstore.Client{Log: func(s string) { j.Add(s + " (later)") }}
			}),
		},
		"an optional parameter a private provider would serve": {
			fx.Module("b", fxmodule.Provide(func(p optionalIn) *API { return &API{base{id: "api", jnl: p.J}} })),
			fx.Module("a", fxmodule.Provide(fxmodule.Private(later("later")))),
		},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			jnl := &journal{}
			var reg *lifecycle.Registry
			app := fx.New(append([]fx.Option{fx.NopLogger, fx.Supply(jnl), fxmodule.Module, fx.Provide(NewTracer),
				fx.Populate(&reg), fx.StopTimeout(5 * time.Second)}, opts...)...)
			require.NoError(t, app.Err())
			require.NoError(t, start(t, app))
			require.NoError(t, stop(t, app))
			for id, deps := range dependsOn(reg) {
				assert.NotContains(t, deps, "later", id)
				assert.NotContains(t, deps, "x-store", id)
			}
		})
	}
}

// lifecycle.DependsOn on a provider fx builds later, from a component with
// hooks, cannot keep fx's order (the component would start after the
// dependent's Initialize and stop before its cleanup): the start fails,
// naming both and what to do. On one built later from nothing hooked, it
// brings that provider's Initialize forward.
func TestDependsOnAProviderBuiltLater(t *testing.T) {
	app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Module,
		fxmodule.Provide(NewDB, lifecycle.DependsOn("cache")),
		fx.Provide(NewTracer),
		fxmodule.Provide(func(j *journal, _ *Tracer) *Cache { return &Cache{base{id: "cache", jnl: j}} }),
	)
	require.NoError(t, app.Err())
	err := start(t, app)
	require.Error(t, err)
	assert.ErrorContains(t, err, `provider "db" depends on "cache", which fx builds after it, from a component with hooks`)

	jnl := &journal{}
	app2 := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB, lifecycle.DependsOn("metrics")),
		fxmodule.Provide(NewMetrics))
	app2.RequireStart()
	require.NoError(t, stop(t, app2.App))
	jnl.Before(t, "init metrics", "init db")
	jnl.Before(t, "cleanup db", "cleanup metrics")
}

// A provider built from a hooked component and unregistered while the app
// runs: its stop hook does not wait for a cleanup that happened already.
func TestUnregisteredProviderDoesNotHoldTheStop(t *testing.T) {
	var reg *lifecycle.Registry
	app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fx.Provide(NewTracer), fxmodule.Module,
		fxmodule.Provide(func(j *journal, _ *Tracer) *DB { return &DB{base{id: "db", jnl: j}} }),
		fx.Populate(&reg), fx.StopTimeout(5*time.Second))
	require.NoError(t, start(t, app))
	require.NoError(t, reg.Unregister(context.Background(), "db"))
	require.NoError(t, stop(t, app))
}

// A provider built from a hooked component fails to initialize: it is
// cleaned up (it may hold half of what it acquired) before fx stops the
// component.
func TestFailedProviderIsCleanedUpBeforeItsComponentStops(t *testing.T) {
	jnl := &journal{}
	app := fx.New(fx.NopLogger, fx.Supply(jnl), fx.Provide(NewTracer), fxmodule.Module,
		fxmodule.Provide(func(j *journal, _ *Tracer) *DB {
			return &DB{base{id: "db", jnl: j, initErr: errors.New("boom"), cleanup: func(context.Context) error {
				time.Sleep(20 * time.Millisecond)
				j.Add("cleanup db done")
				return nil
			}}}
		}))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.ErrorContains(t, app.Start(ctx), "boom")
	jnl.Before(t, "cleanup db done", "stop tracer")
}

// hangInit's Initialize ignores its context until its gate opens.
type hangInit struct {
	base
	gate <-chan struct{}
}

func (h *hangInit) Initialize(context.Context) error { <-h.gate; return nil }

// A start that runs out of time names the provider, even when the
// rollback's cleanups cannot end before fx's deadline (a cleanup waits for
// its hung Initialize, and what it depends on waits for it). The cleanups
// go on, each within its timeout, and end.
//
// The module's hooks return a little before fx's deadline. On synctest's
// clock no time passes while a goroutine runs, so they do however slowly
// the machine runs them, and the cleanup that takes 100ms outlasts the
// 300ms StartTimeout every time.
func TestStartTimeoutNamesTheProviderWhateverTheRollbackTakes(t *testing.T) {
	for name, slow := range map[string]any{
		"an Initialize that ignores its context": func(j *journal, _ *DB, g <-chan struct{}) *hangInit {
			return &hangInit{base{id: "slow", jnl: j}, g}
		},
		"a slow cleanup elsewhere": func(j *journal, _ *DB) *slowStart { return &slowStart{base{id: "slow", jnl: j}} },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate, open := testkit.Gate(t)
				var reg *lifecycle.Registry
				app := fx.New(fx.NopLogger, fx.Supply(&journal{}, gate), fxmodule.Module,
					fxmodule.Provide(func(j *journal) *DB {
						return &DB{base{id: "db", jnl: j, cleanup: func(context.Context) error { time.Sleep(100 * time.Millisecond); return nil }}}
					}),
					fxmodule.Provide(slow),
					fx.Populate(&reg), fx.StartTimeout(300*time.Millisecond))
				began := time.Now()
				err := start(t, app)
				assert.ErrorContains(t, err, `provider "slow"`)
				assert.ErrorContains(t, err, "had not ended at fx's start deadline", "the rollback outlasts the start")
				assert.Less(t, time.Since(began), app.StartTimeout(), "app.Start returned before fx's deadline")
				open()
				// A second Stop returns the rollback's result once it has ended.
				testkit.Within(t, "the rollback", func() { _ = reg.Stop(context.Background()) })
				assert.Len(t, reg.Report().Providers, 2, "every provider is cleaned up: %v", reg.Report().Providers)
			})
		})
	}
}

// A constructor that returns an interface holding a nil pointer fails the
// app, naming the constructor; it does not panic inside fx.New.
func TestTypedNilProviderFailsTheApp(t *testing.T) {
	ctor := func() lifecycle.Provider { var d *DB; return d }
	app := fx.New(fx.NopLogger, fxmodule.Module, fxmodule.Provide(ctor))
	require.Error(t, app.Err())
	assert.ErrorContains(t, app.Err(), location(ctor)+" returned a nil")
}

// One Private Provide option reused in two modules, each with its own
// configuration, as fx.Provide(fx.Private, ...) may be.
func TestPrivateOptionReusedInTwoModules(t *testing.T) {
	type name string
	dbOpt := fxmodule.Provide(fxmodule.Private(func(j *journal, n name) *DB { return &DB{base{id: string(n) + "-db", jnl: j}} }))
	module := func(n string) fx.Option {
		return fx.Module(n, fx.Provide(fx.Private, func() name { return name(n) }), dbOpt)
	}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(&journal{}), fxmodule.Module, module("a"), module("b"), fx.Populate(&reg))
	app.RequireStart()
	app.RequireStop()
	assert.ElementsMatch(t, []string{"a-db", "b-db"}, reg.IDs())
}

// KV is a provider interface a tracing decorator wraps.
type KV interface {
	lifecycle.Provider
	Get(string) string
}

// tracedKV wraps a KV; it has none of the lifecycle methods itself.
type tracedKV struct{ KV }

// MemStore is a provider a test decorator swaps in.
type MemStore struct{ base }

func (*MemStore) Get(string) string { return "mem" }

// Decorators as fx programs write them: a wrapper without lifecycle
// methods leaves the wrapped provider managed; a decorator of a provider
// given through fx.Annotate is seen; a decorator that swaps in another
// provider makes the consumer depend on that one.
func TestDecoratorsAsFxProgramsWriteThem(t *testing.T) {
	t.Run("wrapper", func(t *testing.T) {
		jnl := &journal{}
		app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
			fxmodule.Provide(func(j *journal) KV { return &DB{base{id: "db", jnl: j}} }),
			fx.Decorate(func(kv KV) KV { return tracedKV{kv} }),
			fx.Invoke(func(KV) {}))
		app.RequireStart()
		app.RequireStop()
		jnl.Before(t, "init db", "cleanup db")
	})
	t.Run("annotated", func(t *testing.T) {
		jnl := &journal{}
		fake := &DB{base{id: "db", jnl: jnl}}
		app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
			fxmodule.Provide(fx.Annotate(func(j *journal) *DB { return &DB{base{id: "db", jnl: j, initErr: assert.AnError}} }, fx.As(new(Store)))),
			fx.Decorate(func(Store) Store { return fake }),
			fx.Invoke(func(Store) {}))
		app.RequireStart()
		app.RequireStop()
		assert.Equal(t, 1, fake.cleanups)
	})
	t.Run("swapped in", func(t *testing.T) {
		jnl := &journal{}
		var reg *lifecycle.Registry
		app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
			fxmodule.Provide(NewDB),
			fx.Provide(func(db *DB) Store { return db }),
			fxmodule.Provide(func(j *journal) *MemStore { return &MemStore{base{id: "mem", jnl: j}} }),
			fx.Decorate(func(_ Store, m *MemStore) Store { return m }),
			fxmodule.Provide(func(j *journal, _ Store) *API { return &API{base{id: "api", jnl: j}} }),
			fx.Populate(&reg))
		app.RequireStart()
		app.RequireStop()
		assert.Contains(t, dependsOn(reg)["api"], "mem")
		jnl.Before(t, "cleanup api", "cleanup mem")
	})
}

// KV2 is an interface a provider with an error result is exposed as.
type KV2 interface{ ID() string }

// fx.Annotate combinations fx.Provide takes: fx.As twice, with fx.Self,
// with ResultTags; an error result with fx.As.
func TestAnnotationCombinations(t *testing.T) {
	cases := map[string]struct {
		ctor   func(j *journal) any
		id     string
		invoke any
	}{
		"As and Self": {func(j *journal) any {
			return fx.Annotate(func() *MemStore { return &MemStore{base{id: "mem", jnl: j}} }, fx.As(new(Store)), fx.As(fx.Self()))
		}, "mem", func(Store, *MemStore) {}},
		"As twice": {func(j *journal) any {
			return fx.Annotate(func() *DB { return &DB{base{id: "db2", jnl: j}} }, fx.As(new(Store)), fx.As(new(KV)))
		}, "db2", func(Store, KV) {}},
		"ResultTags and As": {func(j *journal) any {
			return fx.Annotate(func() *DB { return &DB{base{id: "db2", jnl: j}} }, fx.ResultTags(`name:"a"`), fx.As(new(Store)))
		}, "db2", fx.Annotate(func(Store) {}, fx.ParamTags(`name:"a"`))},
		"an error result and As": {func(j *journal) any {
			return fx.Annotate(func() (*Cache, error) { return &Cache{base{id: "cache", jnl: j}}, nil }, fx.As(new(KV2)))
		}, "cache", func(KV2) {}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			plain := fx.New(fx.NopLogger, fx.Supply(&journal{}), fx.Provide(NewDB), fx.Provide(c.ctor(&journal{})), fx.Invoke(c.invoke))
			require.NoError(t, plain.Err(), "plain fx takes it")
			jnl := &journal{}
			app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fx.Provide(NewDB), fxmodule.Provide(c.ctor(jnl)), fx.Invoke(c.invoke))
			app.RequireStart()
			app.RequireStop()
			jnl.Before(t, "init "+c.id, "cleanup "+c.id)
		})
	}
}

// CachedDB is what a caching decorator makes of a KV: a provider of its
// own that holds a cache provider.
type CachedDB struct {
	base
	inner KV
	cache *Cache
}

func (*CachedDB) Get(string) string { return "cached" }

// A decorator that replaces a provider with one holding another provider:
// the dependency is found whatever the order of the options.
func TestDecoratedProviderHoldingAnotherWhateverTheOrder(t *testing.T) {
	for _, cacheFirst := range []bool{false, true} {
		jnl := &journal{}
		var reg *lifecycle.Registry
		kv := fxmodule.Provide(func(j *journal) KV { return &DB{base{id: "db", jnl: j}} })
		cache := fxmodule.Provide(newLoneCache)
		provs := []fx.Option{kv, cache}
		if cacheFirst {
			provs = []fx.Option{cache, kv}
		}
		app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fx.Options(provs...),
			fx.Decorate(func(kv KV, c *Cache, j *journal) KV {
				return &CachedDB{base: base{id: "cached-db", jnl: j}, inner: kv, cache: c}
			}),
			fx.Invoke(func(KV) {}), fx.Populate(&reg))
		app.RequireStart()
		require.NoError(t, stop(t, app.App))
		assert.Contains(t, dependsOn(reg)["cached-db"], "cache", "cache first: %v", cacheFirst)
		jnl.Before(t, "cleanup cached-db", "cleanup cache")
	}
}

// A decorator that swaps in another managed provider: that one serves,
// the original is unused and not managed, and fx.New does not fail.
func TestDecoratorSwapsInAnotherManagedProvider(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) KV { return &DB{base{id: "db", jnl: j}} }),
		fxmodule.Provide(func(j *journal) *MemStore { return &MemStore{base{id: "mem", jnl: j}} }),
		fx.Decorate(func(_ KV, m *MemStore) KV { return m }),
		fx.Invoke(func(KV) {}), fx.Populate(&reg))
	app.RequireStart()
	app.RequireStop()
	assert.Equal(t, []string{"mem"}, reg.IDs())
	assert.False(t, jnl.Has("init db"))
}

// fx.As(fx.Self()) first exposes the provider as its own type: a decorator
// of that type is seen.
func TestSelfFirstThenAsDecorated(t *testing.T) {
	jnl := &journal{}
	var dec *MemStore
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(fx.Annotate(func(j *journal) *MemStore { return &MemStore{base{id: "mem", jnl: j, initErr: assert.AnError}} },
			fx.As(fx.Self()), fx.As(new(Store)))),
		fx.Decorate(func(m *MemStore) *MemStore { dec = &MemStore{base{id: "mem", jnl: m.jnl}}; return dec }),
		fx.Invoke(func(*MemStore) {}))
	app.RequireStart()
	app.RequireStop()
	assert.Equal(t, 1, dec.cleanups)
}

// Failing is a provider whose Initialize fails.
type Failing struct{ base }

// A start that fails after a provider was initialized at a dependent's
// turn (lifecycle.DependsOn on one built later), whose own hook fx never
// reaches: the rollback does not wait for that hook, ends without a
// deadline, names the failure, and keeps fx's order with the tracer.
func TestRollbackWithAProviderBroughtForward(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fx.New(fx.NopLogger, fx.Supply(jnl), fx.Provide(NewTracer), fxmodule.Module,
		fxmodule.Provide(func(j *journal, _ *Tracer) *DB { return &DB{base{id: "db", jnl: j}} }),
		fxmodule.Provide(NewMetrics, lifecycle.DependsOn("cache")),
		fxmodule.Provide(func(j *journal) *Failing { return &Failing{base{id: "fail", jnl: j, initErr: errors.New("boom")}} }),
		fxmodule.Provide(func(j *journal, _ *DB) *Cache { return &Cache{base{id: "cache", jnl: j}} }),
		fx.Populate(&reg))
	err := testkit.Receive(t, testkit.Go(func() error { return app.Start(context.Background()) }), "app.Start without a deadline")
	assert.ErrorContains(t, err, "boom")
	require.Eventually(t, func() bool { return len(reg.Report().Providers) == 4 }, wait, time.Millisecond)
	jnl.Before(t, "cleanup metrics", "cleanup cache")
	jnl.Before(t, "cleanup cache", "cleanup db")
	jnl.Before(t, "cleanup db", "stop tracer")
}

// lifecycle.DependsOn on a provider built later from a hooked component
// that fx starts before the dependent anyway: because the dependent is
// built from it too, or because a provider built earlier took it first. A
// legal order exists (the component starts first and stops last), and the
// app keeps it.
func TestDependsOnLaterFromAComponentStartedEarlier(t *testing.T) {
	for name, first := range map[string]fx.Option{
		"the dependent is built from it": fxmodule.Provide(func(j *journal, _ *Tracer) *DB { return &DB{base{id: "db", jnl: j}} }, lifecycle.DependsOn("cache")),
		"an earlier provider took it": fx.Options(
			fxmodule.Provide(func(j *journal, _ *Tracer) *Metrics { return &Metrics{base{id: "metrics", jnl: j}} }),
			fxmodule.Provide(NewDB, lifecycle.DependsOn("cache"))),
	} {
		t.Run(name, func(t *testing.T) {
			jnl := &journal{}
			app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fx.Provide(NewTracer), first,
				fxmodule.Provide(func(j *journal, _ *Tracer) *Cache { return &Cache{base{id: "cache", jnl: j}} }))
			app.RequireStart()
			require.NoError(t, stop(t, app.App))
			jnl.Before(t, "start tracer", "init cache")
			jnl.Before(t, "init cache", "init db")
			jnl.Before(t, "cleanup db", "cleanup cache")
			jnl.Before(t, "cleanup cache", "stop tracer")
		})
	}
}

// A Private provider in a module that fx invokes after the module of a
// component built from the registry: the registry still comes after it,
// so the component starts once it is initialized and may lease it.
func TestPrivateProviderComesBeforeComponentsOfTheRegistry(t *testing.T) {
	jnl := &journal{}
	var acquireErr error
	engine := func(lc fx.Lifecycle, reg *lifecycle.Registry) {
		lc.Append(fx.Hook{
			OnStart: func(ctx context.Context) error {
				jnl.Add("start engine")
				_, release, err := reg.Acquire(ctx, "db")
				acquireErr = err
				release()
				return nil
			},
			OnStop: func(context.Context) error { jnl.Add("stop engine"); return nil },
		})
	}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Module("api", fx.Invoke(engine)),
		fx.Module("storage", fxmodule.Provide(fxmodule.Private(NewDB))))
	app.RequireStart()
	app.RequireStop()
	require.NoError(t, acquireErr)
	jnl.Before(t, "init db", "start engine")
	jnl.Before(t, "stop engine", "cleanup db")
}

// A decorator that wraps the original in a provider with a life of its
// own (its own id, Initialize and Cleanup): both are managed, the wrapper
// initialized after the original and cleaned up before it.
func TestWrapperWithALifeOfItsOwnAndTheOriginalBothManaged(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fx.Provide(NewTracer), fxmodule.Module,
		fxmodule.Provide(func(j *journal, _ *Tracer) KV { return &DB{base{id: "db", jnl: j}} }),
		fx.Decorate(func(kv KV, j *journal) KV { return &CachedDB{base: base{id: "cached-db", jnl: j}, inner: kv} }),
		fx.Invoke(func(KV) {}), fx.Populate(&reg))
	app.RequireStart()
	require.NoError(t, stop(t, app.App))
	assert.ElementsMatch(t, []string{"db", "cached-db"}, reg.IDs())
	jnl.Before(t, "start tracer", "init db")
	jnl.Before(t, "init db", "init cached-db")
	jnl.Before(t, "cleanup cached-db", "cleanup db")
	jnl.Before(t, "cleanup db", "stop tracer")
}
