package fxmodule_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// hooked is how the plain-fx twin of a provider runs: its Initialize on
// start, its Cleanup on stop.
func hooked(lc fx.Lifecycle, p interface {
	lifecycle.Provider
	lifecycle.Initializer
	lifecycle.Cleaner
}) {
	lc.Append(fx.Hook{OnStart: p.Initialize, OnStop: p.Cleanup})
}

// Stores is a constructor's fx.Out result: two providers, one named, and
// a plain value.
type Stores struct {
	fx.Out
	Primary *DB `name:"primary"`
	Cache   *Cache
	Label   string `name:"label"`
}

func NewStores(j *journal) Stores {
	return Stores{Primary: &DB{base{id: "primary", jnl: j}}, Cache: &Cache{base{id: "cache", jnl: j}}, Label: "stores"}
}

// A constructor that returns an fx.Out struct: each field that is a
// provider is managed, and consumers receive every field as from fx.
func TestAConstructorReturningFxOut(t *testing.T) {
	type use struct {
		fx.In
		Primary *DB `name:"primary"`
		Cache   *Cache
		Label   string `name:"label"`
	}
	check := func(t *testing.T, app *fxtest.App, jnl *journal, got *use) {
		app.RequireStart().RequireStop()
		assert.Equal(t, "stores", got.Label)
		assert.Equal(t, "primary", got.Primary.ID())
		for _, e := range []string{"init primary", "init cache", "cleanup primary", "cleanup cache"} {
			assert.True(t, jnl.Has(e), "%s: %v", e, jnl.All())
		}
	}

	t.Run("plain fx", func(t *testing.T) {
		jnl, got := &journal{}, &use{}
		app := fxtest.New(t, fx.Supply(jnl), fx.Provide(NewStores),
			fx.Invoke(func(u use, lc fx.Lifecycle) { *got = u; hooked(lc, u.Primary); hooked(lc, u.Cache) }))
		check(t, app, jnl, got)
	})

	t.Run("fxmodule", func(t *testing.T) {
		jnl, got := &journal{}, &use{}
		var reg *lifecycle.Registry
		app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fxmodule.Provide(NewStores),
			fx.Invoke(func(u use) { *got = u }), fx.Populate(&reg))
		check(t, app, jnl, got)
		assert.ElementsMatch(t, []string{"primary", "cache"}, reg.Report().IDs())
	})
}

// A constructor with two results and an error, as fx allows: both
// providers are managed.
func TestAConstructorWithSeveralResults(t *testing.T) {
	newBoth := func(j *journal) (*DB, *Cache, error) {
		return &DB{base{id: "db", jnl: j}}, &Cache{base{id: "cache", jnl: j}}, nil
	}
	jnl := &journal{}
	var (
		reg   *lifecycle.Registry
		db    *DB
		cache *Cache
	)
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, fxmodule.Provide(newBoth), fx.Populate(&reg, &db, &cache))
	app.RequireStart().RequireStop()
	// Initialized in the order of the results; cleaned up concurrently:
	// neither depends on the other.
	jnl.Before(t, "init db", "init cache")
	assert.ElementsMatch(t, []string{"init db", "init cache", "cleanup cache", "cleanup db"}, jnl.All())
	assert.ElementsMatch(t, []string{"db", "cache"}, reg.Report().IDs())
}

