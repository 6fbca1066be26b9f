package lifecycle_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Property 2: no silent replacement.
func TestRegisterDuplicateIDFails(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	first, second := newFake("db", jnl), newFake("db", jnl)
	mustRegister(t, r, first)

	err := r.Register(second)
	require.ErrorIs(t, err, lifecycle.ErrDuplicateID)
	var pe *lifecycle.ProviderError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "db", pe.ProviderID)
	assert.Equal(t, "register", pe.Op)

	// The first registration stands: it, and only it, is cleaned up.
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 1, first.cleanups.Load())
	assert.EqualValues(t, 0, second.cleanups.Load())
	assert.EqualValues(t, 0, second.inits.Load())
}

func TestRegisterAfterStopFails(t *testing.T) {
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Stop(context.Background()))
	err := r.Register(newFake("late", &journal{}))
	require.ErrorIs(t, err, lifecycle.ErrStopped)
}

func TestRegisterWhileStoppingFails(t *testing.T) {
	release, open := gate(t)
	r := lifecycle.NewRegistry()
	slow := newFake("slow", &journal{})
	slow.cleanup = ignoring(release)
	mustRegister(t, r, slow)
	require.NoError(t, r.Start(context.Background()))

	stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
	eventually(t, "stop begins", func() bool { return slow.cleanups.Load() == 1 })

	require.ErrorIs(t, r.Register(newFake("late", &journal{})), lifecycle.ErrStopped)
	open()
	require.NoError(t, testkit.Receive(t, stopped, "Stop"))
}

func TestRegisterRejectsBadProviders(t *testing.T) {
	r := lifecycle.NewRegistry()
	var nilFake *fake
	tests := []struct {
		name string
		give lifecycle.Provider
		want string
	}{
		{"nil", nil, "nil provider"},
		{"typed nil", nilFake, "nil provider"},
		{"empty id", newFake("", &journal{}), "empty id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Register(tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Empty(t, r.IDs())
}

// Property 1: exactly once, whatever mix of Stop and Unregister reaches a
// provider, from however many goroutines.
func TestCleanupRunsExactlyOnceUnderConcurrentStopAndUnregister(t *testing.T) {
	for round := 0; round < 20; round++ {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		var fakes []*fake
		for i := 0; i < 30; i++ {
			f := newFake(fmt.Sprintf("p%d", i), jnl)
			f.cleanup = sleeping(time.Duration(i%3) * time.Millisecond)
			fakes = append(fakes, f)
			mustRegister(t, r, f)
		}
		require.NoError(t, r.Start(context.Background()))

		var wg sync.WaitGroup
		for i := range fakes {
			for k := 0; k < 2; k++ { // two Unregisters race for each provider
				wg.Go(func() { _ = r.Unregister(context.Background(), fakes[i].id) })
			}
		}
		for k := 0; k < 3; k++ { // and three Stops race with them
			wg.Go(func() { _ = r.Stop(context.Background()) })
		}
		within(t, "concurrent Stop and Unregister", wg.Wait)

		for _, f := range fakes {
			require.EqualValues(t, 1, f.cleanups.Load(), "cleanups of %s in round %d", f.id, round)
		}
	}
}

func TestSecondStopRunsNothingAndReturnsTheFirstResult(t *testing.T) {
	r := lifecycle.NewRegistry()
	bad := newFake("bad", &journal{})
	bad.cleanup = failing(errBoom)
	mustRegister(t, r, bad)
	require.NoError(t, r.Start(context.Background()))

	first := r.Stop(context.Background())
	require.ErrorIs(t, first, errBoom)
	second := r.Stop(context.Background())
	assert.Equal(t, first, second)
	assert.EqualValues(t, 1, bad.cleanups.Load())
}

// The Python system skipped cleanup when its engine never started. Here a
// registered provider is cleaned up whether or not Start ran.
// Property 7: cleanup follows Initialize. A registry that never started
// initialized nothing, holds nothing, and cleans up nothing; its report
// still names every provider, skipped, with the reason.
func TestStopWithoutStartCleansUpNothing(t *testing.T) {
	jnl := &journal{}
	obs := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	a, b := newFake("a", jnl), newFake("b", jnl)
	mustRegister(t, r, a)
	mustRegister(t, r, b, lifecycle.DependsOn("a"))
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 0, a.cleanups.Load())
	assert.EqualValues(t, 0, b.cleanups.Load())
	rep := r.Report()
	require.Len(t, rep.Providers, 2)
	for _, id := range []string{"a", "b"} {
		assert.Equal(t, lifecycle.ResultSkipped, rep.Providers[id].Result, id)
		assert.Equal(t, lifecycle.ReasonNotInitialized, rep.Providers[id].Reason, id)
	}
	assert.Len(t, obs.cleaned(), 2, "each skip is reported as an event")
}

func TestStartAfterStopFails(t *testing.T) {
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Stop(context.Background()))
	require.ErrorIs(t, r.Start(context.Background()), lifecycle.ErrStopped)
}

// RegisteredAs gives a provider the id the registry knows it by: two
// providers whose own IDs are the same live side by side.
func TestRegisteredAsGivesTheRegistrysID(t *testing.T) {
	r := lifecycle.NewRegistry()
	jnl := &journal{}
	a, b := newFake("db", jnl), newFake("db", jnl)
	mustRegister(t, r, a)
	mustRegister(t, r, b, lifecycle.RegisteredAs("db@2"))
	require.ErrorIs(t, r.Register(newFake("db", jnl)), lifecycle.ErrDuplicateID)
	require.NoError(t, r.Start(t.Context()))
	require.NoError(t, r.Stop(t.Context()))
	assert.ElementsMatch(t, []string{"db", "db@2"}, r.Report().IDs())
	assert.Equal(t, int32(1), a.cleanups.Load())
	assert.Equal(t, int32(1), b.cleanups.Load())
}

// DependsOnOf reads back the ids that DependsOn options name, in order,
// among other options.
func TestDependsOnOfReadsTheDeclaredDependencies(t *testing.T) {
	assert.Equal(t, []string{"db", "cache", "queue"}, lifecycle.DependsOnOf(
		lifecycle.DependsOn("db", "cache"), lifecycle.Timeout(time.Second), lifecycle.RegisteredAs("x"), lifecycle.DependsOn("queue")))
	assert.Empty(t, lifecycle.DependsOnOf(lifecycle.Staged()))
	assert.Empty(t, lifecycle.DependsOnOf())
}
