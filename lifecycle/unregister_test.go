package lifecycle_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Property 9: Unregister cleans up, and refuses while a dependent is
// registered.
func TestUnregisterRefusesWhileDependentsRemain(t *testing.T) {
	jnl := &journal{}
	r := lifecycle.NewRegistry()
	db, api, worker := newFake("db", jnl), newFake("api", jnl), newFake("worker", jnl)
	mustRegister(t, r, db)
	mustRegister(t, r, api, lifecycle.DependsOn("db"))
	mustRegister(t, r, worker, lifecycle.DependsOn("db"))
	require.NoError(t, r.Start(context.Background()))

	err := r.Unregister(context.Background(), "db")
	require.ErrorIs(t, err, lifecycle.ErrHasDependents)
	assert.Contains(t, err.Error(), `"api", "worker"`)
	assert.EqualValues(t, 0, db.cleanups.Load())

	require.NoError(t, r.Unregister(context.Background(), "api"))
	// A new dependent may not appear while its dependency is being removed.
	release, open := gate(t)
	db.cleanup = ignoring(release)
	require.NoError(t, r.Unregister(context.Background(), "worker"))
	removed := testkit.Go(func() error { return r.Unregister(context.Background(), "db") })
	eventually(t, "db's cleanup began", func() bool { return db.cleanups.Load() == 1 })
	require.ErrorIs(t, r.Register(newFake("newcomer", jnl), lifecycle.DependsOn("db")), lifecycle.ErrStopped)
	open()
	require.NoError(t, testkit.Receive(t, removed, "Unregister"))
	for _, f := range []*fake{db, api, worker} {
		assert.EqualValues(t, 1, f.cleanups.Load(), f.id)
	}
	assert.Empty(t, r.IDs())
	require.ErrorIs(t, r.Unregister(context.Background(), "db"), lifecycle.ErrNotFound)

	// The id is free again.
	mustRegister(t, r, newFake("db", jnl))
	require.NoError(t, r.Stop(context.Background()))
	assert.Len(t, r.Report().Providers, 1, "unregistered providers are not in Stop's report")
}

// On synctest's clock the 30ms timeout, which bounds Initialize too,
// passes only while every goroutine waits, however loaded the machine.
func TestUnregisterFollowsStopRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		r := lifecycle.NewRegistry()
		stuck := newFake("stuck", &journal{})
		stuck.cleanup = ignoring(release)
		mustRegister(t, r, stuck, lifecycle.Timeout(30*time.Millisecond))
		bad := newFake("bad", &journal{})
		bad.cleanup = panicking("oops")
		mustRegister(t, r, bad)
		require.NoError(t, r.Start(context.Background()))

		var err error
		within(t, "Unregister", func() { err = r.Unregister(context.Background(), "stuck") })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var pan *lifecycle.PanicError
		require.ErrorAs(t, r.Unregister(context.Background(), "bad"), &pan)
		assert.Equal(t, "oops", pan.Value)
		require.NoError(t, r.Stop(context.Background()))
		assert.EqualValues(t, 1, stuck.cleanups.Load())
		assert.EqualValues(t, 1, bad.cleanups.Load())
	})
}

// On synctest's clock, synctest.Wait returns once every goroutine is
// blocked: a cleanup that did not wait for the lease would have begun by
// then.
func TestUnregisterLeasesDrainFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		db := newFake("db", jnl)
		r := started(t, db, lifecycle.Timeout(wait))
		_, release, err := r.Acquire(context.Background(), "db")
		require.NoError(t, err)

		done := testkit.Go(func() error { return r.Unregister(context.Background(), "db") })
		synctest.Wait()
		_, _, err = r.Acquire(context.Background(), "db")
		require.ErrorIs(t, err, lifecycle.ErrStopped, "db is claimed")
		assert.EqualValues(t, 0, db.cleanups.Load(), "cleanup began while a lease was held")
		jnl.Add("released")
		release()
		require.NoError(t, testkit.Receive(t, done, "Unregister"))
		jnl.Before(t, "released", "begin db")
		require.NoError(t, r.Stop(context.Background()))
	})
}

