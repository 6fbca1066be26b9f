package pool

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestDecide(t *testing.T) {
	s := Sizing{Min: 1, Max: 4, PerInstance: 2, ScaleUpAt: 0.8, ScaleDownAt: 0.2, Cooldown: time.Minute}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		give       load
		wantGrow   int
		wantShrink int
		wantLow    time.Time
	}{
		{name: "below scale_up_at", give: load{ready: 2, inflight: 3, now: now}},
		{name: "at scale_up_at grows by one", give: load{ready: 1, inflight: 2, now: now}, wantGrow: 1},
		{name: "a queue grows by what it needs", give: load{ready: 1, inflight: 2, queued: 4, now: now}, wantGrow: 2},
		{name: "never past max", give: load{ready: 1, inflight: 2, queued: 40, now: now}, wantGrow: 3},
		{name: "starting instances count", give: load{ready: 1, starting: 3, inflight: 2, queued: 40, now: now}},
		{name: "held back after a failed start", give: load{ready: 1, inflight: 2, queued: 4, now: now, held: true}},
		{name: "backing off with a restart due", give: load{ready: 1, inflight: 2, queued: 4, now: now, backingOff: true, pending: true}},
		{name: "a failed start and nothing left, once the wait is over", give: load{now: now, backingOff: true, startFailed: true}, wantGrow: 1},
		{name: "a failed start, waiting still", give: load{now: now, startFailed: true, held: true}, wantLow: now},
		{name: "empty by its own choice", give: load{now: now}, wantLow: now},
		{name: "tasks waiting grow at once, whatever the window says", give: load{ready: 2, inflight: 4, averaged: 0.5, queued: 1, now: now}, wantGrow: 1},
		{name: "the window's average is what utilization is judged by", give: load{ready: 1, inflight: 2, averaged: 0.5, now: now}},
		{name: "no instance and a task", give: load{queued: 1, now: now}, wantGrow: 1},
		{name: "low load starts the cooldown", give: load{ready: 3, now: now}, wantLow: now},
		{name: "within the cooldown", give: load{ready: 3, now: now, lowSince: now.Add(-time.Second)}, wantLow: now.Add(-time.Second)},
		{name: "after the cooldown, down to min", give: load{ready: 3, now: now, lowSince: now.Add(-time.Minute)}, wantShrink: 2, wantLow: now},
		{name: "after the cooldown, down to what runs needs", give: load{ready: 4, inflight: 1, now: now, lowSince: now.Add(-time.Minute)}, wantShrink: 3, wantLow: now},
		{name: "never below min", give: load{ready: 1, now: now, lowSince: now.Add(-time.Hour)}, wantLow: now.Add(-time.Hour)},
		{name: "load between the marks resets the cooldown", give: load{ready: 2, inflight: 2, now: now, lowSince: now.Add(-time.Hour)}},
		{name: "no shrinking while one starts", give: load{ready: 3, starting: 1, now: now, lowSince: now.Add(-time.Hour)}},
	}
	for _, tt := range tests {
		if tt.give.averaged == 0 {
			tt.give.averaged = float64(tt.give.inflight) // no window: the instant's
		}
		t.Run(tt.name, func(t *testing.T) {
			d := decide(s, tt.give)
			assert.Equal(t, tt.wantGrow, d.grow, "grow")
			assert.Equal(t, tt.wantShrink, d.shrink, "shrink")
			assert.Equal(t, tt.wantLow, d.lowSince, "low since")
			if d.grow+d.shrink > 0 {
				assert.NotEmpty(t, d.reason)
			}
		})
	}
}

func TestBackoffDoublesWithJitterUpToTheMaximum(t *testing.T) {
	r := Restart{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for k, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 20 {
			d := jitter(restartDelay(r, k+1))
			assert.GreaterOrEqual(t, d, want/2, "restart %d", k+1)
			assert.LessOrEqual(t, d, want, "restart %d", k+1)
		}
	}
}

