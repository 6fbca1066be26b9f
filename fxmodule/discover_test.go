package fxmodule_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	xstore "github.com/gleitzeit/gleitzeit/fxmodule/internal/twostores/x/store"
	ystore "github.com/gleitzeit/gleitzeit/fxmodule/internal/twostores/y/store"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// dependsOn returns the dependencies the registry was given, by provider.
func dependsOn(reg *lifecycle.Registry) map[string][]string {
	out := map[string][]string{}
	for _, p := range reg.Providers() {
		out[p.ID] = p.DependsOn
	}
	return out
}

// Two types that print alike (*store.Client, from two packages named
// store) are told apart: the api built from y's client depends on it alone,
// and x's client, built from the api, makes no cycle.
func TestTypesThatPrintAlikeAreToldApart(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(func(j *journal) *ystore.Client { return &ystore.Client{Log: j.Add} }),
		fxmodule.Provide(func(j *journal, _ *ystore.Client) *API { return &API{base{id: "api", jnl: j}} }),
		fxmodule.Provide(func(j *journal, _ *API) *xstore.Client { return &xstore.Client{Log: j.Add} }),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"y-store"}, deps["api"])
	assert.Equal(t, []string{"api"}, deps["x-store"])
	assert.Empty(t, deps["y-store"])
	jnl.Before(t, "cleanup x-store", "cleanup api")
	jnl.Before(t, "cleanup api", "cleanup y-store")
}

// The same with two function-local types of one name, which print alike
// (*fxmodule_test.Conn), one of them reached through a plain constructor.
func TestLocalTypesOfOneNameAreToldApart(t *testing.T) {
	jnl := &journal{}
	// x-conn is built from the api, the api from y-conn: a legal graph, in
	// which a walk by printed names would find a cycle.
	var newXConn, newWorker, newYConn, newJob any
	func() {
		type Conn struct{ base }
		type Job struct{ c *Conn }
		newXConn = func(j *journal, _ *API) *Conn { return &Conn{base{id: "x-conn", jnl: j}} }
		newJob = func(c *Conn) *Job { return &Job{c} }
		newWorker = func(j *journal, _ *Job) *Cache { return &Cache{base{id: "worker", jnl: j}} }
	}()
	func() {
		type Conn struct{ base }
		newYConn = func(j *journal) *Conn { return &Conn{base{id: "y-conn", jnl: j}} }
		newAPI := func(j *journal, _ *Conn) *API { return &API{base{id: "api", jnl: j}} }
		newXConn = fx.Options(fxmodule.Provide(newXConn), fxmodule.Provide(newAPI))
	}()
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(newYConn),
		newXConn.(fx.Option),
		fx.Provide(newJob),
		fxmodule.Provide(newWorker),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"y-conn"}, deps["api"])
	assert.Equal(t, []string{"api"}, deps["x-conn"])
	assert.Equal(t, []string{"x-conn"}, deps["worker"], "the plain constructor holds x's conn: the values decide")
	jnl.Before(t, "cleanup worker", "cleanup x-conn")
	jnl.Before(t, "cleanup x-conn", "cleanup api")
	jnl.Before(t, "cleanup api", "cleanup y-conn")
}

// Two sibling modules each provide a private *Repo, from their own
// database: each module's api depends on its own database only.
func TestSiblingModulesWithPrivateTypesOfOneName(t *testing.T) {
	jnl := &journal{}
	module := func(name string) fx.Option {
		return fx.Module(name,
			fxmodule.Provide(fxmodule.Private(func(j *journal) *DB { return &DB{base{id: name + "-db", jnl: j}} })),
			fx.Provide(fx.Private, func(db *DB) *Repo { return &Repo{db: db} }),
			fxmodule.Provide(fxmodule.Private(func(j *journal, _ *Repo) *API { return &API{base{id: name + "-api", jnl: j}} })),
		)
	}
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		module("a"),
		module("b"),
		fx.Populate(&reg),
	)
	app.RequireStart()
	app.RequireStop()
	deps := dependsOn(reg)
	assert.Equal(t, []string{"a-db"}, deps["a-api"])
	assert.Equal(t, []string{"b-db"}, deps["b-api"])
	assert.Len(t, reg.Report().Providers, 4, "every private provider is managed")
	jnl.Before(t, "cleanup a-api", "cleanup a-db")
	jnl.Before(t, "cleanup b-api", "cleanup b-db")
}