// Stop waits for an Unregister in flight before cleaning up what the
// unregistered provider depends on. synctest.Wait returns once every
// goroutine is blocked: by then a Stop that did not wait would have begun
// db's cleanup.
func TestStopWaitsForUnregisterInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		db, api := newFake("db", jnl), newFake("api", jnl)
		apiBegan := make(chan struct{})
		finish, open := gate(t)
		api.cleanup = func(context.Context) error {
			close(apiBegan)
			<-finish
			return nil
		}
		mustRegister(t, r, db)
		mustRegister(t, r, api, lifecycle.DependsOn("db"), lifecycle.Timeout(wait))
		require.NoError(t, r.Start(context.Background()))

		unregistered := testkit.Go(func() error { return r.Unregister(context.Background(), "api") })
		testkit.Receive(t, apiBegan, "api's cleanup")
		stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
		synctest.Wait()
		assert.EqualValues(t, 0, db.cleanups.Load(), "db cleaned while api still used it")
		open()
		require.NoError(t, testkit.Receive(t, unregistered, "Unregister"))
		require.NoError(t, testkit.Receive(t, stopped, "Stop"))
		jnl.Before(t, "end api", "begin db")
		assert.EqualValues(t, 1, api.cleanups.Load())
		assert.EqualValues(t, 1, db.cleanups.Load())
	})
}

func TestUnregisterAfterStopFails(t *testing.T) {
	r := lifecycle.NewRegistry()
	mustRegister(t, r, newFake("db", &journal{}))
	require.NoError(t, r.Stop(context.Background()))
	require.ErrorIs(t, r.Unregister(context.Background(), "db"), lifecycle.ErrStopped)
}

// An Unregister whose context ran out abandons the cleanup, which goes on
// within the provider's own timeout. Until it returns the provider stays
// registered: a later Stop does not clean up what it depends on beside it,
// and its id cannot be taken.
//
// synctest.Wait returns once every goroutine is blocked: by then a Stop
// that did not wait for api would have begun db's cleanup.
func TestAbandonedUnregisterStillHoldsBackItsDependencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		db, api := newFake("db", jnl), newFake("api", jnl)
		release, open := gate(t)
		api.cleanup = ignoring(release) // a flush that ignores its context
		mustRegister(t, r, db)
		mustRegister(t, r, api, lifecycle.DependsOn("db"), lifecycle.Timeout(wait))
		require.NoError(t, r.Start(context.Background()))

		done, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, r.Unregister(done, "api"), context.Canceled)
		require.ErrorIs(t, r.Register(newFake("api", jnl)), lifecycle.ErrDuplicateID, "the id is still held")
		require.ErrorIs(t, r.Unregister(context.Background(), "db"), lifecycle.ErrHasDependents)

		stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
		synctest.Wait()
		assert.False(t, jnl.Has("begin db"), "db's cleanup began beside api's")
		open()
		require.NoError(t, testkit.Receive(t, stopped, "Stop"))
		jnl.Before(t, "end api", "begin db")
		assert.Contains(t, r.Report().Providers, "api")
	})
}

// Remove says how each removal's cleanup ended, which Unregister's error
// cannot say for one that went well or was skipped; a call that ran no
// cleanup gets the zero Outcome.
func TestRemoveReturnsTheOutcome(t *testing.T) {
	r := lifecycle.NewRegistry()
	good, bad, never := newFake("good", &journal{}), newFake("bad", &journal{}), newFake("never", &journal{})
	bad.cleanup = failing(assert.AnError)
	for _, f := range []*fake{good, bad} {
		mustRegister(t, r, f)
	}
	require.NoError(t, r.Start(context.Background()))
	mustRegister(t, r, never, lifecycle.Staged()) // registered, never initialized
	dependent := newFake("dependent", &journal{})
	mustRegister(t, r, dependent, lifecycle.Staged(), lifecycle.DependsOn("good"))

	o, err := r.UnregisterOutcome(context.Background(), "good")
	require.ErrorIs(t, err, lifecycle.ErrHasDependents)
	assert.Zero(t, o)

	o, err = r.UnregisterOutcome(context.Background(), "bad")
	require.ErrorIs(t, err, assert.AnError)
	assert.Equal(t, lifecycle.ResultError, o.Result)
	assert.Equal(t, "Cleanup", o.Method)
	assert.Equal(t, o.Err, err)

	o, err = r.UnregisterOutcome(context.Background(), "never")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.ResultSkipped, o.Result)
	assert.Equal(t, lifecycle.ReasonNotInitialized, o.Reason)

	_, err = r.UnregisterOutcome(context.Background(), "dependent")
	require.NoError(t, err)
	o, err = r.UnregisterOutcome(context.Background(), "good")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.ResultOK, o.Result)

	o, err = r.UnregisterOutcome(context.Background(), "good")
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	assert.Zero(t, o)
	require.NoError(t, r.Stop(context.Background()))
	o, err = r.UnregisterOutcome(context.Background(), "good")
	require.ErrorIs(t, err, lifecycle.ErrStopped)
	assert.Zero(t, o)
}