func TestQueueIsFIFOAndBounded(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 2)})
	w.start()
	first, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "t-1", first.ID)
	assert.Equal(t, "handler of t-1", first.Handle)

	a := testkit.Go(func() *Lease[string] { l, _ := w.pool.Acquire(context.Background()); return l })
	eventually(t, "a queued", func() bool { return w.pool.Stats().QueueDepth == 1 })
	b := testkit.Go(func() *Lease[string] { l, _ := w.pool.Acquire(context.Background()); return l })
	eventually(t, "b queued", func() bool { return w.pool.Stats().QueueDepth == 2 })
	_, err = w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueFull)

	first.Release()
	first.Release() // a second release gives nothing back twice
	la := testkit.Receive(t, a, "the first waiter")
	require.NotNil(t, la)
	// Release hands the instance over under the pool's lock before it
	// returns: a second handoff would have taken b out of the queue by now.
	st := w.pool.Stats()
	assert.Equal(t, 1, st.QueueDepth, "the second waiter overtook the first, or was served too")
	assert.Equal(t, 1, st.Busy, "the instance was given out twice")
	la.Release()
	lb := testkit.Receive(t, b, "the second waiter")
	require.NotNil(t, lb)
	lb.Release()
	assert.Zero(t, w.pool.Stats().Busy)
}

func TestQueueTimeout(t *testing.T) {
	s := sized(1, 1, 1, 4)
	s.QueueTimeout = 20 * time.Millisecond
	w := newWorld(t, Config{Sizing: s})
	w.start()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	defer l.Release()
	_, err = w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueTimeout)
	assert.Zero(t, w.pool.Stats().QueueDepth)

	ctx, cancel := context.WithCancel(context.Background())
	gone := testkit.Go(func() error { _, err := w.pool.Acquire(ctx); return err })
	cancel()
	require.ErrorIs(t, testkit.Receive(t, gone, "a waiter whose caller went away"), context.Canceled)
}

// A burst on a pool of min 1 max 4 grows it to 4, queues the rest, and
// serves every task; idle for the cooldown, it is back at 1, each removed
// instance cleaned up once and reported.
func TestGrowsForABurstAndShrinksWhenIdle(t *testing.T) {
	s := sized(1, 4, 1, 64)
	s.Cooldown = 50 * time.Millisecond
	w := newWorld(t, Config{Sizing: s})
	w.start()
	leases, errs := w.burst(16)
	eventually(t, "four instances and twelve waiting", func() bool {
		st := w.pool.Stats()
		return st.Size == 4 && st.Starting == 0 && st.Busy == 4 && st.QueueDepth == 12
	})
	assert.Equal(t, "up", w.pool.Stats().LastScale.Direction)
	for range 16 {
		select {
		case l := <-leases:
			l.Release()
		case err := <-errs:
			t.Fatalf("a task failed: %v", err)
		case <-time.After(testkit.Wait):
			t.Fatal("a task was never served")
		}
	}
	eventually(t, "back at one", func() bool { return w.pool.Stats().Size == 1 && len(w.removed()) == 3 })
	st := w.pool.Stats()
	assert.Equal(t, "down", st.LastScale.Direction)
	assert.Equal(t, []string{"t-1"}, w.pool.Members())
	for _, r := range w.removed() {
		assert.Equal(t, "scaled down", r.Reason)
		assert.Equal(t, lifecycle.ResultOK, r.Outcome.Result, r.ID)
		assert.NoError(t, r.Err)
		assert.EqualValues(t, 1, w.child(r.ID).cleanups.Load(), r.ID)
	}
	assert.Equal(t, []string{"t-1"}, w.reg.IDs())
}

// Scaling down takes idle instances only: the one with a task keeps it.
func TestScaleDownNeverTakesABusyInstance(t *testing.T) {
	s := sized(1, 2, 4, 0)
	s.Cooldown = 30 * time.Millisecond
	w := newWorld(t, Config{Sizing: s})
	w.start()
	var held []*Lease[string]
	for range 4 {
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		held = append(held, l)
	}
	eventually(t, "grown to two", func() bool { return w.pool.Stats().Size == 2 && w.pool.MemberState("t-2") == "ready" })
	// Keep one task on t-2, the instance a scale-down would take first.
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	require.Equal(t, "t-2", l.ID)
	for _, h := range held {
		h.Release()
	}
	eventually(t, "one instance removed", func() bool { return len(w.removed()) == 1 })
	assert.Equal(t, "t-1", w.removed()[0].ID, "the idle one goes, not the one running a task")
	assert.Zero(t, w.child("t-2").cleanups.Load())
	l.Release()
}

