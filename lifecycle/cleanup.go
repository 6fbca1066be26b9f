package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// job is one provider's cleanup. It is created once per provider, when
// Stop, Unregister or a rollback claims the provider, and never replaced:
// that is what makes cleanup run exactly once.
type job struct {
	n       *node
	trigger Trigger
	notify  chan<- *job // receives the job when it ends; nil for a lone cleanup

	began time.Time
	ended atomic.Bool // the outcome has been claimed
	done  chan struct{}
	out   Outcome // written once by whoever ends the job, before done closes

	// Scheduler state, touched only by the goroutine that runs the run.
	pending  int    // dependents in this run whose cleanup has not ended
	deps     []*job // dependencies in this run, back edges of a cycle removed
	launched bool
	mine     bool // claimed by this run; otherwise another caller's cleanup it waits for
	recorded bool
}

// claim creates n's cleanup job unless one exists. It returns nil when the
// provider's cleanup was claimed already.
func (r *Registry) claim(n *node, trigger Trigger, notify chan<- *job) *job {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.job != nil {
		return nil
	}
	n.job = &job{n: n, trigger: trigger, notify: notify, done: make(chan struct{})}
	return n.job
}

// end records the outcome unless another party has; it reports whether it
// did.
func (j *job) end(o Outcome) bool {
	if !j.ended.CompareAndSwap(false, true) {
		return false
	}
	j.out = o
	close(j.done)
	if j.notify != nil {
		j.notify <- j // buffered for every job of the run: never blocks
	}
	return true
}

// runCleanup begins j: it waits for the provider's leases to drain, then
// calls its cleanup method, on a goroutine of its own, under a context whose
// deadline is the earlier of the provider's timeout and ctx's. The job ends
// when the method returns or the deadline passes, whichever is first; a
// method that overruns keeps its goroutine, and its late return is reported
// as a [ProviderReturnedLate] event.
//
// A provider without a cleanup method and without leases ends at once, as
// skipped, with no goroutine.
func (r *Registry) runCleanup(ctx context.Context, j *job) {
	n := j.n
	j.began = time.Now()
	if n.cleanup == nil && n.leaseCount() == 0 {
		j.end(Outcome{Result: ResultSkipped})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, n.timeout)
	// One goroutine per cleanup, not two: the deadline is watched by
	// AfterFunc, which costs a goroutine only if the deadline passes.
	stopWatch := context.AfterFunc(cctx, func() { j.end(r.expired(ctx, j)) })
	go func() {
		defer cancel()
		_ = n.awaitLeases(cctx) // a deadline here is the watcher's to report
		var err error
		if n.cleanup != nil {
			err = protect(cctx, n.cleanup)
		}
		took := time.Since(j.began)
		if cctx.Err() == nil && stopWatch() {
			j.end(r.returned(j, err, took))
			return
		}
		if n.cleanup != nil {
			r.emit(ProviderReturnedLate{ID: n.id, Op: "cleanup", Duration: took, Err: lateError(n.id, "cleanup", err)})
		}
	}()
}

// returned is the outcome of a cleanup method that returned in time.
func (r *Registry) returned(j *job, err error, took time.Duration) Outcome {
	o := Outcome{Method: j.n.method, Duration: took, Result: ResultOK}
	if j.n.cleanup == nil {
		o.Result = ResultSkipped
		return o
	}
	if err != nil {
		o.Result = ResultError
		if _, ok := err.(*PanicError); ok {
			o.Result = ResultPanic
		}
		o.Err = providerError(j.n.id, "cleanup", err)
	}
	return o
}

// expired is the outcome of a cleanup whose deadline passed first: abandoned
// if the caller's context (Stop's, Unregister's) is done, timed out if only
// the provider's own timeout ran out.
func (r *Registry) expired(ctx context.Context, j *job) Outcome {
	n := j.n
	took := time.Since(j.began)
	what := n.method
	if what == "" {
		what = "cleanup"
	}
	if held := n.leaseCount(); held > 0 {
		what = fmt.Sprintf("%s, waiting for %d lease(s) to be released,", what, held)
	}
	o := Outcome{Method: n.method, Duration: took}
	if cause := ctx.Err(); cause != nil {
		o.Result = ResultAbandoned
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s abandoned after %v: context done: %w", what, took.Round(time.Microsecond), cause))
	} else {
		o.Result = ResultTimeout
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s did not end within its %v timeout: %w", what, n.timeout, context.DeadlineExceeded))
	}
	return o
}

func lateError(id, op string, err error) error {
	if err == nil {
		return nil
	}
	return providerError(id, op, err)
}

// run is one cleanup of many providers: a Stop, or a failed Start's
// rollback.
type run struct {
	trigger Trigger
	tasks   []*task   // in registration order
	mine    int       // tasks whose job this run claimed
	ended   chan *job // every job of the run, once ended
}

