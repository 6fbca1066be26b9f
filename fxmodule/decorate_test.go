package fxmodule_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// fx.Replace swaps a fake in, the usual way in fx tests: the registry
// manages the fake, which consumers use, and never touches the original,
// which no one sees.
func TestReplacedProviderIsTheOneManaged(t *testing.T) {
	jnl := &journal{}
	fake := &DB{base{id: "db", jnl: jnl}}
	var (
		reg  *lifecycle.Registry
		used *DB
	)
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(func(j *journal) *DB { return &DB{base{id: "db", jnl: j, initErr: assert.AnError}} }),
		fxmodule.Provide(NewCache),
		fx.Replace(fake),
		fx.Populate(&reg, &used),
	)
	app.RequireStart()
	app.RequireStop()
	require.Same(t, fake, used)
	assert.Equal(t, 1, fake.cleanups, "the fake consumers used is cleaned up")
	p, _, err := reg.Acquire(t.Context(), "db")
	require.ErrorIs(t, err, lifecycle.ErrStopped)
	assert.Nil(t, p)
	jnl.Before(t, "cleanup cache", "cleanup db")
}

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
		fxmodule.Provide(func(j *journal) *Cache { return &Cache{base{id: "cache", jnl: j}} }),
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