func TestReplacesAChildThatDies(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 4)})
	w.start()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	w.child("t-1").kill("exit status 1", true)
	assert.Equal(t, "dead", w.pool.MemberState("t-1"))
	l.Release() // the task on it failed; its lease comes back
	eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == 2 && w.pool.MemberState("t-1") == "ready" })

	l, err = w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.Release()
	dead := w.generations("t-1")[0]
	assert.EqualValues(t, 1, dead.cleanups.Load(), "the dead one is cleaned up once")
	require.Len(t, w.removed(), 1)
	assert.Equal(t, "exited: exit status 1", w.removed()[0].Reason)
	assert.Equal(t, lifecycle.ResultOK, w.removed()[0].Outcome.Result)
	assert.Equal(t, 1, w.pool.Stats().Restarts)
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		failed   bool
		replaced bool
	}{
		{"never, after a crash", Never, true, false},
		{"on-failure, after a crash", OnFailure, true, true},
		{"on-failure, after a clean exit", OnFailure, false, false},
		{"always, after a clean exit", Always, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0),
				Restart: Restart{Policy: tt.policy, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Minute}})
			w.start()
			w.child("t-1").kill("exit status 0", tt.failed)
			if tt.replaced {
				eventually(t, "replaced", func() bool { return w.pool.MemberState("t-1") == "ready" })
				assert.Len(t, w.generations("t-1"), 2)
				return
			}
			assert.Equal(t, "dead", w.pool.MemberState("t-1"))
			assert.Equal(t, []string{"t-1"}, w.reg.IDs(), "it stays registered: health reports it, Stop cleans it up")
			_, err := w.pool.Acquire(context.Background())
			require.ErrorIs(t, err, ErrNoInstance)
			assert.Contains(t, err.Error(), "t-1 is dead")
			assert.Len(t, w.generations("t-1"), 1)
		})
	}
}

// Past its restart budget the supervisor backs off and says so: the dead
// instance is replaced all the same, and the state clears once the
// replacement has started.
func TestBacksOffAfterMaxRestartsWithinTheWindow(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 3, 1, 4),
		Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 2, Window: time.Minute,
			CrashLoopMaxBackoff: 4 * time.Millisecond}})
	w.start()
	release := func() {}
	for gen := 1; gen <= 2; gen++ {
		if gen == 2 {
			// The third child's cleanup waits, and with it its
			// replacement, until the test has seen the pool back off.
			release = w.holdCleanups()
			defer release()
		}
		w.child("t-1").kill("signal: killed", true)
		eventually(t, "replaced", func() bool { return len(w.generations("t-1")) == gen+1 && w.pool.MemberState("t-1") == "ready" })
	}
	assert.Empty(t, w.pool.BackingOff(), "within the budget")
	w.child("t-1").kill("signal: killed", true)
	assert.Contains(t, w.pool.BackingOff(), "more than 2 restarts within 1m0s; the last: t-1 exited (signal: killed)")
	st := w.pool.Stats()
	assert.Equal(t, st.BackingOff, w.pool.BackingOff())
	assert.Equal(t, 3, st.ConsecutiveFailures)
	assert.Equal(t, 3, st.Restarts, "the third is on its way")
	_, err := w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrNoInstance, "a pool that backs off does not keep a task waiting, nor grow")
	assert.Contains(t, err.Error(), "backing off its restarts")
	assert.Len(t, w.generations("t-1"), 3, "no growth")

	release()
	eventually(t, "replaced after the backoff", func() bool { return len(w.generations("t-1")) == 4 && w.pool.MemberState("t-1") == "ready" })
	assert.Empty(t, w.pool.BackingOff(), "an instance started again")
	assert.Empty(t, w.pool.Stats().BackingOff)
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.Release()
}

func TestAReplacementThatFailsToStartIsRetried(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0)})
	w.start()
	w.failStarts("t-1", 1)
	w.child("t-1").kill("exit status 2", true)
	eventually(t, "replaced on the second try", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == 3 })
	var reasons []string
	for _, r := range w.removed() {
		reasons = append(reasons, r.Reason)
	}
	assert.Equal(t, []string{"exited: exit status 2", "failed to start"}, reasons)
	assert.ErrorContains(t, w.removed()[1].Err, "handshake refused")
	assert.Equal(t, 2, w.pool.Stats().Restarts)
	for _, c := range w.generations("t-1")[:2] {
		assert.EqualValues(t, 1, c.cleanups.Load())
	}
}

