package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Start runs every Initialize on one goroutine and watches them with one
// timer, set for the deadline of the Initialize running. These tests are
// the timings that would break that: a later provider with a shorter
// timeout than the one the timer is set for, an Initialize that ignores its
// context, one that returns just after its deadline, and a Stop during a
// hung Initialize.

// A provider with a long timeout, then one with a short timeout that hangs:
// Start returns at the short one's deadline, not the long one's, and names
// it.
func TestStartBoundsAShorterTimeoutAfterALongerOne(t *testing.T) {
	release, open := gate(t)
	defer open()
	r := lifecycle.NewRegistry()
	quick := newFake("quick", &journal{})
	hung := newFake("hung", &journal{})
	hung.initialize = func(context.Context) error { <-release; return nil } // ignores its context
	mustRegister(t, r, quick, lifecycle.Timeout(time.Hour))
	mustRegister(t, r, hung, lifecycle.Timeout(40*time.Millisecond), lifecycle.DependsOn("quick"))

	var err error
	within(t, "Start, bounded by the hung provider's 40ms", func() { err = r.Start(context.Background()) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, `"hung"`)
	assert.ErrorContains(t, err, "did not return within its 40ms timeout")
	open()
}

// An Initialize that waits on its context sees it end at its deadline, with
// DeadlineExceeded, and Start reports the timeout. On synctest's clock no
// time passes while goroutines run, so the deadline is exactly 30ms after
// Start was called.
func TestInitializeContextEndsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := lifecycle.NewRegistry()
		p := newFake("p", &journal{})
		var seen error
		var deadline time.Time
		var hasDeadline bool
		p.initialize = func(ctx context.Context) error {
			deadline, hasDeadline = ctx.Deadline()
			<-ctx.Done()
			seen = ctx.Err()
			return seen
		}
		mustRegister(t, r, p, lifecycle.Timeout(30*time.Millisecond))
		began := time.Now()
		var err error
		within(t, "Start", func() { err = r.Start(context.Background()) })
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.True(t, hasDeadline)
		assert.WithinDuration(t, began.Add(30*time.Millisecond), deadline, 0)
		assert.ErrorIs(t, seen, context.DeadlineExceeded)
	})
}

// A context derived inside Initialize is cancelled with it, at the
// deadline, and by Stop.
func TestDerivedInitializeContextsEndWithIt(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		r := lifecycle.NewRegistry()
		p := newFake("p", &journal{})
		p.initialize = func(ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			return child.Err()
		}
		mustRegister(t, r, p, lifecycle.Timeout(20*time.Millisecond))
		var err error
		within(t, "Start", func() { err = r.Start(context.Background()) })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("stop", func(t *testing.T) {
		r := lifecycle.NewRegistry()
		p := newFake("p", &journal{})
		entered := make(chan struct{})
		p.initialize = func(ctx context.Context) error {
			child, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			close(entered)
			<-child.Done()
			return child.Err()
		}
		mustRegister(t, r, p, lifecycle.Timeout(time.Hour))
		started := make(chan error, 1)
		go func() { started <- r.Start(context.Background()) }()
		testkit.Receive(t, entered, "Initialize")
		within(t, "Stop", func() { _ = r.Stop(context.Background()) })
		err := testkit.Receive(t, started, "Start")
		assert.ErrorIs(t, err, lifecycle.ErrStopped)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

// The context an Initialize kept is cancelled once it returned, as
// WithTimeout's cancel would; Err then reads Canceled, whether or not Done
// was asked for before.
func TestInitializeContextEndsWhenItReturns(t *testing.T) {
	for _, askDone := range []bool{false, true} {
		r := lifecycle.NewRegistry()
		p := newFake("p", &journal{})
		var kept context.Context
		p.initialize = func(ctx context.Context) error {
			if askDone {
				_ = ctx.Done()
			}
			require.NoError(t, ctx.Err())
			kept = ctx
			return nil
		}
		mustRegister(t, r, p, lifecycle.Timeout(time.Hour))
		require.NoError(t, r.Start(context.Background()))
		testkit.Receive(t, kept.Done(), "the kept context's Done")
		assert.ErrorIs(t, kept.Err(), context.Canceled, "askDone=%v", askDone)
		child, cancel := context.WithCancel(kept)
		testkit.Receive(t, child.Done(), "a context derived after it ended")
		cancel()
		require.NoError(t, r.Stop(context.Background()))
	}
}

// An Initialize that returns after its deadline is late, even when it
// returns before anyone noticed the deadline: the outcome follows the
// clock, and the real result is reported late.
func TestInitializeReturningAfterItsDeadlineIsLate(t *testing.T) {
	obs := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	p := newFake("p", &journal{})
	p.initialize = func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		for time.Now().Before(d.Add(time.Millisecond)) { // busy: the watcher may not run
		}
		return errors.New("real result")
	}
	mustRegister(t, r, p, lifecycle.Timeout(5*time.Millisecond))
	err := r.Start(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotContains(t, err.Error(), "real result")
	eventually(t, "the late result", func() bool {
		for _, e := range obs.snapshot() {
			if late, ok := e.(lifecycle.ProviderReturnedLate); ok && late.Op == "initialize" {
				return late.Err != nil && assert.ErrorContains(t, late.Err, "real result")
			}
		}
		return false
	})
}

// Many providers, each with a short timeout, one of which hangs in the
// middle: every one before it is initialized, none after it begins, and
// Start gives up on it once its deadline has passed, not before.
//
// On synctest's clock each Initialize before the hung one takes exactly a
// millisecond, so that the sequence outlasts the first provider's deadline
// and the watchdog, set for it, fires early and is set again, several
// times, while no Initialize runs late, however slowly the machine runs
// them.
func TestStartStopsAtTheHungProviderOfMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, open := gate(t)
		defer open()
		const timeout = 50 * time.Millisecond
		var began time.Time
		var cutAfter time.Duration // when Start gave up on the hung Initialize
		r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(timeout), lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
			if pi, ok := e.(lifecycle.ProviderInitialized); ok && pi.Err != nil {
				cutAfter = time.Since(began)
			}
		})))
		const n, hungAt = 200, 120
		fakes := make([]*fake, n)
		for i := range fakes {
			fakes[i] = newFake(fmt.Sprint("p", i), &journal{})
			fakes[i].initialize = sleeping(time.Millisecond)
			if i == hungAt {
				fakes[i].initialize = func(context.Context) error { <-release; return nil }
			}
			mustRegister(t, r, fakes[i])
		}
		var err error
		began = time.Now()
		within(t, "Start", func() { err = r.Start(context.Background()) })
		assert.Equal(t, hungAt*time.Millisecond+timeout, cutAfter, "Start gives up at the hung provider's deadline")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, fmt.Sprintf("%q", fakes[hungAt].id))
		for i, f := range fakes {
			want := int32(0)
			if i <= hungAt {
				want = 1
			}
			assert.Equal(t, want, f.inits.Load(), "Initialize calls of %s", f.id)
		}
		open()
	})
}

