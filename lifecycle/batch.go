package lifecycle

import (
	"context"
	"sync"
	"time"
)

// batch is the cleanups begun at one moment with one timeout. They share a
// context, whose deadline is the earlier of that timeout and the caller's,
// and one callback that ends, when that deadline passes, those still
// running. A context and a callback per cleanup cost more than the cleanup
// of a provider that has little to do; shared, they cost one timer a
// batch.
//
// The callback may run the moment it is registered (the caller's context
// may be done already), and a Stop may end a job of the batch from another
// goroutine as soon as the job is running. So everything either of them
// reads is set before it can start: jobs, caller, ctx and done before the
// callback is registered, and stopExpiry under mu, which begin holds until
// it is set.
type batch struct {
	r      *Registry
	caller context.Context // the caller's: done means abandoned, not timed out
	began  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	// done is ctx.Done(), fetched once before any cleanup runs: thousands
	// of cleanups asking the shared context for it at once contended on
	// its lock.
	done <-chan struct{}
	jobs []*job // the jobs that began in this batch

	mu         sync.Mutex  // guards stopExpiry
	stopExpiry func() bool // unregisters the callback
}

// begin begins the cleanups of jobs, whose providers share timeout, bounded
// by caller too. Each waits for its provider's Initialize to return and its
// leases to drain, then calls the cleanup method, on a pool of goroutines.
// A job ends when its method returns or its deadline passes, whichever is
// first; a method that overruns keeps its goroutine, and its late return is
// reported as a [ProviderReturnedLate] event.
//
// A provider without a cleanup method, leases or an Initialize still
// running has nothing to wait for: its job ends at once, skipped, without
// telling its run, and is returned so that the caller counts it. A job that has ended meanwhile (a
// Stop whose context is done ended it) does not begin.
func (r *Registry) begin(caller context.Context, timeout time.Duration, jobs []*job, via *worker) (endedNow []*job) {
	b := &batch{r: r, caller: caller, began: time.Now(), jobs: make([]*job, 0, len(jobs))}
	b.mu.Lock()
	for _, j := range jobs {
		if j.n.cleanup == nil && !j.n.holdsOn() {
			skipped := Outcome{Result: ResultSkipped, Reason: ReasonNoMethod}
			if runs, _ := j.start(b.began); runs {
				// A Stop cut short may end the job between start and record:
				// then it has told the run, and skipped replaces abandoned.
				if j.record(skipped) {
					endedNow = append(endedNow, j)
				} else {
					j.returnedLate(skipped)
				}
				j.markReturned()
			}
			continue
		}
		if runs, _ := j.start(b.began); runs {
			b.jobs = append(b.jobs, j)
		}
	}
	if len(b.jobs) == 0 {
		b.mu.Unlock()
		return endedNow
	}
	b.ctx, b.cancel = context.WithDeadline(caller, b.began.Add(timeout))
	b.done = b.ctx.Done()
	b.stopExpiry = context.AfterFunc(b.ctx, b.expire)
	b.mu.Unlock()

	runPool(b.jobs, poolSize(len(b.jobs)), stallAfter, func(w *worker, j *job) { r.execute(b, j, w) }, b.release, via)
	return endedNow
}

// expire runs once the batch's deadline has passed: it ends every job still
// running, as timed out or abandoned.
func (b *batch) expire() {
	for _, j := range b.jobs {
		if _, ended := j.outcome(); !ended {
			j.end(b.r.overdue(b.caller, j), nil)
		}
	}
}

// passed reports whether the batch's deadline has passed.
func (b *batch) passed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// release frees the batch's timer and callback once every cleanup of the
// batch has returned, and so ended: its pool calls it. A batch with a
// cleanup that never returns keeps them until the deadline, which ends
// that cleanup.
func (b *batch) release() {
	b.mu.Lock()
	stop := b.stopExpiry
	b.mu.Unlock()
	stop()
	b.cancel()
}