// A replacement that keeps failing to start is retried past the budget,
// backing off, until one starts.
func TestAReplacementThatFailsToStartIsRetriedForEver(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0)})
	w.start()
	w.failStarts("t-1", 6)
	w.child("t-1").kill("exit status 2", true)
	eventually(t, "replaced on the seventh try", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == 8 })
	assert.Empty(t, w.pool.BackingOff())
	st := w.pool.Stats()
	assert.Equal(t, 7, st.Restarts)
	assert.Equal(t, 7, st.ConsecutiveFailures, "no instance has run a whole window since")
	assert.Equal(t, []string{"t-1"}, w.reg.IDs(), "every failed replacement was removed")
}

func TestCloseFailsWaiters(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 4)})
	w.start()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	waiting := testkit.Go(func() error { _, err := w.pool.Acquire(context.Background()); return err })
	eventually(t, "queued", func() bool { return w.pool.Stats().QueueDepth == 1 })
	require.NoError(t, w.pool.Close(context.Background()))
	require.ErrorIs(t, testkit.Receive(t, waiting, "the waiter"), ErrClosed)
	l.Release()
	_, err = w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

// Without pool:, instances are added and removed by hand and take any
// number of tasks; a removal waits for the tasks on the instance.
func TestInstancesByHand(t *testing.T) {
	w := newWorld(t, Config{})
	require.NoError(t, w.pool.Declare("a"))
	require.NoError(t, w.reg.Start(context.Background()))
	w.pool.Run() // does nothing without pool:
	require.NoError(t, w.pool.Add(context.Background(), "b"))
	require.ErrorIs(t, w.pool.Add(context.Background(), "b"), ErrExists)
	var held []*Lease[string]
	for range 6 {
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		held = append(held, l)
	}
	assert.Equal(t, 6, w.pool.Stats().Busy)

	var onA []*Lease[string]
	for _, l := range held {
		if l.ID == "a" {
			onA = append(onA, l)
		} else {
			l.Release()
		}
	}
	require.Len(t, onA, 3, "tasks spread over the least busy")
	removed := testkit.Go(func() error { _, err := w.pool.Remove(context.Background(), "a"); return err })
	eventually(t, "a draining", func() bool { return w.pool.MemberState("a") == "draining" })
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "b", l.ID, "no task reaches a draining instance")
	l.Release()
	for i, l := range onA {
		if i == len(onA)-1 {
			w.journal.Add("the last task on a ended")
		}
		l.Release()
	}
	require.NoError(t, testkit.Receive(t, removed, "Remove"))
	w.journal.Before(t, "the last task on a ended", "cleanup a") // the removal waited for the tasks on the instance
	assert.EqualValues(t, 1, w.child("a").cleanups.Load())
	assert.Equal(t, []string{"b"}, w.pool.Members())
	_, err = w.pool.Remove(context.Background(), "a")
	require.ErrorIs(t, err, ErrUnknown)

	w.child("b").kill("exit status 1", true)
	eventually(t, "b replaced under its own id", func() bool { return w.pool.MemberState("b") == "ready" })
	assert.Len(t, w.generations("b"), 2)
}

