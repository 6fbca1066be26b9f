package fxmodule_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Registration follows the order of the options in fx.New, not the order
// in which Provide was called (a package's init, say).
func TestRegistrationFollowsTheAppsOrder(t *testing.T) {
	metrics := fxmodule.Provide(NewMetrics) // called first
	db := fxmodule.Provide(NewDB)
	for _, tt := range []struct {
		order []fx.Option
		want  []string
	}{
		{[]fx.Option{db, metrics}, []string{"db", "metrics"}},
		{[]fx.Option{metrics, db}, []string{"metrics", "db"}},
	} {
		var reg *lifecycle.Registry
		app := fxtest.New(t, append([]fx.Option{fx.Supply(&journal{}), fxmodule.Module, fx.Populate(&reg)}, tt.order...)...)
		app.RequireStart()
		assert.Equal(t, tt.want, reg.IDs())
		app.RequireStop()
	}
}

// Several apps in one process, built from the same options at once, share
// nothing: each has its own registry and its own providers.
func TestAppsShareNothing(t *testing.T) {
	opts := fx.Options(fxmodule.Module, fxmodule.Provide(NewDB), fxmodule.Provide(NewCache))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			jnl := &journal{}
			var reg *lifecycle.Registry
			app := fxtest.New(t, fx.Supply(jnl), opts, fx.Populate(&reg))
			app.RequireStart()
			app.RequireStop()
			assert.Equal(t, []string{"db", "cache"}, reg.IDs())
			assert.Equal(t, []string{"init db", "init cache", "cleanup cache", "cleanup db"}, jnl.All())
		})
	}
	wg.Wait()
}
