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
// initialized. On synctest's clock the Initialize that overruns its timeout
// returns, once its context ends, before its cleanup's own timeout runs
// out, however slowly the machine wakes it.
func TestStartFailureRollsBackIncludingTheFailedProvider(t *testing.T) {
	tests := []struct {
		name    string
		init    func(context.Context) error
		timeout time.Duration
		want    error
	}{
		{"error", failing(errBoom), time.Second, errBoom},
		{"panic", panicking("half open"), time.Second, nil},
		// Overruns its timeout, then returns once its context is done: the
		// cleanup waits for that (see TestRollbackWaitsForAnAbandonedInitialize).
		{"timeout", sleeping(time.Hour), 30 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
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

				// The rollback settles every provider: audit, never
				// initialized, is reported skipped, and not cleaned up.
				rep := r.Report()
				assert.Len(t, rep.Providers, 4)
				assert.Equal(t, lifecycle.ReasonNotInitialized, rep.Providers["audit"].Reason)
				for _, c := range obs.cleaned() {
					assert.Equal(t, lifecycle.TriggerRollback, c.Trigger)
				}
				_, _, err = r.Acquire(context.Background(), "db")
				assert.ErrorIs(t, err, lifecycle.ErrStopped)

				// Stop then has nothing left to run.
				require.NoError(t, r.Stop(context.Background()))
				for _, f := range []*fake{db, cache, api} {
					assert.EqualValues(t, 1, f.cleanups.Load(), f.id)
				}
				assert.EqualValues(t, 0, audit.cleanups.Load())
				assert.Len(t, r.Report().Providers, 4)
			})
		})
	}
}

// Property 7: a cleanup waits, within its timeout, for its provider's
// abandoned Initialize to return, and never runs beside it: a provider
// cleaned up while its Initialize still ran would reopen what it closed.
// Once the Initialize returns, the cleanup runs, late.
func TestRollbackWaitsForAnAbandonedInitialize(t *testing.T) {
	release, open := gate(t)
	jnl := &journal{}
	obs := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	db := newFake("db", jnl)
	var initializing atomic.Bool
	db.initialize = func(context.Context) error {
		initializing.Store(true)
		defer initializing.Store(false)
		<-release // ignores its context
		jnl.Add("initialize returned db")
		return nil
	}
	var overlapped atomic.Bool
	db.cleanup = func(context.Context) error {
		overlapped.Store(initializing.Load())
		return nil
	}
	mustRegister(t, r, db, lifecycle.Timeout(30*time.Millisecond))

	var err error
	within(t, "Start", func() { err = r.Start(context.Background()) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.EqualValues(t, 0, db.cleanups.Load(), "no cleanup while Initialize runs")
	o := r.Report().Providers["db"]
	assert.Equal(t, lifecycle.ResultTimeout, o.Result)
	assert.ErrorContains(t, o.Err, "waiting for its Initialize to return")

	open()
	eventually(t, "the cleanup runs once Initialize returned", func() bool { return jnl.Has("end db") })
	jnl.Before(t, "initialize returned db", "begin db")
	assert.False(t, overlapped.Load(), "Cleanup ran while Initialize was running")
	assert.EqualValues(t, 1, db.cleanups.Load())
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 1, db.cleanups.Load())
}

// Property 7: once Stop has claimed a provider's cleanup, its Initialize
// never begins, however Start and Stop interleave. Start and Stop run on
// goroutines of their own as ever; synctest.Wait returns once every
// goroutine has ended or is blocked for good, so that whatever the
// registry was going to do has been done when the test looks.
func TestInitializeNeverBeginsAfterCleanupIsClaimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 200 {
			r := lifecycle.NewRegistry()
			fs := make([]*fake, 5)
			for j := range fs {
				fs[j] = newFake(fmt.Sprintf("p%d", j), &journal{})
				mustRegister(t, r, fs[j])
			}
			started := testkit.Go(func() error { return r.Start(context.Background()) })
			ctx, cancel := context.WithCancel(context.Background())
			if i%2 == 0 {
				cancel()
			}
			within(t, "Stop", func() { _ = r.Stop(ctx) })
			cancel()
			testkit.Receive(t, started, "Start")
			synctest.Wait()
			// A provider whose Initialize began (it may have been still on
			// its way when Stop returned) is cleaned up once it returns;
			// one whose Initialize never began is reported so, and is
			// never initialized nor cleaned up.
			rep := r.Report()
			for _, f := range fs {
				if rep.Providers[f.id].Reason == lifecycle.ReasonNotInitialized {
					assert.EqualValues(t, 0, f.inits.Load()+f.cleanups.Load(), "round %d: %s", i, f.id)
					continue
				}
				assert.EqualValues(t, 1, f.inits.Load(), "round %d: %s", i, f.id)
				assert.EqualValues(t, 1, f.cleanups.Load(), "round %d: %s", i, f.id)
			}
		}
	})
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