// Close does not wait for a removal in progress, nor cut its cleanup
// short: the registry's Stop waits for it, and its outcome is its own.
func TestCloseLeavesRemovalsToTheRegistry(t *testing.T) {
	s := sized(1, 2, 1, 0)
	s.Cooldown = 20 * time.Millisecond
	w := newWorld(t, Config{Sizing: s})
	w.start()
	hold, release := testkit.Gate(t)
	w.mu.Lock()
	w.hold = hold
	w.mu.Unlock()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	eventually(t, "grown to two", func() bool { return w.pool.MemberState("t-2") == "ready" })
	l.Release()
	eventually(t, "t-2's cleanup began", func() bool { return w.pool.MemberState("t-2") == "draining" && w.child("t-2").cleanups.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	require.NoError(t, w.pool.Close(ctx), "Close waited for the removal")
	stopped := testkit.Go(func() error { return w.reg.Stop(context.Background()) })
	release()
	require.NoError(t, testkit.Receive(t, stopped, "Stop"))
	eventually(t, "the removal reported", func() bool { return len(w.removed()) == 1 })
	assert.Equal(t, lifecycle.ResultOK, w.removed()[0].Outcome.Result, "its cleanup ran to its end")
}

// Once the service shuts down, a child that dies is not replaced and the
// pool does not grow: whatever started now would be cleaned up at once.
func TestQuiesceStopsGrowthAndRestarts(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 3, 1, 4)})
	w.start()
	w.pool.Quiesce()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	defer l.Release()
	// The scaler's look at this load (its one instance busy: growth),
	// taken here rather than waited for: scale decides a growth and adds
	// its member before it returns.
	w.pool.scale()
	assert.Equal(t, []string{"t-1"}, w.pool.Members())
	assert.Zero(t, w.pool.Stats().ScaleUps)
	// kill tells the pool at once, which decides then, under its lock,
	// whether to restart: a restart is counted by the time kill returns.
	w.child("t-1").kill("signal: killed", true)
	assert.Zero(t, w.pool.Stats().Restarts)
	assert.Equal(t, "dead", w.pool.MemberState("t-1"))
	assert.Equal(t, []string{"t-1"}, w.pool.Members())
	assert.Len(t, w.generations("t-1"), 1)
}

// An instance that is unhealthy is no capacity: a task waits, the pool
// grows, and one that recovers is handed the waiting task at once.
func TestUnhealthyInstancesAreNoCapacity(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 2, 1, 4)})
	w.start()
	w.setSick("t-1", true)
	got := testkit.Go(func() *Lease[string] { l, _ := w.pool.Acquire(context.Background()); return l })
	l := testkit.Receive(t, got, "a task while t-1 is unhealthy")
	require.NotNil(t, l)
	assert.Equal(t, "t-2", l.ID, "the pool grew past the unhealthy instance")

	// t-1 unhealthy, t-2 busy, the pool at max: the task waits for t-2.
	waiting := testkit.Go(func() *Lease[string] { l, _ := w.pool.Acquire(context.Background()); return l })
	eventually(t, "queued", func() bool { return w.pool.Stats().QueueDepth == 1 })
	w.setSick("t-1", false)
	w.pool.Recheck()
	l2 := testkit.Receive(t, waiting, "the task handed to the recovered instance")
	require.NotNil(t, l2)
	assert.Equal(t, "t-1", l2.ID)
	l.Release()
	l2.Release()
}

// The queue timeout says why no instance could take the task.
func TestQueueTimeoutSaysWhy(t *testing.T) {
	s := sized(1, 1, 1, 4)
	s.QueueTimeout = 20 * time.Millisecond
	w := newWorld(t, Config{Sizing: s})
	w.start()
	w.setSick("t-1", true)
	w.pool.Recheck()
	_, err := w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueTimeout, "an unhealthy instance may come back")
	assert.Contains(t, err.Error(), "t-1 is unhealthy")
}

// An instance whose child exits before Run (while the registry's Start
// initializes it, or after) is not restarted until Run: a start that fails
// is the start's failure, and Run, once the start succeeded, restarts it.
func TestExitBeforeRunIsSettledByRun(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 1, 1, 0)})
	require.NoError(t, w.pool.DeclareMin())
	require.NoError(t, w.reg.Start(context.Background()))
	// The pool decides on a restart while kill tells it, and counts it.
	w.child("t-1").kill("exit status 1", true)
	assert.Zero(t, w.pool.Stats().Restarts, "no restart before Run")
	assert.Equal(t, "dead", w.pool.MemberState("t-1"))
	assert.Len(t, w.generations("t-1"), 1)
	w.pool.Run()
	eventually(t, "restarted by Run", func() bool { return w.pool.MemberState("t-1") == "ready" && len(w.generations("t-1")) == 2 })
}