// StartProvider with a context that has ended reports that, not a stop:
// the registry runs, and nothing claimed the provider.
func TestStartProviderWithAnEndedContext(t *testing.T) {
	r := lifecycle.NewRegistry()
	p := newFake("p", &journal{})
	mustRegister(t, r, p, lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.StartProvider(ctx, "p")
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, lifecycle.ErrStopped)
	assert.EqualValues(t, 0, p.inits.Load())
	require.NoError(t, r.StartProvider(context.Background(), "p"), "the provider can still be started")
	r.AllowCleanup("p") // its owner is done with it: Stop may clean it up
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
}

// Start with a context that ends between two Initialize calls returns that
// end, having initialized the first provider and not the second, and rolls
// the first back. The observer, on the goroutine that runs the Initialize
// calls, lets the watcher see the end before it goes on.
func TestStartWhoseContextEndsBetweenTwoInitializeCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := lifecycle.NewRegistry(lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
			if pi, ok := e.(lifecycle.ProviderInitialized); ok && pi.ID == "a" {
				cancel()
				synctest.Wait() // the watcher sees the end first, between the two calls
			}
		})))
		a, b := newFake("a", &journal{}), newFake("b", &journal{})
		mustRegister(t, r, a)
		mustRegister(t, r, b, lifecycle.DependsOn("a"))
		var err error
		within(t, "Start", func() { err = r.Start(ctx) })
		require.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, `"b"`)
		assert.EqualValues(t, 1, a.inits.Load())
		assert.EqualValues(t, 0, b.inits.Load())
		assert.EqualValues(t, 1, a.cleanups.Load(), "a is rolled back")
	})
}

// When Start stops waiting for a hung Initialize, its outcome is reported
// before the late return, however slow the observer that reports it. The
// observer lets the Initialize return, then waits until every other
// goroutine is blocked: a late return reported without waiting for the
// outcome would have been reported by then.
func TestTheOutcomeOfAHungInitializeIsReportedBeforeItsLateReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, open := gate(t)
		obs := &events{}
		r := lifecycle.NewRegistry(lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
			if pi, ok := e.(lifecycle.ProviderInitialized); ok && pi.Err != nil {
				open()          // the Initialize returns now, late
				synctest.Wait() // while the outcome is still being reported
			}
			obs.Observe(e)
		})))
		p := newFake("p", &journal{})
		p.initialize = ignoring(release)
		mustRegister(t, r, p, lifecycle.Timeout(10*time.Millisecond))
		var err error
		within(t, "Start", func() { err = r.Start(context.Background()) })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		synctest.Wait()
		var order []string
		for _, e := range obs.snapshot() {
			switch e := e.(type) {
			case lifecycle.ProviderInitialized:
				order = append(order, "outcome")
			case lifecycle.ProviderReturnedLate:
				if e.Op == "initialize" {
					order = append(order, "late")
				}
			}
		}
		assert.Equal(t, []string{"outcome", "late"}, order)
	})
}
