package fxmodule_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The real implementation of a Store, and a test's fake.
type (
	// PGConfig is what the real store needs, and a test does not give.
	PGConfig struct{ DSN string }
	PG       struct{ base }
	// fakeStore is a test's fake: it has lifecycle methods too, which
	// no one should call.
	fakeStore struct {
		base
		calls atomic.Int32
	}
)

func (*PG) Get(string) string { return "real" }
func (f *fakeStore) Get(string) string {
	return "fake"
}
func (f *fakeStore) Initialize(context.Context) error { f.calls.Add(1); return nil }
func (f *fakeStore) Cleanup(context.Context) error    { f.calls.Add(1); return nil }

// A test replaces the store with fx.Replace, as fx users fake a
// dependency: the real constructor is never called (the app has no
// PGConfig, which it would need), the consumer gets the fake, and the
// fake, which no Provide declared, is nobody's to manage.
func TestFxReplaceReplaces(t *testing.T) {
	var called atomic.Int32
	newPG := func(_ PGConfig, j *journal) *PG {
		called.Add(1)
		return &PG{base{id: "pg", jnl: j}}
	}
	fake := &fakeStore{base: base{id: "pg"}}
	replace := fx.Replace(fx.Annotate(fake, fx.As(new(Store))))

	t.Run("plain fx", func(t *testing.T) {
		var got Store
		app := fxtest.New(t, fx.Supply(&journal{}),
			fx.Provide(fx.Annotate(newPG, fx.As(new(Store)))),
			replace, fx.Populate(&got))
		app.RequireStart().RequireStop()
		assert.Same(t, fake, got)
	})

	t.Run("fxmodule", func(t *testing.T) {
		var (
			got Store
			reg *lifecycle.Registry
		)
		app := fxtest.New(t, fx.Supply(&journal{}), fxmodule.Module,
			fxmodule.Provide(fx.Annotate(newPG, fx.As(new(Store)))),
			replace, fx.Populate(&got, &reg))
		app.RequireStart().RequireStop()
		assert.Same(t, fake, got)
		assert.Empty(t, reg.Providers(), "the fake is not a provider any Provide declared")
	})

	assert.Zero(t, called.Load(), "the replaced constructor was called")
	assert.Zero(t, fake.calls.Load(), "Initialize or Cleanup was called on the fake")
}

// The same with a fake of the provider's own type, consumed by another
// provider: that one is managed, and depends on nothing.
func TestFxReplaceOfTheSameType(t *testing.T) {
	var called atomic.Int32
	jnl := &journal{}
	fake := &DB{base{id: "db", jnl: jnl}}
	var (
		reg  *lifecycle.Registry
		used *DB
	)
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal, _ *DB) *API { return &API{base{id: "api", jnl: j}} }),
		fxmodule.Provide(func(j *journal) *DB { called.Add(1); return &DB{base{id: "db", jnl: j}} }),
		fx.Replace(fake), fx.Populate(&reg, &used))
	app.RequireStart().RequireStop()
	require.Same(t, fake, used)
	assert.Zero(t, called.Load(), "the replaced constructor was called")
	assert.Zero(t, fake.cleanups, "the fake was cleaned up")
	assert.Equal(t, []string{"init api", "cleanup api"}, jnl.All())
	require.Len(t, reg.Providers(), 1)
	assert.Equal(t, "api", reg.Providers()[0].ID)
}

// A replacing fx.Decorate (one that does not take the original) wins as
// fx.Replace does.
func TestAReplacingDecoratorReplaces(t *testing.T) {
	var called atomic.Int32
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *DB { called.Add(1); return &DB{base{id: "db", jnl: j}} }),
		fx.Decorate(func() *DB { return &DB{base{id: "fake", jnl: jnl}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Zero(t, called.Load(), "the replaced constructor was called")
	assert.Empty(t, reg.Providers())
}

// fx.Replace of one of a constructor's two results: the constructor is
// called for the other, so, as in fx (where its hooks would run), the
// value it built stays managed, and the fake is the test's own.
func TestFxReplaceOfOneOfTwoResults(t *testing.T) {
	jnl := &journal{}
	fake := &Cache{base{id: "cache", jnl: &journal{}}}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) (*DB, *Cache) { return NewDB(j), &Cache{base{id: "cache", jnl: j}} }),
		fx.Replace(fake),
		fx.Invoke(func(*DB, *Cache) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache"}, reg.Report().IDs())
	assert.True(t, jnl.Has("init cache") && jnl.Has("cleanup cache"), "the real cache is managed: %v", jnl.All())
	assert.Zero(t, fake.cleanups, "the fake was cleaned up")
}
