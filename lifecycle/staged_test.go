package lifecycle_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Start leaves a staged provider alone; StartProvider initializes it once
// its dependencies are initialized, and only once.
func TestStartProviderInitializesOneStagedProvider(t *testing.T) {
	jnl := &journal{}
	ev := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(ev))
	db, api := newFake("db", jnl), newFake("api", jnl)
	mustRegister(t, r, db, lifecycle.Staged())
	mustRegister(t, r, api, lifecycle.Staged(), lifecycle.DependsOn("db"))
	mustRegister(t, r, newFake("plain", jnl))

	err := r.StartProvider(context.Background(), "db")
	require.ErrorIs(t, err, lifecycle.ErrNotReady, "before Start")

	require.NoError(t, r.Start(context.Background()))
	assert.Zero(t, db.inits.Load(), "Start initialized a staged provider")
	assert.Contains(t, ev.snapshot(), lifecycle.StartBegan{Providers: 1, Staged: 2}, "the start's counts tell the staged apart")

	err = r.StartProvider(context.Background(), "api")
	require.ErrorIs(t, err, lifecycle.ErrNotReady)
	assert.Contains(t, err.Error(), `depends on "db"`)
	assert.Zero(t, api.inits.Load())

	require.NoError(t, r.StartProvider(context.Background(), "db"))
	require.NoError(t, r.StartProvider(context.Background(), "api"))
	require.NoError(t, r.StartProvider(context.Background(), "api"))
	assert.Equal(t, int32(1), api.inits.Load(), "Initialize ran more than once")
	require.ErrorIs(t, r.StartProvider(context.Background(), "nope"), lifecycle.ErrNotFound)

	r.AllowCleanup("api")
	r.AllowCleanup("db")
	require.NoError(t, r.Stop(context.Background()))
	jnl.Before(t, "end api", "begin db")
	assert.Len(t, r.Report().Providers, 3)
}

// A failed Initialize is returned again, and the provider stays to be
// cleaned up: it may hold half of what it acquired.
func TestStartProviderFailureLeavesTheProviderToStop(t *testing.T) {
	r := lifecycle.NewRegistry()
	db := newFake("db", &journal{})
	db.initialize = failing(errBoom)
	mustRegister(t, r, db, lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	require.ErrorIs(t, r.StartProvider(context.Background(), "db"), errBoom)
	require.ErrorIs(t, r.StartProvider(context.Background(), "db"), errBoom)
	assert.Equal(t, int32(1), db.inits.Load())

	r.AllowCleanup("db")
	require.NoError(t, r.Stop(context.Background()))
	assert.Equal(t, int32(1), db.cleanups.Load())
	assert.Equal(t, lifecycle.ResultOK, r.Report().Providers["db"].Result)
}

// Start still refuses a cycle or an unknown dependency among staged
// providers, and a provider it would initialize that depends on a staged
// one not started yet.
func TestStartChecksStagedProviders(t *testing.T) {
	r := lifecycle.NewRegistry()
	mustRegister(t, r, newFake("a", nil), lifecycle.Staged(), lifecycle.DependsOn("b"))
	mustRegister(t, r, newFake("b", nil), lifecycle.Staged(), lifecycle.DependsOn("a"))
	require.ErrorIs(t, r.Start(context.Background()), lifecycle.ErrCycle)

	r = lifecycle.NewRegistry()
	mustRegister(t, r, newFake("a", nil), lifecycle.Staged(), lifecycle.DependsOn("ghost"))
	require.ErrorIs(t, r.Start(context.Background()), lifecycle.ErrNotFound)

	r = lifecycle.NewRegistry()
	mustRegister(t, r, newFake("a", nil), lifecycle.Staged())
	mustRegister(t, r, newFake("b", nil), lifecycle.DependsOn("a"))
	err := r.Start(context.Background())
	require.ErrorIs(t, err, lifecycle.ErrNotReady)
	assert.Contains(t, err.Error(), `"a", which is staged`)
}

// Stop begins a staged provider's cleanup only once it is released, and
// still only after its dependents' cleanups. synctest.Wait returns once
// every goroutine is blocked: a held cleanup that was going to begin has
// begun by then.
func TestStopWaitsForRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		for _, id := range []string{"db", "cache", "api"} {
			mustRegister(t, r, newFake(id, jnl), lifecycle.Staged())
		}
		mustRegister(t, r, newFake("free", jnl)) // not staged: not held
		require.NoError(t, r.Register(newFake("user", jnl), lifecycle.Staged(), lifecycle.DependsOn("db", "cache")))
		require.NoError(t, r.Start(context.Background()))
		for _, id := range []string{"db", "cache", "api", "user"} {
			require.NoError(t, r.StartProvider(context.Background(), id))
		}

		r.AllowCleanup("cache") // before Stop: not held at all
		stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
		synctest.Wait()
		assert.True(t, jnl.Has("end free"), "the unheld provider is cleaned up")
		assert.False(t, jnl.Has("begin user") || jnl.Has("begin db") || jnl.Has("begin api"), "a held cleanup began: %v", jnl.All())
		assert.False(t, jnl.Has("begin cache"), "cache began before its dependent user")

		r.AllowCleanup("db") // released, but user depends on it
		synctest.Wait()
		assert.False(t, jnl.Has("begin db"), "db began before its dependent user ended")

		r.AllowCleanup("user")
		synctest.Wait()
		assert.True(t, jnl.Has("end db") && jnl.Has("end cache"), "db and cache are cleaned up after user: %v", jnl.All())
		jnl.Before(t, "end user", "begin db")
		jnl.Before(t, "end user", "begin cache")
		assert.False(t, jnl.Has("begin api"))
		r.AllowCleanup("api")
		r.AllowCleanup("api") // twice: nothing more
		require.NoError(t, testkit.Receive(t, stopped, "Stop"))
		assert.Len(t, r.Report().Providers, 5)
	})
}

