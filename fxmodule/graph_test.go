package fxmodule_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The dependencies fx's graph gives, in the shapes where they are easily
// missed or invented. Each is written as an fx user would write it.

// newLoneCache is a cache provider built from nothing but the journal.
func newLoneCache(j *journal) *Cache { return &Cache{base{id: "cache", jnl: j}} }

// wired is a provider that a decorator wires a cache into, in place.
type wired struct {
	base
	cache *Cache
}

// query is a component that keeps what it was built from in a closure,
// where no value can show it: only fx's graph tells what it needs.
type query struct {
	run func() string
}

// Two sibling modules, each with a private component of one type built
// from its own private provider and keeping it in a closure: each api
// depends on its own database alone, as fx scopes them, though both
// databases' types print alike and no value shows which one a closure
// holds.
func TestSiblingModulesKeepTheirPrivateTypesApart(t *testing.T) {
	jnl := &journal{}
	region := func(name string) fx.Option {
		return fx.Module(name,
			fxmodule.Provide(func(j *journal) *DB { return &DB{base{id: name + "-db", jnl: j}} }, fx.Private),
			fx.Provide(fx.Private, func(db *DB) *query { return &query{run: db.ID} }),
			fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: name + "-api", jnl: j}} }, fx.Private),
			fx.Invoke(func(*API) {}),
		)
	}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, region("eu"), region("us"), fx.Populate(&reg))
	app.RequireStart().RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"eu-db"}, deps["eu-api"])
	assert.Equal(t, []string{"us-db"}, deps["us-api"], "eu-db, private to its sibling, is no input of us-api")
	assert.Empty(t, deps["eu-db"])
	assert.Empty(t, deps["us-db"])
	jnl.Before(t, "cleanup eu-api", "cleanup eu-db")
	jnl.Before(t, "cleanup us-api", "cleanup us-db")
}

// fx.ParamTags on a provider constructor: the tagged parameter is the
// dependency, the untagged one of the same type is not.
func TestParamTagsOnAProviderConstructor(t *testing.T) {
	jnl := &journal{}
	newDB := func(id string) any {
		return fx.Annotate(func(j *journal) *DB { return &DB{base{id: id, jnl: j}} }, fx.ResultTags(`name:"`+id+`"`))
	}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(newDB("primary")),
		fxmodule.Provide(newDB("replica")),
		fxmodule.Provide(fx.Annotate(func(j *journal, _ *DB) *Cache { return &Cache{base{id: "cache", jnl: j}} },
			fx.ParamTags(``, `name:"replica"`))),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"replica"}, dependsOn(reg)["cache"])
}

// A soft value group gives its consumer only the members fx built for
// others: a provider that nothing else asked for is neither built for it
// nor a dependency of it.
func TestSoftValueGroups(t *testing.T) {
	type handler struct{}
	type handlers struct {
		fx.In
		J  *journal
		Hs []*handler `group:"handlers,soft"`
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *Metrics { return &Metrics{base{id: "metrics", jnl: j}} }),
		fx.Provide(fx.Annotate(func(*Metrics) *handler { return &handler{} }, fx.ResultTags(`group:"handlers"`))),
		fxmodule.Provide(func(p handlers) *API { return &API{base{id: "api", jnl: p.J}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	// fx builds no member of a soft group for the api: metrics is
	// built (every provider is), but after the api, for the registry.
	assert.Empty(t, dependsOn(reg)["api"])
}

// A decorator that adds a dependency on another provider, kept only in a
// closure: the decorated component now needs it, and so does the provider
// built from it, though no value shows it.
func TestADecoratorThatAddsADependency(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Provide(func(db *DB) *query { return &query{run: db.ID} }),
		fx.Decorate(func(q *query, c *Cache) *query {
			return &query{run: func() string { return q.run() + c.ID() }}
		}),
		fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "api", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache"}, dependsOn(reg)["api"])
	jnl.Before(t, "cleanup api", "cleanup cache")
	jnl.Before(t, "cleanup api", "cleanup db")
}

// Two function-local types of one name, each a provider: a consumer
// depends on the one it takes alone, directly or through a component that
// keeps it in a closure, though both print alike.
func TestFunctionLocalTypesOfOneName(t *testing.T) {
	jnl := &journal{}
	var first, second fx.Option
	func() {
		type Conn struct{ base }
		first = fx.Options(
			fxmodule.Provide(func(j *journal) *Conn { return &Conn{base{id: "first-conn", jnl: j}} }),
			fx.Provide(func(c *Conn) *query { return &query{run: c.ID} }),
			fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "first-api", jnl: j}} }),
		)
	}()
	func() {
		type Conn struct{ base }
		second = fx.Options(
			fxmodule.Provide(func(j *journal) *Conn { return &Conn{base{id: "second-conn", jnl: j}} }),
			fxmodule.Provide(func(j *journal, _ *Conn) *Cache { return &Cache{base{id: "second-cache", jnl: j}} }),
		)
	}()
	var reg *lifecycle.Registry
	// second's first: its Conn is built before first-api.
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module, second, first, fx.Populate(&reg))
	app.RequireStart().RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"first-conn"}, deps["first-api"])
	assert.Equal(t, []string{"second-conn"}, deps["second-cache"])
	jnl.Before(t, "cleanup first-api", "cleanup first-conn")
	jnl.Before(t, "cleanup second-cache", "cleanup second-conn")
}

