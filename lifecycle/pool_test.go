package lifecycle

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pool's tests are internal: it is not part of the package's door.

// waitFor waits, within a bound, for wg.
func waitFor(t *testing.T, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen within 10s", what)
	}
}

// Every item is run exactly once, on no more goroutines than asked while
// nothing stalls.
func TestPoolRunsEveryItemOnce(t *testing.T) {
	for _, n := range []int{1, 2, 7, 1000} {
		counts := make([]atomic.Int32, n)
		items := make([]int, n)
		for i := range items {
			items[i] = i
		}
		var wg sync.WaitGroup
		wg.Add(n)
		var running, most atomic.Int32
		runPool(items, 3, time.Hour, func(_ *worker, i int) {
			defer wg.Done()
			now := running.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			counts[i].Add(1)
			running.Add(-1)
		}, nil, nil)
		waitFor(t, "every item", &wg)
		for i := range counts {
			require.EqualValues(t, 1, counts[i].Load(), "item %d of %d", i, n)
		}
		assert.LessOrEqual(t, most.Load(), int32(3), "at most the workers asked for, while nothing stalls")
	}
}

// When every worker is stuck in an item that never returns, the pool
// starts a goroutine for each item left: no item waits for a hung one.
func TestPoolRescuesItemsBehindHungOnes(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	const hung, quick = 2, 50
	items := make([]int, hung+quick)
	for i := range items {
		items[i] = i
	}
	var wg sync.WaitGroup
	wg.Add(quick)
	runPool(items, hung, time.Millisecond, func(_ *worker, i int) {
		if i < hung {
			<-release // the first items hang, holding every worker
			return
		}
		wg.Done()
	}, nil, nil)
	waitFor(t, "the items behind the hung ones", &wg)
}

// A pool whose items are slow but progressing is not rescued: goroutines
// are added only when nothing finishes. On synctest's clock each item
// takes exactly a millisecond, so the whole pool outlasts the stall time
// several times over while some item finishes in every stall time.
func TestPoolDoesNotRescueWhileItProgresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, item, stall = 40, time.Millisecond, 5 * time.Millisecond
		items := make([]int, n)
		var wg sync.WaitGroup
		wg.Add(n)
		var running, most atomic.Int32
		began := time.Now()
		runPool(items, 2, stall, func(*worker, int) {
			defer wg.Done()
			now := running.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			time.Sleep(item)
			running.Add(-1)
		}, nil, nil)
		waitFor(t, "every item", &wg)
		assert.Equal(t, n/2*item, time.Since(began), "two goroutines, one item after another")
		assert.LessOrEqual(t, most.Load(), int32(2))
	})
}

// drained is called once, after every item has returned, and not before.
// Once it has been called, synctest.Wait returns when the pool's
// goroutines have ended: a second call would have come by then.
func TestPoolTellsWhenDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 3, 500} {
			var returned, calls atomic.Int32
			var wg sync.WaitGroup
			wg.Add(1)
			runPool(make([]int, n), 2, time.Millisecond, func(*worker, int) {
				time.Sleep(time.Duration(n%3) * time.Microsecond)
				returned.Add(1)
			}, func() {
				assert.EqualValues(t, n, returned.Load(), "drained before every item returned")
				calls.Add(1)
				wg.Done()
			}, nil)
			waitFor(t, "drained", &wg)
			synctest.Wait()
			assert.EqualValues(t, 1, calls.Load(), "drained called once for %d items", n)
		}
	})
}

// An item that begins a pool through its worker runs that pool's item on
// its own goroutine once it returns, as fx runs the next hook: a chain of
// any length runs on one goroutine, one link after the other.
func TestPoolHandsAChainToTheWorkerThatEndsEachLink(t *testing.T) {
	const links = 1000
	var wg sync.WaitGroup
	wg.Add(1)
	var first *worker
	var running atomic.Int32
	var link func(w *worker, i int)
	link = func(w *worker, i int) {
		if running.Add(1) != 1 {
			t.Errorf("link %d began while another ran", i)
		}
		defer running.Add(-1)
		switch {
		case i == 0:
			first = w
		case w != first:
			t.Errorf("link %d ran on another worker", i)
		}
		if i == links-1 {
			wg.Done()
			return
		}
		runPool([]int{i + 1}, 4, time.Hour, link, nil, w)
	}
	runPool([]int{0}, 4, time.Hour, link, nil, nil)
	waitFor(t, "the chain", &wg)
}

// A pool handed to a worker whose own pool still has items waiting gets a
// goroutine of its own: it never waits behind them.
func TestPoolHandedOverDoesNotWaitForTheWorkersItems(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var wg sync.WaitGroup
	wg.Add(1)
	// One worker, two items: the first hands over a pool, the second hangs.
	// The handed pool must run while the second item hangs.
	runPool([]int{0, 1, 2}, 1, time.Hour, func(w *worker, i int) {
		switch i {
		case 0:
			runPool([]int{0}, 1, time.Hour, func(*worker, int) { wg.Done() }, nil, w)
		case 1:
			<-release
		}
	}, nil, nil)
	waitFor(t, "the pool handed over", &wg)
}

// A small batch gets a goroutine for each item at once, a large one the
// pool's few: slow cleanups of a small batch never wait for the rescue.
func TestPoolSize(t *testing.T) {
	assert.Equal(t, 1, poolSize(1))
	assert.Equal(t, 100, poolSize(100))
	assert.Equal(t, poolAtOnce, poolSize(poolAtOnce))
	assert.Equal(t, poolWorkers, poolSize(poolAtOnce+1))
	assert.Equal(t, poolWorkers, poolSize(100000))
}