// task is a job's place in one run. A job claimed by one run may be waited
// for by another (a Stop waits for an Unregister or a rollback in flight),
// so the scheduling state is the run's, not the job's. Only the goroutine
// that runs the run touches it.
type task struct {
	j        *job
	mine     bool    // claimed by this run; otherwise only waited for
	pending  int     // dependents in this run whose cleanup has not ended
	deps     []*task // dependencies in this run, back edges of a cycle removed
	launched bool
	recorded bool
}

// claimRun claims the cleanup of each node not claimed yet, and takes along,
// to wait for them, the ones whose cleanup another caller has begun and not
// ended. The caller holds r.mu, so that no provider can be registered
// meanwhile that depends on one of them.
func (r *Registry) claimRun(nodes []*node, trigger Trigger) *run {
	ru := &run{trigger: trigger, ended: make(chan *job, len(nodes))}
	for _, n := range nodes {
		if j := r.claim(n, trigger, ru.ended); j != nil {
			ru.mine++
			ru.tasks = append(ru.tasks, &task{j: j, mine: true})
			continue
		}
		n.mu.Lock()
		j := n.job
		n.mu.Unlock()
		select {
		case <-j.done: // cleaned up already
		default:
			ru.tasks = append(ru.tasks, &task{j: j})
		}
	}
	return ru
}

// cleanup runs ru in dependency order: a provider's cleanup begins as soon
// as the cleanups of all its dependents in the run have ended, so the run
// takes the critical path of the graph, not the sum of its tiers. The
// outcomes of the jobs it claimed are returned; the others are their
// claimers' to report.
//
// Once ctx is done, every cleanup not yet begun is begun at once, with the
// done context, so that a close that needs no time still happens; every
// cleanup not yet ended is recorded as abandoned, and cleanup returns
// without waiting further.
func (r *Registry) cleanup(ctx context.Context, ru *run) map[string]Outcome {
	quit := make(chan struct{})
	defer close(quit)
	index := make(map[string]*task, len(ru.tasks))
	for _, t := range ru.tasks {
		index[t.j.n.id] = t
		if !t.mine {
			go func(j *job) { // relay another caller's cleanup to this run
				select {
				case <-j.done:
					ru.ended <- j
				case <-quit:
				}
			}(t.j)
		}
	}
	linkTasks(ru.tasks, index)

	r.emit(CleanupBegan{Trigger: ru.trigger, Providers: ru.mine})
	out := make(map[string]Outcome, ru.mine)
	record := func(t *task) {
		if t.mine && !t.recorded {
			t.recorded = true
			out[t.j.n.id] = t.j.out
			r.emit(ProviderCleaned{ID: t.j.n.id, Trigger: ru.trigger, Outcome: t.j.out})
		}
	}
	launch := func(t *task) {
		if t.mine && !t.launched {
			t.launched = true
			r.runCleanup(ctx, t.j)
		}
	}

	for _, t := range ru.tasks {
		if t.pending == 0 {
			launch(t)
		}
	}
	for remaining := len(ru.tasks); remaining > 0; {
		select {
		case j := <-ru.ended:
			remaining--
			t := index[j.n.id]
			record(t)
			for _, d := range t.deps {
				if d.pending--; d.pending == 0 {
					launch(d)
				}
			}
		case <-ctx.Done():
			for _, t := range ru.tasks {
				launch(t)
			}
			for _, t := range ru.tasks {
				if t.mine && (t.j.ended.Load() || !t.j.end(r.expired(ctx, t.j))) {
					<-t.j.done // ended by its own goroutine; the outcome is set
				}
				record(t)
			}
			return out
		}
	}
	return out
}

// linkTasks gives each task its dependencies in the run and counts, for
// each, the dependents it must wait for. Dependencies outside the run are
// ignored: they are gone or were never registered. A cycle (possible only
// in a registry that never started, since Start refuses one) is broken at
// its back edge, so that the run still ends.
func linkTasks(tasks []*task, index map[string]*task) {
	const (
		white = iota
		grey
		black
	)
	color := make(map[*task]uint8, len(tasks))
	var visit func(t *task)
	visit = func(t *task) {
		color[t] = grey
		for _, id := range t.j.n.deps {
			d := index[id]
			if d == nil || color[d] == grey {
				continue
			}
			t.deps = append(t.deps, d)
			d.pending++
			if color[d] == white {
				visit(d)
			}
		}
		color[t] = black
	}
	for _, t := range tasks {
		if color[t] == white {
			visit(t)
		}
	}
}

// sortedErrors returns the errors of the failed outcomes, ordered by
// provider id so that the joined error reads the same on every run.
func sortedErrors(outcomes map[string]Outcome) []error {
	ids := make([]string, 0, len(outcomes))
	for id, o := range outcomes {
		if o.Err != nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = outcomes[id].Err
	}
	return errs
}