// A provider never initialized is not held: there is nothing to clean up.
// One never released is begun once Stop's context is done.
func TestStopHoldsOnlyInitializedProvidersAndNotPastItsContext(t *testing.T) {
	r := lifecycle.NewRegistry()
	never, held := newFake("never", &journal{}), newFake("held", &journal{})
	mustRegister(t, r, never, lifecycle.Staged())
	mustRegister(t, r, held, lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.StartProvider(context.Background(), "held"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_ = r.Stop(ctx)
	rep := r.Report().Providers
	assert.Equal(t, lifecycle.ReasonNotInitialized, rep["never"].Reason)
	eventually(t, "the held cleanup begins once Stop's context is done", func() bool { return held.cleanups.Load() == 1 })
	r.AllowCleanup("held") // after the run: nothing
}

// Releases racing Stop, in any order and from many goroutines: every
// initialized provider is cleaned up exactly once, never before its
// release nor before its dependents, and Stop returns.
func TestReleaseRacingStop(t *testing.T) {
	for round := range 200 {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		const n = 12
		released := make([]chan struct{}, n)
		type edge struct{ from, to string }
		var edges []edge
		for i := range n {
			var deps []string
			for j := range i {
				if rng.IntN(4) == 0 {
					deps = append(deps, fmt.Sprint("p", j))
					edges = append(edges, edge{fmt.Sprint("p", i), fmt.Sprint("p", j)})
				}
			}
			f := newFake(fmt.Sprint("p", i), jnl)
			ch := make(chan struct{})
			released[i] = ch
			f.cleanup = func(context.Context) error {
				select {
				case <-ch:
				default:
					t.Errorf("round %d: %s cleaned up before its release", round, f.id)
				}
				return nil
			}
			mustRegister(t, r, f, lifecycle.Staged(), lifecycle.DependsOn(deps...))
		}
		require.NoError(t, r.Start(context.Background()))
		for i := range n {
			require.NoError(t, r.StartProvider(context.Background(), fmt.Sprint("p", i)))
		}
		var wg sync.WaitGroup
		for _, i := range rng.Perm(n) {
			wg.Go(func() {
				close(released[i])
				r.AllowCleanup(fmt.Sprint("p", i))
			})
		}
		require.NoError(t, r.Stop(context.Background()))
		wg.Wait()
		for i := range n {
			id := fmt.Sprint("p", i)
			assert.Equal(t, lifecycle.ResultOK, r.Report().Providers[id].Result, id)
		}
		assert.Len(t, jnl.All(), 2*n+n, "round %d: %v", round, jnl.All()) // init, begin, end each
		for _, e := range edges {
			jnl.Before(t, "end "+e.from, "begin "+e.to)
		}
	}
}