// Providers that add themselves to a hub they are built from, as checks
// register with a health registry or plugins with a router: none depends
// on one built after it, though the hub holds them all by the time the app
// starts; one built after others were added may use them through the hub,
// and is kept after them, as fx orders it. One declared to depend on a
// later one starts: the dependency guessed from the hub would close a
// cycle with it, and gives way.
func TestProvidersThatRegisterWithAHub(t *testing.T) {
	type hub struct{ members []lifecycle.Provider }
	jnl := &journal{}
	var reg *lifecycle.Registry
	join := func(h *hub, p lifecycle.Provider) { h.members = append(h.members, p) }
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Provide(func() *hub { return &hub{} }),
		fxmodule.Provide(func(j *journal, h *hub) *DB { db := NewDB(j); join(h, db); return db }),
		fxmodule.Provide(func(j *journal, h *hub, _ *DB) *Cache {
			c := &Cache{base{id: "cache", jnl: j}}
			join(h, c)
			return c
		}),
		fxmodule.Provide(func(j *journal, h *hub) *API { a := &API{base{id: "api", jnl: j}}; join(h, a); return a }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	deps := dependsOn(reg)
	assert.Empty(t, deps["db"])
	assert.Equal(t, []string{"db"}, deps["cache"])
	assert.ElementsMatch(t, []string{"db", "cache"}, deps["api"], "the hub held db and cache when api was built")
	jnl.Before(t, "init db", "init cache")
	jnl.Before(t, "cleanup cache", "cleanup db")

	app = fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Provide(func() *hub { return &hub{} }),
		fxmodule.Provide(func(j *journal, h *hub) *DB { db := NewDB(j); join(h, db); return db }, lifecycle.DependsOn("api")),
		fxmodule.Provide(func(j *journal, h *hub) *API { a := &API{base{id: "api", jnl: j}}; join(h, a); return a }),
		fx.Invoke(func(*DB, *API) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"api"}, dependsOn(reg)["db"])
}

// A decorator that replaces a provider's value with one it makes from
// another provider (a store in front of a cache): the value consumers
// receive is the one managed, and it depends on what the decorator took,
// whether or not the value holds it where a value can show it, and even a
// provider fx built after the original.
func TestADecoratedProviderDependsOnTheDecoratorsInputs(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Decorate(func(_ *DB, j *journal, _ *Cache) *DB { return &DB{base{id: "cached-db", jnl: j}} }),
		fx.Invoke(func(*DB) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"cache"}, dependsOn(reg)["cached-db"])
	jnl.Before(t, "init cache", "init cached-db")
	jnl.Before(t, "cleanup cached-db", "cleanup cache")
}

// A private constructor in an fx.Module hides one its parent gives, as a
// dig scope's value hides its parent's: a provider in the module built
// from it depends on what the module's constructor took alone.
func TestAPrivateConstructorHidesTheOnesAroundIt(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Provide(func(db *DB) *query { return &query{run: db.ID} }),
		fx.Module("m",
			fx.Provide(func(c *Cache) *query { return &query{run: c.ID} }, fx.Private),
			fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "api", jnl: j}} }),
			fx.Invoke(func(*API) {})),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"cache"}, dependsOn(reg)["api"])
}

