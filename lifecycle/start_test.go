package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestStartInitializesInDependencyOrderThenRegistrationOrder(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	graph{{"api", []string{"db", "cache"}}, {"audit", nil}, {"cache", []string{"db"}}, {"db", nil}}.register(t, r, jnl, nil)
	require.NoError(t, r.Start(context.Background()))
	assert.Equal(t, []string{"init db", "init cache", "init api", "init audit"}, jnl.All())
	require.NoError(t, r.Stop(context.Background()))
}

// Property 7: Start rolls back. The provider that failed is cleaned up too,
// in dependency order with the ones before it, and nothing after it is
// initialized.
func TestStartFailureRollsBackIncludingTheFailedProvider(t *testing.T) {
	release, _ := gate(t)
	tests := []struct {
		name    string
		init    func(context.Context) error
		timeout time.Duration
		want    error
	}{
		{"error", failing(errBoom), time.Second, errBoom},
		{"panic", panicking("half open"), time.Second, nil},
		{"timeout", ignoring(release), 30 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jnl := &journal{}
			obs := &events{}
			r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
			db, cache, api, audit := newFake("db", jnl), newFake("cache", jnl), newFake("api", jnl), newFake("audit", jnl)
			api.initialize = tt.init
			mustRegister(t, r, db)
			mustRegister(t, r, cache, lifecycle.DependsOn("db"))
			mustRegister(t, r, api, lifecycle.DependsOn("cache"), lifecycle.Timeout(tt.timeout))
			mustRegister(t, r, audit) // registered after api: never initialized

			var err error
			within(t, "Start", func() { err = r.Start(context.Background()) })
			require.Error(t, err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			var pe *lifecycle.ProviderError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "api", pe.ProviderID)
			assert.Equal(t, "initialize", pe.Op)

			assert.EqualValues(t, 0, audit.inits.Load(), "no further provider is initialized")
			for _, f := range []*fake{db, cache, api} {
				assert.EqualValues(t, 1, f.cleanups.Load(), "%s is cleaned up before Start returns", f.id)
			}
			assert.EqualValues(t, 0, audit.cleanups.Load())
			jnl.Before(t, "end api", "begin cache")
			jnl.Before(t, "end cache", "begin db")

			rep := r.Report()
			assert.Len(t, rep.Providers, 3)
			for _, c := range obs.cleaned() {
				assert.Equal(t, lifecycle.TriggerRollback, c.Trigger)
			}
			_, _, err = r.Acquire(context.Background(), "db")
			assert.ErrorIs(t, err, lifecycle.ErrStopped)

			// Stop then cleans up what the rollback left, once.
			require.NoError(t, r.Stop(context.Background()))
			for _, f := range []*fake{db, cache, api, audit} {
				assert.EqualValues(t, 1, f.cleanups.Load(), f.id)
			}
			assert.Len(t, r.Report().Providers, 4)
		})
	}
}

func TestSecondStartReturnsTheFirstResult(t *testing.T) {
	r := lifecycle.NewRegistry()
	f := newFake("f", &journal{})
	f.initialize = failing(errBoom)
	mustRegister(t, r, f)
	first := r.Start(context.Background())
	require.ErrorIs(t, first, errBoom)
	assert.Equal(t, first, r.Start(context.Background()))
	assert.EqualValues(t, 1, f.inits.Load())
	require.NoError(t, r.Stop(context.Background()))
}

