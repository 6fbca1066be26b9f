package fxmodule_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// A decorator of the provider's own type: the decorated value is managed.
func TestDecoratedProviderIsTheOneManaged(t *testing.T) {
	jnl := &journal{}
	var decorated *DB
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(func(j *journal) *DB { return &DB{base{id: "db", jnl: j, initErr: assert.AnError}} }),
		fx.Decorate(func(db *DB) *DB {
			decorated = &DB{base{id: "db", jnl: db.jnl}}
			return decorated
		}),
		fx.Invoke(func(*DB) {}),
	)
	app.RequireStart() // the original would fail to initialize
	app.RequireStop()
	assert.Equal(t, 1, decorated.cleanups)
}

// A decorator's inputs count: an api built from a repository decorated
// with a cache provider depends on the cache, which fx's graph does not
// show, and is cleaned up before it.
func TestDecoratorInputsAreDependencies(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Provide(NewRepo),
		fx.Decorate(func(r *Repo, c *Cache) *Repo { return &Repo{db: r.db, cache: c} }),
		fxmodule.Provide(NewAPI),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache"}, dependsOn(reg)["api"])
	jnl.Before(t, "cleanup api", "cleanup cache")
	jnl.Before(t, "cleanup api", "cleanup db")
}

// A decorator that wraps a provider in one of its own, holding the
// original's parts (the pool it embeds) rather than the original: both are
// managed, the wrapper after the original, whose pool it uses.
func TestAWrapperHoldingTheOriginalsPartsWrapsIt(t *testing.T) {
	type pool struct{ name string }
	type pooled struct {
		base
		pool *pool
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *pooled { return &pooled{base{id: "db", jnl: j}, &pool{name: "main"}} }),
		fx.Decorate(func(o *pooled) *pooled { return &pooled{base{id: "traced-db", jnl: o.jnl}, o.pool} }),
		fx.Invoke(func(*pooled) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "traced-db"}, reg.Report().IDs())
	assert.Equal(t, []string{"db"}, dependsOn(reg)["traced-db"])
	jnl.Before(t, "init db", "init traced-db")
	jnl.Before(t, "cleanup traced-db", "cleanup db")
}
