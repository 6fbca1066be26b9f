package lifecycle_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// graph is a dependency graph for a test: each provider id with the ids it
// depends on, in registration order.
type graph []struct {
	id   string
	deps []string
}

// register registers a fake for every provider of g whose cleanup takes
// cleanup (when not nil) and returns them by id.
func (g graph) register(t *testing.T, r *lifecycle.Registry, jnl *journal, cleanup func(context.Context) error) map[string]*fake {
	t.Helper()
	fakes := make(map[string]*fake, len(g))
	for _, p := range g {
		f := newFake(p.id, jnl)
		f.cleanup = cleanup
		fakes[p.id] = f
		mustRegister(t, r, f, lifecycle.DependsOn(p.deps...))
	}
	return fakes
}

// checkOrder fails the test unless, for every edge, the dependency was
// initialized before its dependent and cleaned up only after its
// dependent's cleanup had ended.
func (g graph) checkOrder(t *testing.T, jnl *journal) {
	t.Helper()
	for _, p := range g {
		for _, d := range p.deps {
			jnl.Before(t, "init "+d, "init "+p.id)
			jnl.Before(t, "end "+p.id, "begin "+d)
		}
	}
}

// Property 3: dependency order, on chains, diamonds and wide graphs.
func TestDependencyOrder(t *testing.T) {
	wide := graph{{id: "root"}}
	for i := 0; i < 50; i++ {
		wide = append(wide, struct {
			id   string
			deps []string
		}{fmt.Sprintf("leaf%d", i), []string{"root"}})
	}
	tests := []struct {
		name string
		give graph
	}{
		{"chain", graph{{"d", nil}, {"c", []string{"d"}}, {"b", []string{"c"}}, {"a", []string{"b"}}}},
		{"chain registered backwards", graph{{"a", []string{"b"}}, {"b", []string{"c"}}, {"c", []string{"d"}}, {"d", nil}}},
		{"diamond", graph{{"top", []string{"left", "right"}}, {"left", []string{"bottom"}}, {"right", []string{"bottom"}}, {"bottom", nil}}},
		{"wide", wide},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jnl := &journal{}
			r := lifecycle.NewRegistry()
			// A little time in each cleanup gives a wrong order the chance to show.
			fakes := tt.give.register(t, r, jnl, sleeping(time.Millisecond))
			require.NoError(t, r.Start(context.Background()))
			require.NoError(t, r.Stop(context.Background()))
			tt.give.checkOrder(t, jnl)
			for id, f := range fakes {
				assert.EqualValues(t, 1, f.cleanups.Load(), id)
			}
		})
	}
}

// Property 3 on a hang: a dependent that times out has ended, so its
// dependency is then cleaned up. On synctest's clock the 20ms timeout,
// which bounds Initialize too, passes only while every goroutine waits,
// however loaded the machine.
func TestDependencyCleanedAfterDependentTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		jnl := &journal{}
		obs := &events{}
		r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
		db := newFake("db", jnl)
		api := newFake("api", jnl)
		api.cleanup = ignoring(release)
		mustRegister(t, r, db)
		mustRegister(t, r, api, lifecycle.DependsOn("db"), lifecycle.Timeout(20*time.Millisecond))
		require.NoError(t, r.Start(context.Background()))

		err := r.Stop(context.Background())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, "timeout", r.Report().Providers["api"].Result.String())
		assert.Equal(t, "ok", r.Report().Providers["db"].Result.String())
		assert.False(t, jnl.Has("end api"), "api is still hung")
		// db began after the registry recorded api's end (its timeout).
		cleaned := obs.cleaned()
		require.Len(t, cleaned, 2)
		assert.Equal(t, "api", cleaned[0].ID)
		assert.Equal(t, "db", cleaned[1].ID)
	})
}

// Property 4: a provider's cleanup begins as soon as its own dependents have
// ended, not when a whole tier has. "slow" cannot finish until "b" has begun;
// a scheduler that waited for the first tier (a and slow) before starting b
// would make slow time out.
func TestCleanupStartsAsSoonAsItsDependentsEnd(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	bBegan := make(chan struct{})
	b := newFake("b", jnl)
	b.cleanup = func(context.Context) error { close(bBegan); return nil }
	a := newFake("a", jnl)
	slow := newFake("slow", jnl)
	slow.cleanup = func(ctx context.Context) error {
		select {
		case <-bBegan:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	base := newFake("base", jnl)
	mustRegister(t, r, b)
	mustRegister(t, r, a, lifecycle.DependsOn("b"))
	mustRegister(t, r, base)
	mustRegister(t, r, slow, lifecycle.DependsOn("base"), lifecycle.Timeout(wait))
	require.NoError(t, r.Start(context.Background()))

	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	rep := r.Report()
	for _, id := range []string{"a", "b", "slow", "base"} {
		assert.Equal(t, "ok", rep.Providers[id].Result.String(), id)
	}
	jnl.Before(t, "begin b", "end slow")
}

// Property 4: independent cleanups run at once. Each of these waits until
// all of them have begun; run one at a time, they would all time out.
func TestIndependentCleanupsRunConcurrently(t *testing.T) {
	const n = 100
	var all sync.WaitGroup
	all.Add(n)
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(wait))
	jnl := &journal{}
	for i := 0; i < n; i++ {
		f := newFake(fmt.Sprintf("p%03d", i), jnl)
		f.cleanup = func(ctx context.Context) error {
			all.Done()
			waited := make(chan struct{})
			go func() { all.Wait(); close(waited) }()
			select {
			case <-waited:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mustRegister(t, r, f)
	}
	require.NoError(t, r.Start(context.Background()))
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	assert.Equal(t, n, r.Report().Count(lifecycle.ResultOK))
}

func TestStartNamesUnknownDependency(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	a := newFake("api", jnl)
	mustRegister(t, r, a, lifecycle.DependsOn("ghost"))

	err := r.Start(context.Background())
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	assert.Contains(t, err.Error(), `"api"`)
	assert.Contains(t, err.Error(), `"ghost"`)
	assert.EqualValues(t, 0, a.inits.Load(), "nothing is initialized when the graph is wrong")
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 0, a.cleanups.Load(), "nothing initialized, nothing to clean up")
	o := r.Report().Providers["api"]
	assert.Equal(t, lifecycle.ResultSkipped, o.Result)
	assert.Equal(t, lifecycle.ReasonNotInitialized, o.Reason)
}

func TestStartNamesCycle(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	g := graph{{"free", nil}, {"a", []string{"b"}}, {"b", []string{"c"}}, {"c", []string{"a"}}}
	fakes := g.register(t, r, jnl, nil)

	err := r.Start(context.Background())
	require.ErrorIs(t, err, lifecycle.ErrCycle)
	assert.Contains(t, err.Error(), `"a" -> "b" -> "c" -> "a"`)
	for id, f := range fakes {
		assert.EqualValues(t, 0, f.inits.Load(), id)
	}
	// Stop still ends, and reports every provider: none was initialized,
	// so none is cleaned up.
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	for id, f := range fakes {
		assert.EqualValues(t, 0, f.cleanups.Load(), id)
		assert.Equal(t, lifecycle.ReasonNotInitialized, r.Report().Providers[id].Reason, id)
	}
}

func TestSelfDependencyIsACycle(t *testing.T) {
	r := lifecycle.NewRegistry()
	err := r.Register(newFake("narcissus", &journal{}), lifecycle.DependsOn("narcissus"))
	require.ErrorIs(t, err, lifecycle.ErrCycle)
	assert.Contains(t, err.Error(), `"narcissus"`)
	assert.Empty(t, r.IDs())
}