// A restart waiting out its backoff when the shutdown begins starts
// nothing.
func TestQuiesceDuringABackoff(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 2, 1, 4),
		Restart: Restart{Policy: OnFailure, Backoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxRestarts: 5, Window: time.Minute}})
	w.start()
	w.child("t-1").kill("signal: killed", true)
	eventually(t, "restarting", func() bool { return w.pool.MemberState("t-1") == "restarting" })
	w.pool.Quiesce()
	// At the backoff's end the restart either starts a replacement in its
	// place or, shutting down, gives the place up: wait for the latter.
	eventually(t, "the restart gave its place up", func() bool { return len(w.pool.Members()) == 0 })
	assert.Len(t, w.generations("t-1"), 1)
}

// A task nothing will ever serve is refused at once, not after its queue
// timeout: an empty pool that may not grow (the shutdown began), and a
// queued task whose only instance died and is not restarted.
func TestHopelessTasksAreRefusedAtOnce(t *testing.T) {
	t.Run("empty and quiet", func(t *testing.T) {
		s := sized(0, 2, 1, 4)
		s.QueueTimeout = time.Hour
		w := newWorld(t, Config{Sizing: s})
		w.start()
		w.pool.Quiesce()
		err := testkit.Receive(t, testkit.Go(func() error { _, err := w.pool.Acquire(context.Background()); return err }), "Acquire")
		require.ErrorIs(t, err, ErrNoInstance)
	})
	t.Run("queued, its instance dead for good", func(t *testing.T) {
		s := sized(1, 1, 1, 4)
		s.QueueTimeout = time.Hour
		w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: Never, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 1, Window: time.Minute}})
		w.start()
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		queued := testkit.Go(func() error { _, err := w.pool.Acquire(context.Background()); return err })
		eventually(t, "queued", func() bool { return w.pool.Stats().QueueDepth == 1 })
		w.child("t-1").kill("signal: killed", true)
		l.Release()
		err = testkit.Receive(t, queued, "the queued task")
		require.ErrorIs(t, err, ErrNoInstance)
		assert.Contains(t, err.Error(), "t-1 is dead")
	})
	t.Run("queued, and the shutdown begins", func(t *testing.T) {
		s := sized(1, 2, 1, 4)
		s.QueueTimeout = time.Hour
		w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: OnFailure, Backoff: time.Hour, MaxBackoff: time.Hour, MaxRestarts: 1, Window: 2 * time.Hour}})
		w.start()
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		eventually(t, "grown", func() bool { return w.pool.MemberState("t-2") == "ready" })
		l2, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		queued := testkit.Go(func() error { _, err := w.pool.Acquire(context.Background()); return err })
		eventually(t, "queued", func() bool { return w.pool.Stats().QueueDepth == 1 })
		w.pool.Quiesce()
		w.child("t-1").kill("signal: killed", true)
		w.child("t-2").kill("signal: killed", true)
		l.Release()
		l2.Release()
		require.ErrorIs(t, testkit.Receive(t, queued, "the queued task"), ErrNoInstance)
	})
}

// Chaos: tasks with random deadlines, children killed, health flipping,
// rechecks, then the shutdown's Quiesce; at the end no task is counted
// anywhere. (From the second review.)
func TestChaos(t *testing.T) {
	s := sized(1, 4, 2, 16)
	s.QueueTimeout = 100 * time.Millisecond
	s.Cooldown = 10 * time.Millisecond
	w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: 3 * time.Millisecond, MaxRestarts: 100000, Window: 2 * time.Second}})
	w.start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var leased, refused atomic.Int64
	var mu sync.Mutex
	errs := map[string]int{}
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(150))*time.Millisecond)
				l, err := w.pool.Acquire(ctx)
				cancel()
				if err != nil {
					refused.Add(1)
					k := "other"
					for _, e := range []error{ErrQueueFull, ErrQueueTimeout, ErrNoInstance, ErrClosed, context.DeadlineExceeded} {
						if errors.Is(err, e) {
							k = e.Error()
						}
					}
					mu.Lock()
					errs[k]++
					mu.Unlock()
					continue
				}
				leased.Add(1)
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				l.Release()
				l.Release()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			for _, id := range w.pool.Members() {
				switch rand.IntN(6) {
				case 0:
					w.mu.Lock()
					g := w.children[id]
					w.mu.Unlock()
					if len(g) > 0 {
						g[len(g)-1].kill("signal: killed", true)
					}
				case 1:
					w.setSick(id, rand.IntN(2) == 0)
				case 2:
					w.pool.Recheck()
				}
			}
		}
	}()
	// Each phase lasts until it has done enough, however long that takes
	// on this machine: tasks served and children replaced, then tasks
	// ended against the quiesced pool.
	eventually(t, "the chaos served tasks and replaced children", func() bool {
		return leased.Load() >= 100 && w.pool.Stats().Restarts >= 5
	})
	w.pool.Quiesce()
	ended := leased.Load() + refused.Load()
	eventually(t, "tasks ended against the quiesced pool", func() bool { return leased.Load()+refused.Load() >= ended+50 })
	close(stop)
	testkit.Within(t, "the workers", wg.Wait)
	st := w.pool.Stats()
	t.Logf("leased=%d refused=%d errs=%v stats=%+v", leased.Load(), refused.Load(), errs, st)
	assert.Zero(t, st.Busy)
	assert.Zero(t, st.QueueDepth)
	w.pool.mu.Lock()
	for id, m := range w.pool.members {
		assert.Zero(t, m.inflight, id)
	}
	w.pool.mu.Unlock()
}

