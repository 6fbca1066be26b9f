package fxmodule_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Store is an interface a provider is exposed as, with fx.As.
type Store interface{ Get(key string) string }

func (*DB) Get(string) string { return "value" }

// Provide takes what fx.Provide takes: fx.Annotate with fx.As, ParamTags
// and ResultTags, lifecycle hook annotations, and groups; the registry
// manages each provider, with the dependencies its annotated parameters
// bring.
func TestProvideTakesFxAnnotate(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	type consumers struct {
		fx.In
		Store   Store
		Primary *Cache     `name:"primary"`
		Metrics []*Metrics `group:"metrics"`
	}
	var got consumers
	app := fxtest.New(t,
		fx.Supply(jnl),
		fx.Supply(fx.Annotated{Name: "cache-id", Target: "cache"}),
		fxmodule.Module,
		fxmodule.Provide(fx.Annotate(NewDB, fx.As(new(Store)))),
		fxmodule.Provide(fx.Annotate(
			func(j *journal, id string, _ Store) *Cache { return &Cache{base{id: id, jnl: j}} },
			fx.ParamTags(``, `name:"cache-id"`),
			fx.ResultTags(`name:"primary"`),
		)),
		fxmodule.Provide(fx.Annotate(
			func(j *journal) *API { return &API{base{id: "api", jnl: j}} },
			fx.OnStart(func(context.Context, *API) error { jnl.Add("hook start api"); return nil }),
			fx.OnStop(func(context.Context, *API) error { jnl.Add("hook stop api"); return nil }),
		)),
		fxmodule.Provide(fx.Annotate(NewMetrics, fx.ResultTags(`group:"metrics"`))),
		fxmodule.Provide(fx.Annotated{Group: "metrics", Target: func(j *journal) *Metrics { return &Metrics{base{id: "metrics-2", jnl: j}} }}),
		fx.Populate(&reg, &got),
	)
	app.RequireStart()
	require.NotNil(t, got.Store)
	assert.Equal(t, "value", got.Store.Get("k"))
	assert.Equal(t, "cache", got.Primary.ID())
	assert.Len(t, got.Metrics, 2)
	app.RequireStop()

	assert.ElementsMatch(t, []string{"db", "cache", "api", "metrics", "metrics-2"}, reg.IDs())
	assert.Equal(t, []string{"db"}, dependsOn(reg)["cache"], "the dependency through fx.As")
	jnl.Before(t, "init db", "init cache")
	jnl.Before(t, "init api", "hook start api")
	jnl.Before(t, "hook stop api", "cleanup api")
	jnl.Before(t, "cleanup cache", "cleanup db")
	for id, o := range reg.Report().Providers {
		assert.Equal(t, lifecycle.ResultOK, o.Result, id)
	}
}

// fx.Private through fxmodule.Private: the value stays in its module,
// and the registry still manages it, even if nothing consumes it.
func TestPrivateProviders(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fx.Module("storage", fxmodule.Provide(fxmodule.Private(NewDB))),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	assert.Equal(t, []string{"db"}, reg.IDs())
	jnl.Before(t, "init db", "cleanup db")

	app2 := fx.New(fx.NopLogger,
		fx.Supply(jnl),
		fxmodule.Module,
		fx.Module("storage", fxmodule.Provide(fxmodule.Private(NewDB))),
		fx.Invoke(func(*DB) {}),
	)
	require.ErrorContains(t, app2.Err(), "missing type: *fxmodule_test.DB", "a private provider is not visible outside its module")
}

// fx.From: a parameter satisfied by another type that implements it.
func TestProvideTakesFxFrom(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(fx.Annotate(
			func(s Store, j *journal) *Cache { return &Cache{base{id: "cache", jnl: j}} },
			fx.From(new(*DB)),
		)),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	assert.Equal(t, []string{"db"}, dependsOn(reg)["cache"])
	jnl.Before(t, "cleanup cache", "cleanup db")
}