// Provide takes several constructors and fx.Private, as fx.Provide does:
// a private provider is managed, and invisible outside its module.
func TestProvideTakesWhatFxProvideTakes(t *testing.T) {
	inModule := func(opts ...fx.Option) fx.Option {
		return fx.Module("storage", append([]fx.Option{fxmodule.Provide(NewDB, NewCache, fx.Private)}, opts...)...)
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		inModule(fx.Invoke(func(*DB, *Cache) {})), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache"}, reg.Report().IDs())
	jnl.Before(t, "cleanup cache", "cleanup db")

	for name, opts := range map[string][]fx.Option{
		"plain fx": {fx.Module("storage", fx.Provide(NewDB, NewCache, fx.Private))},
		"fxmodule": {fxmodule.Module, inModule()},
	} {
		t.Run(name, func(t *testing.T) {
			app := fx.New(append([]fx.Option{fx.NopLogger, fx.Supply(&journal{}), fx.Invoke(func(*DB) {})}, opts...)...)
			require.ErrorContains(t, app.Err(), "missing type: *fxmodule_test.DB")
		})
	}
}

// One module factory used twice, each with a private provider of one id:
// both work, as in fx, each named in the registry after its module.
func TestOneModuleFactoryUsedTwice(t *testing.T) {
	region := func(name string) fx.Option {
		return fx.Module(name, fxmodule.Provide(NewDB, fx.Private), fx.Invoke(func(*DB) {}))
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, region("eu"), region("us"), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"eu.db", "us.db"}, reg.Report().IDs())
	assert.Equal(t, 2, countOf(jnl.All(), "cleanup db"))

	// Modules of one name in two others: the outer names tell them apart;
	// one with no module of its own keeps the id.
	nested := func(outer string) fx.Option { return fx.Module(outer, region("primary")) }
	app = fxtest.New(t, fx.Supply(jnl), fxmodule.Module, nested("eu"), nested("us"),
		fxmodule.Provide(NewDB, fx.Private), fx.Invoke(func(*DB) {}), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"eu.primary.db", "us.primary.db", "db"}, reg.Report().IDs())

	// Three modules of one name: numbered after the module. A provider
	// whose own id is one the names would take keeps it, and one whose id
	// is the name a provider has until then keeps it too.
	other := func(id string) fx.Option {
		return fx.Options(fxmodule.Provide(func(j *journal) *API { return &API{base{id: id, jnl: j}} }), fx.Invoke(func(*API) {}))
	}
	app = fxtest.New(t, fx.Supply(jnl), fxmodule.Module, region("m"), region("m"), region("m"),
		fx.Module("z", other("m.db")), fx.Module("y", fxmodule.Provide(func(j *journal) *Cache { return &Cache{base{id: "db@2", jnl: j}} }),
			fx.Invoke(func(*Cache) {})), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"m.db@2", "m.db@3", "m.db@4", "m.db", "db@2"}, reg.Report().IDs())

	// Names are the same from one run to the next, whatever the order of
	// the ids that meet.
	twice := func(region string) fx.Option {
		return fx.Module(region,
			fxmodule.Provide(func(j *journal) *Cache { return &Cache{base{id: "x.db", jnl: j}} }, fx.Private),
			fx.Invoke(func(*Cache) {}),
			fx.Module("x", fxmodule.Provide(NewDB, fx.Private), fx.Invoke(func(*DB) {})))
	}
	var first map[string]string
	for range 20 {
		app = fxtest.New(t, fx.Supply(jnl), fxmodule.Module, twice("eu"), twice("us"), fx.Populate(&reg))
		app.RequireStart()
		got := map[string]string{}
		for _, info := range reg.Providers() {
			p, release, err := reg.Acquire(context.Background(), info.ID)
			require.NoError(t, err)
			got[info.ID] = fmt.Sprintf("%T", p)
			release()
		}
		app.RequireStop()
		if first == nil {
			first = got
		}
		require.Equal(t, first, got)
	}

	// A dependency on the id they share names no provider: the error
	// says what they are named.
	ambiguous := fx.New(fx.NopLogger, fx.Supply(jnl), fxmodule.Module, region("eu"), region("us"),
		fxmodule.Provide(func(j *journal) *API { return &API{base{id: "api", jnl: j}} }, lifecycle.DependsOn("db")),
		fx.Invoke(func(*API) {}))
	require.NoError(t, ambiguous.Err())
	err := ambiguous.Start(context.Background())
	require.ErrorContains(t, err, `provider "api" depends on "db", which fx.Private providers of several modules are: they are named eu.db, us.db`)
	require.NoError(t, ambiguous.Stop(context.Background()))

	// One Provide option given to two modules: the modules cannot tell
	// which is which, and the later is known by its place.
	db := fxmodule.Provide(NewDB, fx.Private)
	app = fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Module("eu", db, fx.Invoke(func(*DB) {})), fx.Module("us", db, fx.Invoke(func(*DB) {})), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "db@2"}, reg.Report().IDs())

	// Not private, the two collide in fx first.
	shared := func(name string) fx.Option { return fx.Module(name, fxmodule.Provide(NewDB)) }
	bad := fx.New(fx.NopLogger, fx.Supply(jnl), fxmodule.Module, shared("eu"), shared("us"))
	require.ErrorContains(t, bad.Err(), "already provided")
}

func countOf(all []string, e string) int {
	n := 0
	for _, a := range all {
		if a == e {
			n++
		}
	}
	return n
}

// Backend is what a group of storage backends holds.
type Backend interface{ ID() string }

