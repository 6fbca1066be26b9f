package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// exitingOn is an observer that ends the goroutine that calls it with
// runtime.Goexit, as t.FailNow does, on the events that match.
func exitingOn(match func(lifecycle.Event) bool) lifecycle.Option {
	return lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
		if match(e) {
			runtime.Goexit()
		}
	}))
}

// exitedBy runs call on a goroutine of its own, which an observer is to
// end, and waits, within the test's bound, until it has ended.
func exitedBy(t *testing.T, what string, call func()) {
	t.Helper()
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		call()
	}()
	testkit.Receive(t, exited, what)
}

// An observer that stops the registry when it sees something wrong during
// Start does not deadlock: Stop cancels the Start and cleans up what it
// initialized without waiting for the Start, whose goroutine is the
// observer's.
func TestAnObserverMayStopTheRegistryDuringStart(t *testing.T) {
	var r *lifecycle.Registry
	var once sync.Once
	var stopErr error
	r = lifecycle.NewRegistry(lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
		if pi, ok := e.(lifecycle.ProviderInitialized); ok && pi.ID == "a" {
			once.Do(func() { stopErr = r.Stop(context.Background()) })
		}
	})))
	a, b := newFake("a", &journal{}), newFake("b", &journal{})
	mustRegister(t, r, a)
	mustRegister(t, r, b)

	var err error
	within(t, "Start, stopped by its observer", func() { err = r.Start(context.Background()) })
	require.ErrorIs(t, err, lifecycle.ErrStopped)
	require.NoError(t, stopErr)
	assert.EqualValues(t, 1, a.cleanups.Load())
	assert.EqualValues(t, 0, b.inits.Load(), "no Initialize begins once Stop has begun")
	assert.Equal(t, lifecycle.ReasonNotInitialized, r.Report().Providers["b"].Reason)
}

// A Stop called from an observer of a Stop waits for that Stop, that is
// for itself, until its own context ends; the first Stop goes on.
func TestAStopCalledFromAnObserverOfAStopWaitsOnlyForItsContext(t *testing.T) {
	var r *lifecycle.Registry
	var once sync.Once
	var innerErr error
	r = lifecycle.NewRegistry(lifecycle.WithObserver(lifecycle.ObserverFunc(func(e lifecycle.Event) {
		if _, ok := e.(lifecycle.CleanupBegan); ok {
			once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				innerErr = r.Stop(ctx)
			})
		}
	})))
	a := newFake("a", &journal{})
	mustRegister(t, r, a)
	require.NoError(t, r.Start(context.Background()))
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	require.ErrorIs(t, innerErr, context.DeadlineExceeded)
	assert.ErrorContains(t, innerErr, "waiting for the first stop")
	assert.EqualValues(t, 1, a.cleanups.Load())
}

// A provider registered while Start runs can still fail it (an unknown
// dependency); what Start initialized before is then rolled back, as for
// any failed Start.
func TestStartRollsBackWhenAProviderRegisteredDuringItCannotStart(t *testing.T) {
	release, open := gate(t)
	began := make(chan struct{})
	a := newFake("a", &journal{})
	a.initialize = func(context.Context) error { close(began); <-release; return nil }
	r := lifecycle.NewRegistry()
	mustRegister(t, r, a)
	started := testkit.Go(func() error { return r.Start(context.Background()) })
	testkit.Receive(t, began, "a's Initialize")
	mustRegister(t, r, newFake("b", &journal{}), lifecycle.DependsOn("nope"))
	open()

	err := testkit.Receive(t, started, "Start")
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	assert.EqualValues(t, 1, a.cleanups.Load(), "a is rolled back")
	_, release2, err := r.Acquire(context.Background(), "a")
	release2()
	require.ErrorIs(t, err, lifecycle.ErrStopped)
}

// A cleanup another caller owns and that has not ended when a Stop is cut
// short is not in the report with an empty outcome: it shows once it
// ends.
func TestReportShowsAnotherCallersCleanupOnceItEnds(t *testing.T) {
	release, open := gate(t)
	began := make(chan struct{})
	x := newFake("x", &journal{})
	x.cleanup = func(context.Context) error { close(began); <-release; return nil }
	r := started(t, x, lifecycle.Timeout(wait))
	unregistered := testkit.Go(func() error { return r.Unregister(context.Background(), "x") })
	testkit.Receive(t, began, "x's cleanup")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	within(t, "Stop", func() { require.NoError(t, r.Stop(ctx)) })
	assert.NotContains(t, r.Report().Providers, "x", "no outcome yet")
	open()
	require.NoError(t, testkit.Receive(t, unregistered, "Unregister"))
	assert.Equal(t, lifecycle.ResultOK, r.Report().Providers["x"].Result)
}

