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

// Property 8: a provider's cleanup waits for its leases; once stopping has
// begun, Acquire fails.
//
// On synctest's clock, synctest.Wait returns once every goroutine is
// blocked: a cleanup that did not wait for the lease would have begun by
// then.
func TestLeasesDelayCleanupAndAcquireFailsOnceStopping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		db := newFake("db", jnl)
		r := started(t, db, lifecycle.Timeout(wait))

		p, release, err := r.Acquire(context.Background(), "db")
		require.NoError(t, err)
		assert.Same(t, db, p)

		stopped := testkit.Go(func() error { return r.Stop(context.Background()) })
		synctest.Wait()
		_, _, err = r.Acquire(context.Background(), "db")
		require.ErrorIs(t, err, lifecycle.ErrStopped)

		// The work in flight goes on using db; its cleanup has not begun.
		assert.EqualValues(t, 0, db.cleanups.Load(), "cleanup began while a lease was held")
		jnl.Add("released")
		release()
		release() // a second release does nothing

		require.NoError(t, testkit.Receive(t, stopped, "Stop"))
		jnl.Before(t, "released", "begin db")
		assert.EqualValues(t, 1, db.cleanups.Load())
	})
}

// A lease held past the provider's timeout: the cleanup is recorded as timed
// out, its message says leases were held, and the close still happens
// (with the done context) so the resource is not leaked. On synctest's
// clock the 30ms timeout, which bounds Initialize too, passes only while
// every goroutine waits, however loaded the machine.
func TestLeaseHeldPastTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		r := lifecycle.NewRegistry()
		db := newFake("db", jnl)
		mustRegister(t, r, db, lifecycle.Timeout(30*time.Millisecond))
		require.NoError(t, r.Start(context.Background()))
		_, release, err := r.Acquire(context.Background(), "db")
		require.NoError(t, err)
		defer release()

		err = r.Stop(context.Background())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "waiting for 1 lease(s)")
		assert.Equal(t, lifecycle.ResultTimeout, r.Report().Providers["db"].Result)
		synctest.Wait()
		assert.True(t, jnl.Has("end db"), "the close still happens")
		assert.EqualValues(t, 1, db.cleanups.Load())
	})
}

func TestAcquireErrors(t *testing.T) {
	r := lifecycle.NewRegistry()
	mustRegister(t, r, newFake("db", &journal{}))

	_, release, err := r.Acquire(context.Background(), "db")
	require.ErrorIs(t, err, lifecycle.ErrNotReady, "not initialized before Start")
	require.NotNil(t, release, "release is never nil")
	release()

	_, _, err = r.Acquire(context.Background(), "nope")
	require.ErrorIs(t, err, lifecycle.ErrNotFound)

	require.NoError(t, r.Start(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = r.Acquire(ctx, "db")
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, r.Stop(context.Background()))
	_, _, err = r.Acquire(context.Background(), "db")
	require.ErrorIs(t, err, lifecycle.ErrStopped)
}