// One provider given in two results, as itself and as a group member: it
// is one provider, managed once.
func TestOneProviderInTwoResults(t *testing.T) {
	type dbOut struct {
		fx.Out
		DB      *DB
		Backend Backend `group:"backends"`
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) dbOut { db := NewDB(j); return dbOut{DB: db, Backend: db} }),
		fx.Invoke(fx.Annotate(func([]Backend) {}, fx.ParamTags(`group:"backends"`))),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"db"}, reg.Report().IDs())
	assert.Equal(t, []string{"init db", "cleanup db"}, jnl.All())
}

// A constructor that returns an interface without ID(), as fx users
// return what consumers need: the value it gives is a provider, managed.
func TestAConstructorReturningAnInterface(t *testing.T) {
	jnl := &journal{}
	var (
		reg   *lifecycle.Registry
		store Store
	)
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) Store { return NewDB(j) }),
		fx.Populate(&reg, &store))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"db"}, reg.Report().IDs())
	assert.Equal(t, []string{"init db", "cleanup db"}, jnl.All())

	bad := fx.New(fx.NopLogger, fxmodule.Module, fxmodule.Provide(func() Store { return nil }), fx.Invoke(func(Store) {}))
	require.ErrorContains(t, bad.Err(), "returned no provider")
}

// Getter is an interface without ID(), as consumers ask for one, and
// lookup a provider that is one.
type (
	Getter interface{ Get(key string) string }
	lookup struct{ base }
)

func (*lookup) Get(string) string { return "" }

// Interfaces without ID() among a constructor's results or fx.Out
// fields: those whose value is a provider are managed; nil values are
// not, and do not break the app; a constructor none of whose values is a
// provider fails, saying so.
func TestInterfaceResultsAndFields(t *testing.T) {
	type out struct {
		fx.Out
		DB *DB
		G  Getter
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) out { return out{DB: NewDB(j), G: &lookup{base{id: "cache", jnl: j}}} }),
		fxmodule.Provide(func(j *journal) (Store, fmt.Stringer) { return &MemStore{base{id: "mem", jnl: j}}, nil }),
		fx.Invoke(func(*DB, Getter, Store, fmt.Stringer) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache", "mem"}, reg.Report().IDs())

	bad := fx.New(fx.NopLogger, fxmodule.Module,
		fxmodule.Provide(func() (Store, Getter) { return nil, nil }), fx.Invoke(func(Store) {}))
	require.ErrorContains(t, bad.Err(), "returned no provider")
}

// Mistakes fx reports, reported as fx does rather than by a panic: an
// fx.As naming an interface the type does not implement. And tags past a
// constructor's parameters, which fx ignores.
func TestAnnotationMistakesAsFxSeesThem(t *testing.T) {
	bad := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Module,
		fxmodule.Provide(fx.Annotate(NewDB, fx.As(new(io.Reader)))))
	require.ErrorContains(t, bad.Err(), "does not implement")

	jnl := &journal{}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(fx.Annotate(func() *DB { return NewDB(jnl) }, fx.ParamTags(`name:"a"`))),
		fx.Invoke(func(*DB) {}))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"init db", "cleanup db"}, jnl.All())
}

// fx.OnStart and fx.OnStop on a provider constructor may take its
// parameters as well as its results, as fx lets them: the hooks run
// around the provider's Initialize and cleanup as in the plain-fx twin.
func TestHooksOnAProviderConstructorTakeItsParameters(t *testing.T) {
	type config struct{ name string }
	for name, provide := range map[string]func(any) fx.Option{
		"fxmodule": func(c any) fx.Option { return fxmodule.Provide(c) },
		"plain fx": func(c any) fx.Option { return fx.Provide(c) },
	} {
		t.Run(name, func(t *testing.T) {
			jnl := &journal{}
			ctor := fx.Annotate(func(j *journal, c *config) *DB { return &DB{base{id: c.name, jnl: j}} },
				fx.OnStart(func(_ context.Context, c *config, db *DB) error {
					jnl.Add("hook start " + c.name + " " + db.ID())
					return nil
				}),
				fx.OnStop(func(_ context.Context, c *config) error { jnl.Add("hook stop " + c.name); return nil }))
			opts := []fx.Option{fx.Supply(jnl, &config{name: "db"}), provide(ctor), fx.Invoke(func(*DB) {})}
			if name == "fxmodule" {
				opts = append(opts, fxmodule.Module)
			}
			app := fxtest.New(t, opts...)
			app.RequireStart().RequireStop()
			assert.Contains(t, jnl.All(), "hook start db db")
			assert.Contains(t, jnl.All(), "hook stop db")
			if name == "fxmodule" {
				jnl.Before(t, "init db", "hook start db db")
				jnl.Before(t, "hook stop db", "cleanup db")
			}
		})
	}
}