// A Stop whose context is done already returns the same error on every
// run: each cleanup it begins then is abandoned, even one that returns at
// once, whose real result shows in the report, late.
func TestStopWithADoneContextReturnsTheSameErrorEveryTime(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for round := range 30 {
		obs := &events{}
		r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
		for i := range 10 {
			mustRegister(t, r, newFake(fmt.Sprint("p", i), &journal{}))
		}
		require.NoError(t, r.Start(context.Background()))
		err := r.Stop(done)
		var joined interface{ Unwrap() []error }
		require.ErrorAs(t, err, &joined, "round %d", round)
		require.Len(t, joined.Unwrap(), 10, "round %d: every cleanup is named abandoned", round)
		for _, e := range obs.snapshot() {
			if ended, ok := e.(lifecycle.CleanupEnded); ok {
				require.Equal(t, 10, ended.Failed, "round %d", round)
				for id, o := range ended.Report.Providers {
					require.Equal(t, lifecycle.ResultAbandoned, o.Result, "round %d: %s", round, id)
				}
			}
		}
		eventually(t, "the late results", func() bool { return r.Report().Count(lifecycle.ResultOK) == 10 })
	}
}

// An observer that ends Stop's goroutine with runtime.Goexit (as
// t.FailNow does) does not leave a cleanup undone, nor a second Stop
// told that all went well.
func TestAnObserverThatExitsStopLeavesNoCleanupUndone(t *testing.T) {
	r := lifecycle.NewRegistry(exitingOn(func(e lifecycle.Event) bool {
		c, ok := e.(lifecycle.ProviderCleaned)
		return ok && c.ID == "a"
	}))
	a, b := newFake("a", &journal{}), newFake("b", &journal{})
	mustRegister(t, r, b)
	mustRegister(t, r, a, lifecycle.DependsOn("b"))
	require.NoError(t, r.Start(context.Background()))
	exitedBy(t, "the Stop the observer ended", func() { _ = r.Stop(context.Background()) })

	var err error
	within(t, "a second Stop", func() { err = r.Stop(context.Background()) })
	assert.ErrorContains(t, err, "Goexit")
	eventually(t, "b's cleanup", func() bool { return b.cleanups.Load() == 1 })
	assert.EqualValues(t, 1, a.cleanups.Load())
}

// An observer that ends Start's goroutine with runtime.Goexit leaves no
// Start running for a Stop to wait for.
func TestAnObserverThatExitsStartLeavesItEnded(t *testing.T) {
	r := lifecycle.NewRegistry(exitingOn(func(e lifecycle.Event) bool {
		_, ok := e.(lifecycle.StartBegan)
		return ok
	}))
	mustRegister(t, r, newFake("a", &journal{}))
	exitedBy(t, "the Start the observer ended", func() { _ = r.Start(context.Background()) })
	var err error
	within(t, "a second Start", func() { err = r.Start(context.Background()) })
	assert.ErrorContains(t, err, "Goexit")
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
}

// Of two StartProvider calls for one provider at once, the one that finds
// the other's Initialize running says so; neither says the registry
// stopped.
func TestConcurrentStartProviderCallsNeverSayStopped(t *testing.T) {
	for round := range 300 {
		release, open := gate(t)
		s := newFake("s", &journal{})
		s.initialize = func(context.Context) error { <-release; return nil }
		r := lifecycle.NewRegistry()
		mustRegister(t, r, s, lifecycle.Staged())
		require.NoError(t, r.Start(context.Background()))
		together, go2 := gate(t)
		call := func() error { <-together; return r.StartProvider(context.Background(), "s") }
		first, second := testkit.Go(call), testkit.Go(call)
		go2()
		eventually(t, "an Initialize running", func() bool { return s.inits.Load() == 1 })
		open()
		for _, err := range []error{testkit.Receive(t, first, "StartProvider"), testkit.Receive(t, second, "StartProvider")} {
			require.False(t, errors.Is(err, lifecycle.ErrStopped), "round %d: %v", round, err)
		}
		assert.EqualValues(t, 1, s.inits.Load())
		r.AllowCleanup("s")
		require.NoError(t, r.Stop(context.Background()))
	}
}