// A decorator inside an fx.Module decorates the value for that module
// alone: the api in the module depends on the cache its decorator takes,
// the api at the root, which receives the value undecorated, does not.
func TestADecoratorInAModuleDecoratesItsModuleAlone(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Provide(func(db *DB) *query { return &query{run: db.ID} }),
		fx.Module("cached",
			fx.Decorate(func(q *query, c *Cache) *query {
				return &query{run: func() string { return q.run() + c.ID() }}
			}),
			fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "cached-api", jnl: j}} }),
		),
		fxmodule.Provide(func(j *journal, _ *query) *Metrics { return &Metrics{base{id: "plain-metrics", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	deps := dependsOn(reg)
	assert.ElementsMatch(t, []string{"db", "cache"}, deps["cached-api"])
	assert.Equal(t, []string{"db"}, deps["plain-metrics"])
}

// fx.Replace gives a component in place of its constructor, which is
// never called: what that constructor takes is no dependency.
func TestFxReplaceOfAComponentDropsItsInputs(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(newLoneCache),
		fx.Provide(func(c *Cache) *query { return &query{run: c.ID} }),
		fx.Replace(&query{run: func() string { return "fake" }}),
		fxmodule.Provide(NewDB),
		fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "api", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Empty(t, dependsOn(reg)["api"])
}

// A component annotated with an fx.OnStart hook that uses a provider it
// takes: a provider built from the component depends on both of its
// inputs, and the component's hook runs between them.
func TestAnOnStartHookThatTakesAProvider(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		fx.Provide(fx.Annotate(func(db *DB, _ *Cache) *query { return &query{run: db.ID} },
			fx.OnStart(func(_ context.Context, _ *query, c *Cache) error { jnl.Add("query sees " + c.ID()); return nil }))),
		fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "api", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"db", "cache"}, dependsOn(reg)["api"])
	jnl.Before(t, "init cache", "query sees cache")
	jnl.Before(t, "query sees cache", "init api")
}

// A value group's members are those its consumer sees: a private member
// of a module is not among the root's.
func TestAGroupHoldsTheMembersItsConsumerSees(t *testing.T) {
	type handler struct{ run func() string }
	type handlers struct {
		fx.In
		J  *journal
		Hs []*handler `group:"handlers"`
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	member := func(ctor any) fx.Option {
		return fx.Provide(fx.Annotate(ctor, fx.ResultTags(`group:"handlers"`)))
	}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(newLoneCache),
		member(func(db *DB) *handler { return &handler{db.ID} }),
		fx.Module("inner",
			fx.Provide(fx.Private, fx.Annotate(func(c *Cache) *handler { return &handler{c.ID} }, fx.ResultTags(`group:"handlers"`))),
			fxmodule.Provide(func(p handlers) *Metrics { return &Metrics{base{id: "inner-metrics", jnl: p.J}} }),
		),
		fxmodule.Provide(func(p handlers) *API { return &API{base{id: "api", jnl: p.J}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"db"}, deps["api"])
	assert.ElementsMatch(t, []string{"db", "cache"}, deps["inner-metrics"])
}

// A constructor with two providers among its results: a component built
// from one of them depends on that one alone.
func TestAComponentBuiltFromOneOfAConstructorsResults(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) (*DB, *Cache) {
			return &DB{base{id: "db", jnl: j}}, &Cache{base{id: "cache", jnl: j}}
		}),
		fx.Provide(func(c *Cache) *query { return &query{run: c.ID} }),
		fxmodule.Provide(func(j *journal, _ *query) *API { return &API{base{id: "api", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"cache"}, dependsOn(reg)["api"])
}

// A decorator that configures a provider in place, giving it another
// provider and returning it: the provider depends on what the decorator
// gave it, and is cleaned up first, as in the plain-fx twin.
func TestADecoratorThatConfiguresAProviderInPlace(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(newLoneCache),
		fxmodule.Provide(func(j *journal) *wired { return &wired{base: base{id: "db", jnl: j}} }),
		fx.Decorate(func(w *wired, c *Cache) *wired { w.cache = c; return w }),
		fx.Invoke(func(*wired) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"cache"}, dependsOn(reg)["db"])
	jnl.Before(t, "cleanup db", "cleanup cache")
}

// A decorator inside a module gives the module's consumers a value built
// from a provider that the root builds from the original: the two orders
// meet, and the root's, what a constructor received, wins, where plain fx
// would start too.
func TestADecoratorsInputThatNeedsTheOriginalStarts(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Module("m",
			fxmodule.Provide(NewDB),
			fx.Decorate(func(db *DB, _ *Cache) *DB { return &DB{base{id: "db", jnl: db.jnl}} }),
			fx.Invoke(func(*DB) {})),
		fxmodule.Provide(func(j *journal, _ *DB) *Cache { return &Cache{base{id: "cache", jnl: j}} }),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"db"}, dependsOn(reg)["cache"])
	assert.Empty(t, dependsOn(reg)["db"])
}