// A burst of Max × PerInstance + Queue tasks on a pool of one ready
// instance is never refused while the pool starts the instances that will
// serve it: they count as room for the queue. One task more is.
func TestABurstUpToMaxIsNeverRefusedWhileThePoolGrows(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(1, 4, 1, 8)})
	w.start()
	release := w.holdStarts()
	defer release()
	leases, errs := w.burst(12)
	eventually(t, "one running, eleven waiting, three starting", func() bool {
		st := w.pool.Stats()
		return st.Busy == 1 && st.QueueDepth == 11 && st.Starting == 3
	})
	select {
	case err := <-errs:
		t.Fatalf("a task of the burst was refused: %v", err)
	default:
	}
	_, err := w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueFull, "a thirteenth task has no instance coming for it")

	release()
	for range 12 {
		select {
		case l := <-leases:
			l.Release()
		case err := <-errs:
			t.Fatalf("a task of the burst failed: %v", err)
		case <-time.After(testkit.Wait):
			t.Fatal("a task of the burst was never served")
		}
	}
}

// Utilization is averaged over Sizing.Window. A client that sends tasks
// one at a time, with pauses between, never grows the pool, though each
// task alone fills its instance; one that keeps it full for most of a
// window grows it by one, and the window still full of that load grows it
// no further: the second instance halves the utilization at once.
func TestUtilizationIsMeasuredOverAWindow(t *testing.T) {
	t.Run("one task at a time", func(t *testing.T) {
		s := sized(1, 4, 1, 8)
		s.Window = time.Second
		w := newWorld(t, Config{Sizing: s})
		w.start()
		for range 30 {
			l, err := w.pool.Acquire(context.Background())
			require.NoError(t, err)
			time.Sleep(10 * time.Millisecond)
			l.Release()
			time.Sleep(40 * time.Millisecond)
		}
		st := w.pool.Stats()
		assert.Equal(t, 1, st.Size, "one client, one task at a time, grew the pool: %+v", st.LastScale)
		assert.Zero(t, st.ScaleUps)
	})
	t.Run("a whole window full", func(t *testing.T) {
		s := sized(1, 4, 1, 8)
		s.Window = 200 * time.Millisecond
		s.Cooldown = 50 * time.Millisecond // the scaler looks every 20 ms
		w := newWorld(t, Config{Sizing: s})
		w.start()
		l, err := w.pool.Acquire(context.Background())
		require.NoError(t, err)
		defer l.Release()
		eventually(t, "grown by one", func() bool { st := w.pool.Stats(); return st.Size == 2 && st.Starting == 0 })
		time.Sleep(3 * s.Window)
		st := w.pool.Stats()
		assert.Equal(t, 2, st.Size, "grown again on the load that grew it")
		assert.Equal(t, 1, st.ScaleUps)
	})
}