// A provider that depends on the one that failed was never initialized: the
// rollback takes it along, skipped, as it takes every provider, so that no
// later registration can depend on what was rolled back.
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
	assert.EqualValues(t, 0, api.cleanups.Load(), "never initialized: nothing to clean up")
	assert.EqualValues(t, 1, db.cleanups.Load())
	rep := r.Report()
	assert.Equal(t, lifecycle.ReasonNotInitialized, rep.Providers["api"].Reason)
	assert.Equal(t, lifecycle.ReasonNotInitialized, rep.Providers["audit"].Reason, "an unrelated provider is settled too")
	assert.EqualValues(t, 0, audit.cleanups.Load())
	// A failed registry takes no more providers: one depending on db could
	// not be cleaned up before db, which is gone.
	require.ErrorIs(t, r.Register(newFake("late", jnl), lifecycle.DependsOn("db")), lifecycle.ErrStopped)
	require.NoError(t, r.Stop(context.Background()))
	assert.EqualValues(t, 0, audit.cleanups.Load())
	assert.EqualValues(t, 1, db.cleanups.Load())
	assert.Len(t, r.Report().Providers, 3)
}

// Stop during Start cancels Start and cleans up what was initialized, the
// provider caught mid-Initialize included; the provider Start never
// reached is reported, not cleaned up.
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
	for _, f := range []*fake{first, slow} {
		assert.EqualValues(t, 1, f.cleanups.Load(), f.id)
	}
	assert.EqualValues(t, 0, never.cleanups.Load())
	assert.Equal(t, lifecycle.ReasonNotInitialized, r.Report().Providers["never"].Reason)
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
// cleanup, which the rollback claimed, and returns once it ends, not when
// its own context runs out.
//
// synctest.Wait returns once every goroutine is blocked: a Stop that did
// not wait for the rollback would have returned by then.
func TestStopDuringRollbackWaitsForIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		synctest.Wait()
		require.EqualValues(t, 1, db.cleanups.Load(), "the rollback cleans db up")

		stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Stop returned while the rollback's cleanup of db still ran")
		default:
		}
		open()
		testkit.Receive(t, started, "Start")
		require.NoError(t, testkit.Receive(t, stopped, "Stop"))
		assert.EqualValues(t, 1, db.cleanups.Load())
		assert.EqualValues(t, 0, audit.cleanups.Load(), "never initialized")
		assert.Len(t, r.Report().Providers, 3)
	})
}

// initOnly is a provider with an Initialize and no cleanup method.
type initOnly struct {
	id   string
	init func(context.Context) error
}

func (p *initOnly) ID() string                           { return p.id }
func (p *initOnly) Initialize(ctx context.Context) error { return p.init(ctx) }

// Property 3 and 7: a dependent's abandoned Initialize holds back its
// dependency's cleanup, within the dependent's timeout, even when the
// dependent has no cleanup method: the Initialize may still be using the
// dependency: a provider with nothing to call is not skipped at once,
// which would close its dependency under its Initialize.
//
// On synctest's clock the Initialize returns 60ms after it began, 20ms
// before its dependent's cleanup timeout (40ms, from the Start's deadline
// at 40ms) runs out, however slowly the machine runs the goroutines.
func TestAbandonedInitializeHoldsBackItsDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		db := newFake("db", jnl)
		mustRegister(t, r, db)
		api := &initOnly{id: "api", init: func(context.Context) error {
			time.Sleep(60 * time.Millisecond) // ignores its context, and uses db
			jnl.Add("api initialize returned")
			return nil
		}}
		mustRegister(t, r, api, lifecycle.DependsOn("db"), lifecycle.Timeout(40*time.Millisecond))
		require.ErrorIs(t, r.Start(context.Background()), context.DeadlineExceeded)
		jnl.Before(t, "api initialize returned", "begin db")
		rep := r.Report()
		assert.Equal(t, lifecycle.ResultSkipped, rep.Providers["api"].Result)
		assert.Equal(t, lifecycle.ReasonNoMethod, rep.Providers["api"].Reason)
		assert.Equal(t, lifecycle.ResultOK, rep.Providers["db"].Result)
	})
}

// The bound wins over the order, as for any cleanup that overruns: when a
// dependent's Initialize outlasts the dependent's own cleanup timeout, the
// dependency's cleanup goes ahead, and the dependent's Cleanup still runs,
// late, once its Initialize returns, so that it releases what it holds
// itself. It may then find its dependency closed: a provider's Cleanup
// must cope with that, as it must with a dependency that timed out.
func TestAnInitializeThatOutlastsItsCleanupTimeoutDoesNotHoldBackItsDependency(t *testing.T) {
	release, open := gate(t)
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	db, api := newFake("db", jnl), newFake("api", jnl)
	api.initialize = func(context.Context) error { <-release; return nil } // ignores its context
	mustRegister(t, r, db)
	mustRegister(t, r, api, lifecycle.DependsOn("db"), lifecycle.Timeout(20*time.Millisecond))
	within(t, "Start", func() { require.Error(t, r.Start(context.Background())) })
	assert.EqualValues(t, 1, db.cleanups.Load(), "db's cleanup went ahead at api's timeout")
	assert.Equal(t, lifecycle.ResultTimeout, r.Report().Providers["api"].Result)
	assert.EqualValues(t, 0, api.cleanups.Load(), "not beside its Initialize")
	open()
	eventually(t, "api's Cleanup runs once its Initialize returned", func() bool { return jnl.Has("end api") })
	assert.EqualValues(t, 1, api.cleanups.Load())
}