// A hub that is itself a provider, with handlers that register with it,
// and a server built from it last that drains through them: the server is
// cleaned up before the handlers, as fx's order would have it.
func TestAServerBuiltFromAHubProviderOutlivesNoHandler(t *testing.T) {
	type hub struct {
		base
		handlers []*Cache
	}
	jnl := &journal{}
	var reg *lifecycle.Registry
	handler := func(id string) func(*journal, *hub) *Cache {
		return func(j *journal, h *hub) *Cache {
			c := &Cache{base{id: id, jnl: j}}
			h.handlers = append(h.handlers, c)
			return c
		}
	}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *hub { return &hub{base: base{id: "hub", jnl: j}} }),
		fxmodule.Provide(fx.Annotate(handler("users"), fx.ResultTags(`name:"users"`))),
		fxmodule.Provide(fx.Annotate(handler("orders"), fx.ResultTags(`name:"orders"`))),
		fxmodule.Provide(func(j *journal, _ *hub) *API { return &API{base{id: "server", jnl: j}} }),
		fx.Invoke(func(*API) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.ElementsMatch(t, []string{"hub", "users", "orders"}, dependsOn(reg)["server"])
	jnl.Before(t, "cleanup server", "cleanup users")
	jnl.Before(t, "cleanup server", "cleanup orders")
}

// A hub that keeps its members by name, in a map: a provider built from
// it after they registered is cleaned up before them, as fx orders it.
func TestAHubThatKeepsItsMembersInAMap(t *testing.T) {
	type hub struct{ members map[string]lifecycle.Provider }
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fx.Provide(func() *hub { return &hub{members: map[string]lifecycle.Provider{}} }),
		fxmodule.Provide(func(j *journal, h *hub) *DB { db := NewDB(j); h.members["db"] = db; return db }),
		fxmodule.Provide(func(j *journal, _ *hub) *API { return &API{base{id: "server", jnl: j}} }),
		fx.Invoke(func(*API) {}),
		fx.Populate(&reg))
	app.RequireStart().RequireStop()
	assert.Equal(t, []string{"db"}, dependsOn(reg)["server"])
	jnl.Before(t, "cleanup server", "cleanup db")
}

// A decorator gives a provider another that fx builds after it from a
// component with hooks: the guessed dependency gives way rather than fail
// the start, which plain fx would not.
func TestAGuessThatWouldOutliveAHookedComponentGivesWay(t *testing.T) {
	type conn struct{}
	jnl := &journal{}
	app := fxtest.New(t, fx.Supply(jnl), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *wired { return &wired{base: base{id: "db", jnl: j}} }),
		fx.Provide(func(lc fx.Lifecycle, j *journal) *conn {
			lc.Append(fx.Hook{OnStart: func(context.Context) error { j.Add("start conn"); return nil },
				OnStop: func(context.Context) error { j.Add("stop conn"); return nil }})
			return &conn{}
		}),
		fxmodule.Provide(func(j *journal, _ *conn) *Cache { return &Cache{base{id: "cache", jnl: j}} }),
		fx.Decorate(func(w *wired, c *Cache) *wired { w.cache = c; return w }),
		fx.Invoke(func(*wired) {}))
	app.RequireStart().RequireStop()
	jnl.Before(t, "start conn", "init cache")
	jnl.Before(t, "cleanup cache", "stop conn")
}