// Tasks waiting grow the pool at once, whatever the window's average says:
// with min 2 both busy, or one instance of four slots full, the next task
// is served by an instance started for it, not after the window has
// filled with load.
func TestTasksWaitingGrowThePoolAtOnceWhateverTheWindowSays(t *testing.T) {
	for _, tt := range []struct {
		name     string
		min, per int
	}{{"two instances of one slot", 2, 1}, {"one instance of four slots", 1, 4}} {
		t.Run(tt.name, func(t *testing.T) {
			s := sized(tt.min, 4, tt.per, 8)
			s.Window = time.Hour // its average stays near 0
			w := newWorld(t, Config{Sizing: s})
			w.start()
			for range tt.min * tt.per {
				l, err := w.pool.Acquire(context.Background())
				require.NoError(t, err)
				defer l.Release()
			}
			next := testkit.Go(func() error {
				l, err := w.pool.Acquire(context.Background())
				if err == nil {
					l.Release()
				}
				return err
			})
			require.NoError(t, testkit.Receive(t, next, "the task that waited"))
			assert.Equal(t, 1, w.pool.Stats().ScaleUps)
		})
	}
}

// Growth held back after a failed start is no room for the queue: a task
// that only growth could serve is refused at once while the hold outlasts
// its queue timeout, not kept waiting for a start that will not come.
func TestGrowthHeldBackIsNoRoomForTheQueue(t *testing.T) {
	s := sized(1, 4, 1, 0)            // no queue of its own
	s.QueueTimeout = 10 * time.Second // shorter than the hold, and no margin a loaded machine eats
	w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: OnFailure, Backoff: time.Minute, MaxBackoff: time.Minute, MaxRestarts: 3, Window: time.Hour}})
	w.failStarts("t-2", 1)
	w.start()
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	defer l.Release()
	// Full, the pool starts t-2 for the next task, and its start fails:
	// growth is held back for a minute.
	eventually(t, "t-2 failed to start", func() bool { return w.pool.Stats().StartFailed != "" })
	assert.Equal(t, 1, w.pool.Stats().ConsecutiveFailures, "a failed start counts as a failure")
	begun := time.Now()
	_, err = w.pool.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueFull, "admitted to wait for growth that is held back")
	assert.Less(t, time.Since(begun), s.QueueTimeout, "refused at once")
}

// A start that fails once, briefly holding growth back, does not refuse a
// burst the pool serves once the hold is over: the tasks waiting past
// Queue for the start that failed wait on.
func TestAStartThatFailsOnceRefusesNoneOfABurst(t *testing.T) {
	s := sized(1, 4, 1, 0)
	s.QueueTimeout = time.Minute
	w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 3, Window: time.Hour}})
	w.failStarts("t-2", 1)
	w.start()
	leases, errs := w.burst(4)
	var held []*Lease[string]
	for range 4 {
		select {
		case l := <-leases:
			held = append(held, l)
		case err := <-errs:
			t.Fatalf("a task of the burst was refused: %v", err)
		case <-time.After(testkit.Wait):
			t.Fatal("a task of the burst was never served")
		}
	}
	for _, l := range held {
		l.Release()
	}
	assert.Equal(t, 1, w.pool.Stats().ConsecutiveFailures)
}

// A pool of min 0 whose every start fails backs off past its restart
// budget, refuses its tasks at once naming why, and comes back by itself
// once a start succeeds: it tries one after each wait, with no task to
// prompt it.
func TestAPoolThatCannotStartComesBackByItself(t *testing.T) {
	s := sized(0, 2, 1, 4)
	w := newWorld(t, Config{Sizing: s, Restart: Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		MaxRestarts: 2, Window: time.Hour, CrashLoopMaxBackoff: 20 * time.Millisecond}})
	w.failStarts("t-1", 1000)
	w.start()
	// Tasks keep coming, and each start they prompt fails.
	eventually(t, "backing off", func() bool {
		_, err := w.pool.Acquire(context.Background())
		require.ErrorIs(t, err, ErrNoInstance)
		return w.pool.BackingOff() != ""
	})
	_, err := w.pool.TryAcquire(context.Background())
	require.ErrorIs(t, err, ErrNoInstance)
	assert.Contains(t, err.Error(), "backing off its restarts")

	w.failStarts("t-1", 0) // the fault passes
	eventually(t, "back by itself", func() bool {
		st := w.pool.Stats()
		return st.BackingOff == "" && st.Size == 1 && st.Starting == 0
	})
	l, err := w.pool.Acquire(context.Background())
	require.NoError(t, err)
	l.Release()
}
