package lifecycle_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Property 10: Health never hangs. A hung check and a panicking one read as
// unhealthy with a reason; a provider without a check reads as healthy once
// initialized, and says it has no check. On synctest's clock the health
// timeout passes only while every goroutine waits: the checks that answer
// at once answer within it however slowly the machine runs them.
func TestHealthNeverHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(50 * time.Millisecond))
		good := newFake("good", &journal{})
		hung := newFake("hung", &journal{})
		hung.health = func(context.Context) lifecycle.Health { <-release; return lifecycle.Health{} }
		panics := newFake("panics", &journal{})
		panics.health = func(context.Context) lifecycle.Health { panic("checker broke") }
		degraded := newFake("degraded", &journal{})
		degraded.health = func(context.Context) lifecycle.Health {
			return lifecycle.Health{Status: lifecycle.StatusDegraded, Message: "slow", Resources: map[string]any{"open_connections": 3}}
		}
		for _, p := range []lifecycle.Provider{good, hung, panics, degraded, &noMethod{id: "bare"}} {
			mustRegister(t, r, p)
		}
		require.NoError(t, r.Start(context.Background()))

		var rep lifecycle.HealthReport
		within(t, "Health", func() { rep = r.Health(context.Background()) })
		assert.Equal(t, lifecycle.StatusUnhealthy, rep.Status)
		assert.Equal(t, lifecycle.StatusHealthy, rep.Providers["good"].Status)
		assert.Equal(t, lifecycle.StatusUnhealthy, rep.Providers["hung"].Status)
		assert.Contains(t, rep.Providers["hung"].Message, "did not return within 50ms")
		assert.Equal(t, lifecycle.StatusUnhealthy, rep.Providers["panics"].Status)
		assert.Contains(t, rep.Providers["panics"].Message, "checker broke")
		assert.Equal(t, lifecycle.StatusDegraded, rep.Providers["degraded"].Status)
		assert.Equal(t, 3, rep.Providers["degraded"].Resources["open_connections"])
		assert.Equal(t, lifecycle.StatusHealthy, rep.Providers["bare"].Status)
		assert.Contains(t, rep.Providers["bare"].Message, "no health check")

		// A second call does not start a second hung check: it shares the first.
		within(t, "Health", func() { rep = r.Health(context.Background()) })
		assert.Equal(t, lifecycle.StatusUnhealthy, rep.Providers["hung"].Status)
		require.NoError(t, r.Stop(context.Background()))
	})
}

// Checks run concurrently: each of these takes 30ms, and 100 of them one
// after another would blow the one-second timeout many times over. On
// synctest's clock each takes exactly 30ms, however slowly the machine
// runs the goroutines.
func TestHealthChecksRunConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(time.Second))
		var running, most atomic.Int32
		for i := 0; i < 100; i++ {
			f := newFake(fmt.Sprintf("p%03d", i), &journal{})
			f.health = func(context.Context) lifecycle.Health {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(30 * time.Millisecond)
				running.Add(-1)
				return lifecycle.Health{Status: lifecycle.StatusHealthy}
			}
			mustRegister(t, r, f)
		}
		require.NoError(t, r.Start(context.Background()))
		rep := r.Health(context.Background())
		assert.Equal(t, lifecycle.StatusHealthy, rep.Status)
		assert.Len(t, rep.Providers, 100)
		assert.Greater(t, most.Load(), int32(1), "checks overlapped")
		require.NoError(t, r.Stop(context.Background()))
	})
}

func TestHealthFollowsTheLifecycle(t *testing.T) {
	r := lifecycle.NewRegistry()
	f := newFake("f", &journal{})
	mustRegister(t, r, f)
	assert.Equal(t, lifecycle.StatusUnknown, r.Health(context.Background()).Providers["f"].Status)
	assert.Equal(t, lifecycle.StatusUnknown, r.Health(context.Background()).Status)

	require.NoError(t, r.Start(context.Background()))
	assert.Equal(t, lifecycle.StatusHealthy, r.Health(context.Background()).Status)

	require.NoError(t, r.Stop(context.Background()))
	assert.Equal(t, lifecycle.StatusUnhealthy, r.Health(context.Background()).Providers["f"].Status)

	empty := lifecycle.NewRegistry()
	assert.Equal(t, lifecycle.StatusHealthy, empty.Health(context.Background()).Status)
}

func TestHealthReportsFailedInitialize(t *testing.T) {
	r := lifecycle.NewRegistry()
	f := newFake("f", &journal{})
	f.initialize = failing(errBoom)
	mustRegister(t, r, f)
	require.Error(t, r.Start(context.Background()))
	h := r.Health(context.Background()).Providers["f"]
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, "boom")
	require.NoError(t, r.Stop(context.Background()))
}

func TestStatusAndResultNames(t *testing.T) {
	assert.Equal(t, []string{"unknown", "healthy", "degraded", "unhealthy"}, []string{
		lifecycle.StatusUnknown.String(), lifecycle.StatusHealthy.String(),
		lifecycle.StatusDegraded.String(), lifecycle.StatusUnhealthy.String(),
	})
	assert.Equal(t, []string{"ok", "error", "panic", "timeout", "skipped", "abandoned"}, []string{
		lifecycle.ResultOK.String(), lifecycle.ResultError.String(), lifecycle.ResultPanic.String(),
		lifecycle.ResultTimeout.String(), lifecycle.ResultSkipped.String(), lifecycle.ResultAbandoned.String(),
	})
	text, err := lifecycle.StatusDegraded.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "degraded", string(text))
}

func TestProvidersDescribesEachProvider(t *testing.T) {
	release, open := gate(t)
	r := lifecycle.NewRegistry()
	db, api := newFake("db", &journal{}), newFake("api", &journal{})
	api.cleanup = ignoring(release)
	mustRegister(t, r, db, lifecycle.Timeout(time.Minute))
	mustRegister(t, r, api, lifecycle.DependsOn("db"))
	infos := r.Providers()
	require.Len(t, infos, 2)
	assert.Equal(t, "db", infos[0].ID)
	assert.Equal(t, lifecycle.StateRegistered, infos[0].State)
	assert.Equal(t, time.Minute, infos[0].Timeout)
	assert.Equal(t, []string{"db"}, infos[1].DependsOn)

	require.NoError(t, r.Start(context.Background()))
	_, release2, err := r.Acquire(context.Background(), "db")
	require.NoError(t, err)
	infos = r.Providers()
	assert.Equal(t, lifecycle.StateReady, infos[0].State)
	assert.Equal(t, 1, infos[0].Leases)
	release2()

	stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
	eventually(t, "api is being cleaned up", func() bool { return r.Providers()[1].State == lifecycle.StateCleaning })
	open()
	require.NoError(t, testkit.Receive(t, stopped, "Stop"))
	infos = r.Providers()
	assert.Equal(t, lifecycle.StateCleaned, infos[1].State)
	require.NotNil(t, infos[1].Outcome)
	assert.Equal(t, lifecycle.ResultOK, infos[1].Outcome.Result)
}