// An observer that ends a rollback's goroutine with runtime.Goexit leaves
// no cleanup undone: the rollback's cleanups are begun all the same.
func TestAnObserverThatExitsARollbackLeavesNoCleanupUndone(t *testing.T) {
	r := lifecycle.NewRegistry(exitingOn(func(e lifecycle.Event) bool {
		c, ok := e.(lifecycle.CleanupBegan)
		return ok && c.Trigger == lifecycle.TriggerRollback
	}))
	a, b := newFake("a", &journal{}), newFake("b", &journal{})
	b.initialize = failing(errBoom)
	mustRegister(t, r, a)
	mustRegister(t, r, b)
	exitedBy(t, "the Start the observer ended", func() { _ = r.Start(context.Background()) })
	eventually(t, "a's and b's cleanups", func() bool { return a.cleanups.Load() == 1 && b.cleanups.Load() == 1 })
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
	assert.Equal(t, lifecycle.ResultOK, r.Report().Providers["a"].Result)
}

// The same for an Unregister: its cleanup is begun before the observers
// hear of it.
func TestAnObserverThatExitsAnUnregisterLeavesNoCleanupUndone(t *testing.T) {
	r := lifecycle.NewRegistry(exitingOn(func(e lifecycle.Event) bool {
		c, ok := e.(lifecycle.CleanupBegan)
		return ok && c.Trigger == lifecycle.TriggerUnregister
	}))
	x := newFake("x", &journal{})
	mustRegister(t, r, x)
	require.NoError(t, r.Start(context.Background()))
	exitedBy(t, "the Unregister the observer ended", func() { _ = r.Unregister(context.Background(), "x") })
	eventually(t, "x's cleanup", func() bool { return x.cleanups.Load() == 1 })
	within(t, "Stop", func() { require.NoError(t, r.Stop(context.Background())) })
}

// A Stop whose goroutine an observer ended still leaves its outcomes in
// the report.
func TestAnObserverThatExitsStopLeavesTheReport(t *testing.T) {
	r := lifecycle.NewRegistry(exitingOn(func(e lifecycle.Event) bool {
		_, ok := e.(lifecycle.CleanupBegan)
		return ok
	}))
	a := newFake("a", &journal{})
	mustRegister(t, r, a)
	require.NoError(t, r.Start(context.Background()))
	exitedBy(t, "the Stop the observer ended", func() { _ = r.Stop(context.Background()) })
	eventually(t, "a's outcome in the report", func() bool { return r.Report().Providers["a"].Result == lifecycle.ResultOK })
}

// With its context done before it begins, a Stop begins nothing in order:
// every cleanup is abandoned before it began, and the error reads the same
// on every run, dependencies or not.
func TestStopWithADoneContextReadsTheSameWithDependencies(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	texts := map[string]bool{}
	for range 50 {
		r := lifecycle.NewRegistry()
		mustRegister(t, r, newFake("db", &journal{}))
		mustRegister(t, r, newFake("cache", &journal{}), lifecycle.DependsOn("db"))
		mustRegister(t, r, newFake("api", &journal{}), lifecycle.DependsOn("cache"))
		require.NoError(t, r.Start(context.Background()))
		err := r.Stop(done)
		require.Error(t, err)
		texts[err.Error()] = true
	}
	assert.Len(t, texts, 1, "%v", texts)
	for text := range texts {
		assert.Contains(t, text, "abandoned before it began")
	}
}

// A StartProvider that an Unregister of the same provider beats is told
// so, not that the registry stopped.
func TestStartProviderBeatenByUnregisterDoesNotSayStopped(t *testing.T) {
	for round := range 5000 {
		r := lifecycle.NewRegistry()
		mustRegister(t, r, newFake("s", &journal{}), lifecycle.Staged())
		require.NoError(t, r.Start(context.Background()))
		together, open := gate(t)
		started := testkit.Go(func() error { <-together; return r.StartProvider(context.Background(), "s") })
		unregistered := testkit.Go(func() error { <-together; return r.Unregister(context.Background(), "s") })
		open()
		err := testkit.Receive(t, started, "StartProvider")
		testkit.Receive(t, unregistered, "Unregister")
		require.False(t, errors.Is(err, lifecycle.ErrStopped), "round %d: %v", round, err)
		require.NoError(t, r.Stop(context.Background()))
	}
}

// A rollback's cleanup that fails is named in Start's error, beside the
// Initialize that failed.
func TestStartNamesTheRollbacksFailures(t *testing.T) {
	r := lifecycle.NewRegistry()
	a, b := newFake("a", &journal{}), newFake("b", &journal{})
	a.cleanup = failing(errors.New("close failed"))
	b.initialize = failing(errBoom)
	mustRegister(t, r, a)
	mustRegister(t, r, b)
	err := r.Start(context.Background())
	require.ErrorIs(t, err, errBoom)
	assert.ErrorContains(t, err, `provider "a": cleanup: close failed`)
	var pe *lifecycle.ProviderError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "b", pe.ProviderID, "the Initialize that failed comes first")
}