// A provider that depends on the one that failed was never initialized, but
// it is cleaned up with the rollback, before its dependency: a later Stop
// would clean it up after.
func TestStartRollbackTakesDependentsOfTheFailedProvider(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	db, api, audit := newFake("db", jnl), newFake("api", jnl), newFake("audit", jnl)
	db.initialize = failing(errBoom)
	mustRegister(t, r, api, lifecycle.DependsOn("db"))
	mustRegister(t, r, db)
	mustRegister(t, r, audit)
	require.ErrorIs(t, r.Start(context.Background()), errBoom)
	assert.EqualValues(t, 0, api.inits.Load())
	assert.EqualValues(t, 1, api.cleanups.Load())
	assert.EqualValues(t, 0, audit.cleanups.Load(), "an unrelated provider is left for Stop")
	jnl.Before(t, "end api", "begin db")
	// A failed registry takes no more providers: one depending on db could
	// not be cleaned up before db, which is gone.
	require.ErrorIs(t, r.Register(newFake("late", jnl), lifecycle.DependsOn("db")), lifecycle.ErrStopped)
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 1, audit.cleanups.Load())
	assert.EqualValues(t, 1, api.cleanups.Load())
}

// Stop during Start cancels Start and cleans up everything, the provider
// caught mid-Initialize included.
func TestStopDuringStartCancelsItAndCleansUp(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	first, slow, never := newFake("first", jnl), newFake("slow", jnl), newFake("never", jnl)
	slow.initialize = sleeping(time.Hour) // honours its context
	mustRegister(t, r, first)
	mustRegister(t, r, slow, lifecycle.Timeout(time.Hour))
	mustRegister(t, r, never)

	started := testkit.Go(func() error { return r.Start(context.Background()) })
	eventually(t, "slow is initializing", func() bool { return slow.inits.Load() == 1 })

	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	require.ErrorIs(t, testkit.Receive(t, started, "Start"), lifecycle.ErrStopped)
	assert.EqualValues(t, 0, never.inits.Load())
	for _, f := range []*fake{first, slow, never} {
		assert.EqualValues(t, 1, f.cleanups.Load(), f.id)
	}
}

// Once running, Register initializes the provider itself; if that fails,
// the provider is cleaned up and not kept.
func TestRegisterWhileRunningInitializes(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	db := newFake("db", jnl)
	mustRegister(t, r, db)
	require.NoError(t, r.Start(context.Background()))

	late := newFake("late", jnl)
	mustRegister(t, r, late, lifecycle.DependsOn("db"))
	assert.EqualValues(t, 1, late.inits.Load())
	_, release, err := r.Acquire(context.Background(), "late")
	require.NoError(t, err)
	release()

	broken := newFake("broken", jnl)
	broken.initialize = failing(errBoom)
	err = r.Register(broken)
	require.ErrorIs(t, err, errBoom)
	assert.EqualValues(t, 1, broken.cleanups.Load(), "half-initialized provider is cleaned up")
	assert.NotContains(t, r.IDs(), "broken")

	err = r.Register(newFake("orphan", jnl), lifecycle.DependsOn("ghost"))
	require.ErrorIs(t, err, lifecycle.ErrNotFound)

	require.NoError(t, r.Stop(context.Background()))
	jnl.Before(t, "end late", "begin db")
	assert.EqualValues(t, 1, broken.cleanups.Load())
}

// Stop while a failed Start's rollback is still cleaning up waits for that
// cleanup (found by the fuzzer: it used to wait for a job it thought it had
// claimed itself, until its context ran out).
func TestStopDuringRollbackWaitsForIt(t *testing.T) {
	release, open := gate(t)
	jnl := &journal{}
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(wait))
	db, api, audit := newFake("db", jnl), newFake("api", jnl), newFake("audit", jnl)
	db.cleanup = ignoring(release)
	api.initialize = failing(errBoom)
	mustRegister(t, r, db)
	mustRegister(t, r, api)
	mustRegister(t, r, audit)

	started := testkit.Go(func() error { return r.Start(context.Background()) })
	eventually(t, "the rollback cleans db up", func() bool { return db.cleanups.Load() == 1 })

	stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
	eventually(t, "Stop cleans audit up", func() bool { return audit.cleanups.Load() == 1 })
	open()
	testkit.Receive(t, started, "Start")
	testkit.Receive(t, stopped, "Stop")
	assert.EqualValues(t, 1, db.cleanups.Load())
	assert.Len(t, r.Report().Providers, 3)
}
