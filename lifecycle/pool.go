package lifecycle

import (
	"runtime"
	"sync"
	"time"
)

// A cleanup must run on a goroutine of its own, so that a hung one holds
// up no other; but a goroutine made and destroyed for each cleanup of a
// provider with little to do was the largest part of Stop's cost (2.7 µs a
// provider, against 0.4 µs with a pool). So the cleanups begun together run
// on a pool: poolWorkers goroutines take them one after another, and a
// timer watches them. If none of them has finished an item for stallAfter
// while items wait, they are all busy with slow or hung cleanups, and the
// pool starts a goroutine for every item left.
//
// The timer cannot be the common path for slow cleanups: while every
// goroutine of a process sleeps, Go's runtime waits in the Linux netpoller
// with a timeout in whole milliseconds, so a 100 µs timer fires about a
// millisecond late. A batch of up to poolAtOnce cleanups (100 services
// stopping at once, a fan of 100) therefore gets a goroutine for each at
// once, which costs at most about 100 µs however little they do; only a
// larger batch starts with poolWorkers and relies on the timer.
//
// (Growing a pool while every goroutine was busy was tried too. It
// measured no better on these rows, and this rule is simpler to prove.)
var poolWorkers = 2 * runtime.GOMAXPROCS(0)

const poolAtOnce = 128

// poolSize is how many goroutines a pool of n items starts with.
func poolSize(n int) int {
	if n <= poolAtOnce {
		return n
	}
	return poolWorkers
}

const stallAfter = 100 * time.Microsecond

// pool runs do on each of a fixed list of items, on goroutines of its own.
// It owns those goroutines: each ends when no item is left to take, unless
// it was handed another pool's work meanwhile (see worker). An item whose
// do never returns keeps its goroutine, and nothing else.
type pool[T any] struct {
	items []T // fixed before any goroutine starts
	do    func(*worker, T)
	stall time.Duration
	// drained, if not nil, is called once, by the goroutine that finished
	// the last item, when do has returned for every item.
	drained func()

	mu       sync.Mutex  // guards the fields below
	workers  int         // goroutines started or handed the work; none ends while items wait
	next     int         // the index of the first item no goroutine has taken
	finished int         // items whose do has returned
	seen     int         // finished, as the rescue last saw it
	rescue   *time.Timer // set before it can fire: it is made under mu
}

// worker is one goroutine running pools' items. Only that goroutine reads
// or writes it, so it needs no lock.
//
// An item's do may begin the cleanups that its own end unblocks, on a new
// pool: on a chain, each link's cleanup begins the next. The goroutine
// about to finish that item is then the one to run the new pool, rather
// than a goroutine made for it, the way fx runs the next hook on the same
// goroutine: do hands the pool to its worker, which runs it as soon as do
// returns, if its own pool has no item left to take (otherwise the handed
// pool gets a goroutine of its own, so that it waits for nothing).
type worker struct {
	next func(*worker) // a pool's work, handed over while an item ran
}

// runPool starts running do on every item, on at most workers goroutines
// until the pool stalls for stall, and returns at once. drained, if not
// nil, is called once do has returned for every item.
//
// via, if not nil, is the worker of the caller's goroutine, which is inside
// an item's do and returns from it without waiting for anything: it takes
// one of the workers' places, unless it holds another pool's work already.
func runPool[T any](items []T, workers int, stall time.Duration, do func(*worker, T), drained func(), via *worker) {
	if len(items) == 0 {
		if drained != nil {
			drained()
		}
		return
	}
	p := &pool[T]{items: items, do: do, stall: stall, drained: drained}
	workers = max(1, min(workers, len(items)))
	p.mu.Lock()
	p.workers = workers
	if len(items) > workers {
		p.rescue = time.AfterFunc(stall, p.check)
	}
	p.mu.Unlock()
	if via != nil && via.next == nil {
		via.next = p.work
		workers--
	}
	for range workers {
		go runWorker(p.work)
	}
}

// runWorker runs work on a goroutine of its own, then whatever pool's work
// it was handed meanwhile, one after another: a loop, so that a chain of
// any length adds nothing to the stack.
func runWorker(work func(*worker)) {
	w := new(worker)
	for work != nil {
		work(w)
		work, w.next = w.next, nil
	}
}

// work takes items one after another until none is left.
func (p *pool[T]) work(w *worker) {
	p.mu.Lock()
	for p.next < len(p.items) {
		item := p.items[p.next]
		p.next++
		p.mu.Unlock()
		p.do(w, item)
		p.mu.Lock()
		p.finished++
		if p.finished == len(p.items) && p.drained != nil {
			p.mu.Unlock()
			p.drained()
			return
		}
		if w.next != nil && p.next < len(p.items) {
			// Items of this pool wait for this goroutine: the pool handed
			// over must not wait for them.
			go runWorker(w.next)
			w.next = nil
		}
	}
	p.mu.Unlock()
}

// check runs on the rescue timer. While items wait, it starts a goroutine
// for each of them if every goroutine is inside an item and none has
// finished one since it last looked; otherwise it looks again later. A
// goroutine that has not taken an item yet is not stuck, only not yet
// scheduled: on a loaded machine that can take longer than stall.
func (p *pool[T]) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	left := len(p.items) - p.next
	if left == 0 {
		return
	}
	if busy := p.next - p.finished; busy >= p.workers && p.finished == p.seen {
		p.workers += left
		for range left {
			go runWorker(p.work)
		}
		return
	}
	p.seen = p.finished
	p.rescue.Reset(p.stall)
}
