package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Past the budget, each further failure doubles the wait from max_backoff
// up to the crash loop's ceiling, where it stays.
func TestCrashLoopDelayDoublesUpToTheCeiling(t *testing.T) {
	r := Restart{Backoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second, CrashLoopMaxBackoff: 5 * time.Minute}
	var got []time.Duration
	for k := 1; k <= 7; k++ {
		got = append(got, crashLoopDelay(r, k))
	}
	s := time.Second
	assert.Equal(t, []time.Duration{20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s, 300 * s}, got)
	assert.Equal(t, 5*time.Minute, crashLoopDelay(r, 1000), "no overflow however long the loop")
	r.CrashLoopMaxBackoff = 0
	assert.Equal(t, 10*time.Second, crashLoopDelay(r, 3), "no ceiling set: max_backoff is one")
	for range 20 {
		d := jitter(crashLoopDelay(Restart{MaxBackoff: time.Second, CrashLoopMaxBackoff: time.Minute}, 2))
		assert.GreaterOrEqual(t, d, 2*time.Second)
		assert.LessOrEqual(t, d, 4*time.Second)
	}
}

// While it backs off, the pool shows when the next restart is due, and a
// task is refused at once, naming the backoff, rather than kept waiting
// for minutes.
func TestBackingOffShowsTheNextRestart(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 4),
		Restart: Restart{Policy: Always, Backoff: time.Millisecond, MaxBackoff: 30 * time.Minute, MaxRestarts: 1, Window: time.Minute,
			CrashLoopMaxBackoff: time.Hour}})
	w.start()
	w.child("t-1").kill("exit status 0", false)
	eventually(t, "replaced within the budget", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == 2 })
	before := time.Now()
	w.child("t-1").kill("exit status 0", false)
	eventually(t, "waiting for its restart", func() bool { return w.pool.MemberState("t-1") == "restarting" })
	st := w.pool.Stats()
	assert.Contains(t, st.BackingOff, "more than 1 restarts within 1m0s")
	// The first wait past the budget: max_backoff doubled, less jitter.
	assert.False(t, st.NextRestart.Before(before.Add(30*time.Minute)), "%v", st.NextRestart)
	assert.False(t, st.NextRestart.After(time.Now().Add(time.Hour)), "%v", st.NextRestart)
	assert.Equal(t, 2, st.ConsecutiveFailures)
	assert.Equal(t, 1, st.Size, "the restart due holds its place")

	_, err := w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrNoInstance)
	assert.Contains(t, err.Error(), "t-1 is restarting; backing off its restarts: more than 1 restarts within 1m0s")
	assert.Contains(t, err.Error(), "next restart at ")
}

// The long waits end only once an instance has run for a whole window:
// one that starts and fails at once stays in the crash loop even though it
// started; one that ran a window long is restarted at the quick pace.
func TestTheCrashLoopEndsAfterAStableRun(t *testing.T) {
	for _, stable := range []bool{false, true} {
		name := map[bool]string{false: "not stable yet", true: "stable for the window"}[stable]
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0),
				Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 1, Window: time.Minute,
					CrashLoopMaxBackoff: 4 * time.Millisecond}})
			w.start()
			for gen := 1; gen <= 2; gen++ {
				w.child("t-1").kill("exit status 1", true)
				eventually(t, "replaced", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == gen+1 })
			}
			assert.Empty(t, w.pool.BackingOff(), "cleared: an instance started again")
			assert.Equal(t, 2, w.pool.Stats().ConsecutiveFailures)
			if stable {
				w.advance(time.Minute)
				assert.Zero(t, w.pool.Stats().ConsecutiveFailures, "forgotten after a window's run")
			}
			w.child("t-1").kill("exit status 1", true)
			if stable {
				assert.Empty(t, w.pool.BackingOff(), "a first failure again, within the budget")
				assert.Equal(t, 1, w.pool.Stats().ConsecutiveFailures)
			} else {
				assert.NotEmpty(t, w.pool.BackingOff(), "still in the crash loop")
				assert.Equal(t, 3, w.pool.Stats().ConsecutiveFailures)
			}
			eventually(t, "replaced", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == 4 })
		})
	}
}

// A child that dies while it runs tasks (what a request
// sent killed it) is restarted at the ordinary pace, however often: past
// the budget too, it never backs off into the crash loop. Deaths while
// idle still do, counted on their own.
func TestDeathsWhileServingNeverBackOffIntoTheCrashLoop(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 4),
		Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxRestarts: 1, Window: time.Minute,
			CrashLoopMaxBackoff: time.Hour}})
	w.start()
	for gen := 1; gen <= 5; gen++ {
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err, "death %d", gen)
		w.child("t-1").kill("its output is not JSON-RPC", true)
		assert.Empty(t, w.pool.BackingOff(), "death %d while serving", gen)
		l.Release()
		// In the crash loop, the replacement would be an hour away.
		eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == gen+1 && w.pool.MemberState("t-1") == "ready" })
	}
	st := w.pool.Stats()
	assert.Equal(t, 5, st.Restarts)
	assert.Equal(t, 5, st.ConsecutiveFailures)

	// Idle deaths: the first is within the budget, which the deaths while
	// serving did not use up; the second is past it.
	w.child("t-1").kill("signal: killed", true)
	assert.Empty(t, w.pool.BackingOff())
	eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == 7 && w.pool.MemberState("t-1") == "ready" })
	w.child("t-1").kill("signal: killed", true)
	assert.Contains(t, w.pool.BackingOff(), "more than 1 restarts within 1m0s; the last: t-1 exited (signal: killed)")
}
