package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sickWith answers Checked as a health check that found every instance
// unhealthy for why.
func sickWith(why string) func(string) (Health, string) {
	return func(string) (Health, string) { return Unhealthy, why }
}

func well(string) (Health, string) { return Healthy, "" }

// busy answers Checked as a health check whose call ran out of time while
// calls were in flight.
func busy(string) (Health, string) { return Degraded, "call \"ping\": context deadline exceeded" }

// An instance every health check has found unhealthy for
// UnhealthyAfter (a child that hangs but stays alive) is cut off as dead,
// with a reason that says so, and replaced as one whose child exited is.
// A check that finds it otherwise (a busy child is degraded) begins the
// count anew.
func TestAnInstanceUnhealthyForTooLongIsCutOffAndReplaced(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 4),
		Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Minute,
			UnhealthyAfter: time.Minute}})
	w.start()
	w.setSick("t-1", true)
	at := time.Now().Add(time.Second) // after it became ready
	hung := sickWith("process \"t-1\": call \"ping\": context deadline exceeded")
	w.pool.Checked(at, hung)
	w.pool.Checked(at.Add(59*time.Second), hung)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"), "not yet a minute")
	w.pool.Checked(at.Add(60*time.Second), busy) // degraded: busy, not hung
	w.pool.Checked(at.Add(61*time.Second), hung)
	w.pool.Checked(at.Add(120*time.Second), hung)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"), "the count began anew at 61s")
	assert.Len(t, w.generations("t-1"), 1)

	w.pool.Checked(at.Add(121*time.Second), hung)
	w.setSick("t-1", false)
	eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == 2 && w.pool.MemberState("t-1") == "ready" })
	assert.EqualValues(t, 1, w.generations("t-1")[0].cleanups.Load(), "its removal ended the hung child")
	require.Len(t, w.removed(), 1)
	assert.Equal(t, `exited: unhealthy at every health check for 1m0s (at least 1m0s): process "t-1": call "ping": context deadline exceeded`,
		w.removed()[0].Reason)
	assert.Equal(t, 1, w.pool.Stats().Restarts)
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.Release()

	// Checks begun before the replacement became ready do not count
	// against it.
	w.pool.Checked(at.Add(125*time.Second), hung)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"))
}

// Under the policy never a hung instance is cut off, and its tasks fail,
// but it is not replaced, as a child that exits is not; with no bound
// (a template without a child) it is never cut off.
func TestAnUnhealthyInstanceUnderPolicyNeverOrWithoutABound(t *testing.T) {
	for _, tt := range []struct {
		name  string
		r     Restart
		state string
	}{
		{"policy never", Restart{Policy: Never, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Minute,
			UnhealthyAfter: time.Second}, "dead"},
		{"no bound", Restart{Policy: Always, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Minute}, "ready"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0), Restart: tt.r})
			w.start()
			at := time.Now().Add(time.Second)
			w.pool.Checked(at, sickWith("hung"))
			w.pool.Checked(at.Add(time.Hour), sickWith("hung"))
			assert.Equal(t, tt.state, w.pool.MemberState("t-1"))
			assert.Len(t, w.generations("t-1"), 1)
			assert.Empty(t, w.removed())
		})
	}
}

// A hung child that tasks keep busy is
// found degraded (its health call runs out of time with calls in flight),
// not unhealthy. Busy is not broken, until a task runs out of time on it:
// from then on, until a check finds it healthy, degraded counts as
// unhealthy, and it is cut off after UnhealthyAfter.
func TestABusyInstanceWhoseTaskTimedOutIsCutOff(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 2, 4),
		Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Minute,
			UnhealthyAfter: time.Minute}})
	w.start()
	at := time.Now().Add(time.Second)
	w.pool.Checked(at, busy)
	w.pool.Checked(at.Add(2*time.Minute), busy)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"), "busy with long calls, none of which ran out of time: not hung")

	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.TimedOut()
	l.Release()
	w.pool.Checked(at.Add(3*time.Minute), well) // answered again: the time-out is forgotten
	w.pool.Checked(at.Add(4*time.Minute), busy)
	w.pool.Checked(at.Add(6*time.Minute), busy)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"), "healthy since its task ran out of time")
	assert.Len(t, w.generations("t-1"), 1)

	l, err = w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.TimedOut()
	w.pool.Checked(at.Add(7*time.Minute), busy)
	w.pool.Checked(at.Add(7*time.Minute+59*time.Second), busy)
	assert.Equal(t, "ready", w.pool.MemberState("t-1"), "not yet a minute")
	w.pool.Checked(at.Add(8*time.Minute), busy)
	l.Release()
	eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == 2 && w.pool.MemberState("t-1") == "ready" })
	require.Len(t, w.removed(), 1)
	assert.Contains(t, w.removed()[0].Reason, "unhealthy at every health check for 1m0s")
}
