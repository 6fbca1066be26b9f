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

// bare is a provider with no cleanup method.
type bare struct{ id string }

func (b *bare) ID() string { return b.id }

// cleanedCounter counts ProviderCleaned events per provider.
type cleanedCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *cleanedCounter) Observe(e lifecycle.Event) {
	if e, ok := e.(lifecycle.ProviderCleaned); ok {
		c.mu.Lock()
		c.n[e.ID]++
		c.mu.Unlock()
	}
}

func (c *cleanedCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// Property 11: one ProviderCleaned event per provider, even for providers
// without a cleanup method begun in the instant Stop's context runs out:
// the cut-short Stop and the goroutine that ran them must not both report
// them, and the report does not read abandoned for a provider with nothing
// to clean up.
func TestOneCleanedEventPerProviderWhenStopIsCutShort(t *testing.T) {
	const deps = 2000
	for round := range 10 {
		obs := &cleanedCounter{n: map[string]int{}}
		r := lifecycle.NewRegistry(lifecycle.WithObserver(obs), lifecycle.WithDefaultTimeout(wait))
		ids := make([]string, deps)
		for i := range ids {
			ids[i] = fmt.Sprintf("b%d", i)
			mustRegister(t, r, &bare{id: ids[i]})
		}
		a := newFake("a", &journal{})
		a.cleanup = func(ctx context.Context) error { <-ctx.Done(); return nil }
		mustRegister(t, r, a, lifecycle.DependsOn(ids...))
		require.NoError(t, r.Start(context.Background()))
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+round%4)*time.Millisecond)
		within(t, "Stop", func() { _ = r.Stop(ctx) })
		cancel()
		counts := obs.counts()
		require.Len(t, counts, deps+1)
		for id, n := range counts {
			require.Equal(t, 1, n, "round %d: %s: ProviderCleaned events", round, id)
		}
		rep := r.Report()
		for _, id := range ids {
			o := rep.Providers[id]
			require.Equal(t, lifecycle.ResultSkipped, o.Result, "round %d: %s: %+v", round, id, o)
			require.Equal(t, lifecycle.ReasonNoMethod, o.Reason)
		}
	}
}

// A provider whose Unregister was in flight when Stop began is in Stop's
// report, with the Unregister's outcome: the registry held it.
func TestReportHoldsAProviderUnregisteringWhenStopBegan(t *testing.T) {
	obs := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	api := newFake("api", &journal{})
	began := make(chan struct{})
	finish, open := gate(t)
	api.cleanup = func(context.Context) error { close(began); <-finish; return nil }
	mustRegister(t, r, api, lifecycle.Timeout(wait))
	mustRegister(t, r, newFake("db", &journal{}))
	require.NoError(t, r.Start(context.Background()))

	unregistered := testkit.Go(func() error { return r.Unregister(context.Background(), "api") })
	testkit.Receive(t, began, "api's cleanup")
	stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
	eventually(t, "Stop claims what is left", func() bool {
		for _, e := range obs.snapshot() {
			if b, ok := e.(lifecycle.CleanupBegan); ok && b.Trigger == lifecycle.TriggerStop {
				return true
			}
		}
		return false
	})
	open()
	require.NoError(t, testkit.Receive(t, unregistered, "Unregister"))
	require.NoError(t, testkit.Receive(t, stopped, "Stop"))
	rep := r.Report()
	require.Contains(t, rep.Providers, "db")
	require.Contains(t, rep.Providers, "api")
	assert.Equal(t, lifecycle.ResultOK, rep.Providers["api"].Result)
}

// The report's duration is the rollback's and the Stop's together.
func TestReportDurationKeepsTheRollback(t *testing.T) {
	r := lifecycle.NewRegistry()
	slow := newFake("slow", &journal{})
	slow.cleanup = sleeping(30 * time.Millisecond)
	bad := newFake("bad", &journal{})
	bad.initialize = failing(errBoom)
	mustRegister(t, r, slow)
	mustRegister(t, r, bad, lifecycle.DependsOn("slow"))
	require.Error(t, r.Start(context.Background()))
	afterRollback := r.Report().Duration
	require.Positive(t, afterRollback)
	require.NoError(t, r.Stop(context.Background()))
	assert.Greater(t, r.Report().Duration, afterRollback, "Stop's time adds to the rollback's")
}
