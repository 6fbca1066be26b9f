package lifecycle

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// run is one cleanup of many providers in dependency order: a Stop, or a
// failed Start's rollback. A provider's cleanup begins as soon as the
// cleanups of all its dependents in the run have ended, so the run takes
// the critical path of the graph, not the sum of its tiers.
//
// No goroutine of its own schedules it: the goroutine that ends a cleanup
// (a pool worker, a batch's deadline, a Stop whose context is done) counts
// it under mu and begins the cleanups it unblocked. On a chain, the worker
// that ends one link begins the next.
type run struct {
	r       *Registry
	trigger Trigger
	ctx     context.Context // the caller's: once done, what is left is abandoned
	tasks   []*task         // in registration order; fixed once claimed
	mine    int             // tasks whose job this run claimed

	mu      sync.Mutex    // guards the fields below and each task's pending, launched and counted
	left    int           // tasks not yet counted as ended
	settled chan struct{} // closed when left reaches zero
}

// task is a job's place in one run. A job claimed by one run may be waited
// for by another (a Stop waits for an Unregister or a rollback in flight),
// so scheduling state is the run's, not the job's.
type task struct {
	j     *job
	run   *run
	mine  bool    // claimed by this run; otherwise another caller's, only waited for
	skip  bool    // claimed ended: its Initialize never began, so there is nothing to run
	deps  []*task // its dependencies in this run, back edges of a cycle removed; fixed once linked
	color uint8   // for link's walk, before the run begins

	pending  int  // dependents in this run whose cleanup has not ended, and its hold; guarded by run.mu
	held     bool // a staged provider's cleanup not yet released (see Staged); set by claim, then guarded by run.mu
	holding  bool // its hold is counted in pending; guarded by run.mu
	launched bool // begun, or another caller's to begin; guarded by run.mu
	counted  bool // its end is counted; guarded by run.mu
}

// claimRun claims the cleanup of each node not claimed yet, and takes
// along, to wait for them, the ones whose cleanup another caller has begun
// and not ended. The caller holds r.mu, so that no provider can be
// registered meanwhile that depends on one of them.
func (r *Registry) claimRun(ctx context.Context, nodes []*node, trigger Trigger) *run {
	ru := &run{r: r, trigger: trigger, ctx: ctx, settled: make(chan struct{})}
	tasks := make([]task, len(nodes)) // one allocation each for the run's tasks and jobs
	jobs := make([]job, len(nodes))
	ru.tasks = make([]*task, 0, len(nodes))
	for i, n := range nodes {
		t := &tasks[i]
		t.run = ru
		if j := claim(n, trigger, t, &jobs[i]); j != nil {
			// The job is not shared yet: its state is read without its lock.
			t.j, t.mine, t.skip = j, true, j.state == jobEnded
			ru.mine++
		} else {
			n.mu.Lock()
			j := n.job
			n.mu.Unlock()
			if _, ended := j.outcome(); ended {
				if _, _, holds := j.holding(); !holds {
					continue // cleaned up already
				}
			}
			t.j = j
		}
		ru.tasks = append(ru.tasks, t)
	}
	ru.left = len(ru.tasks)
	return ru
}

// execute runs the run on the caller's goroutine and returns once every
// task has ended. Once ctx is done, every cleanup not yet begun is begun at
// once, with the done context, so that a close that needs no time still
// happens; every cleanup not yet ended is recorded as abandoned, and
// execute returns without waiting further for any provider.
func (ru *run) execute() {
	// The id index is for dependencies and for other callers' cleanups; a
	// run of independent providers, the common large case, needs none.
	if slices.ContainsFunc(ru.tasks, func(t *task) bool { return len(t.j.n.deps) > 0 || !t.mine }) {
		index := make(map[string]*task, len(ru.tasks))
		for _, t := range ru.tasks {
			index[t.j.n.id] = t
		}
		link(ru.tasks, index)
	}
	ru.r.emit(CleanupBegan{Trigger: ru.trigger, Providers: ru.mine})

	// Nothing else touches the run before the first cleanup begins, but
	// the relays below may count a task as soon as they start.
	var ended []*task
	ready := make([]*task, 0, len(ru.tasks)) // sized once: most of a large run is often ready at once
	ru.mu.Lock()
	for _, t := range ru.tasks {
		if t.held { // counted as one more dependent, until Release
			t.pending++
			t.holding = true
		}
		switch {
		case !t.mine:
			t.launched = true // another caller's to begin
		case t.skip:
			t.launched = true
			ended = append(ended, t)
		case t.pending == 0:
			t.launched = true
			ready = append(ready, t)
		}
	}
	if ru.left == 0 {
		close(ru.settled)
	}
	ru.mu.Unlock()
	for _, t := range ru.tasks {
		if !t.mine {
			go ru.relay(t)
		}
	}
	ru.advance(ended, ready, nil)

	select {
	case <-ru.settled:
	case <-ru.ctx.Done():
		ru.cutShort()
	}
}

// relay tells the run when another caller's cleanup, which the run waits
// for, ends, and, if that caller abandoned it, when its method returns or
// its provider's own timeout passes; or gives up once the run has settled
// without it.
func (ru *run) relay(t *task) {
	select {
	case <-t.j.wait():
	case <-ru.settled:
		return
	}
	if t.j.awaitHolding(ru.settled) {
		ru.ended(t, nil)
	}
}

// cutShort runs once the run's context is done: it begins every cleanup
// not yet begun, ends every one still running as abandoned, stops waiting
// for other callers' cleanups, and waits for the run to settle, which needs
// nothing from any provider now.
func (ru *run) cutShort() {
	var ready []*task
	ru.mu.Lock()
	for _, t := range ru.tasks {
		if !t.mine { // another caller's: no longer waited for
			ready = ru.count(t, ready)
		}
	}
	for _, t := range ru.tasks {
		if !t.launched {
			t.launched = true
			ready = append(ready, t)
		}
	}
	ru.mu.Unlock()
	ru.advance(nil, ready, nil)
	for _, t := range ru.tasks {
		if t.mine {
			if _, ended := t.j.outcome(); !ended {
				t.j.end(ru.r.overdue(ru.ctx, t.j), nil)
			}
		}
	}
	// Every task has ended; the goroutines that ended the last few may
	// still be counting them.
	<-ru.settled
}

// ended counts a task that has ended and begins the cleanups it unblocks.
// via, if not nil, is the worker of the cleanup that ended, which may run
// them (see worker).
func (ru *run) ended(t *task, via *worker) {
	if t.mine {
		ru.r.cleaned(t.j)
	}
	ru.mu.Lock()
	ready := ru.count(t, nil)
	ru.mu.Unlock()
	if len(ready) > 0 {
		ru.advance(nil, ready, via)
	}
}

// advance counts the tasks that have ended and begins those that are
// ready, until neither is left: beginning a cleanup may end it at once (a
// provider without a cleanup method), and counting an end may make others
// ready. via is as for ended.
func (ru *run) advance(ended, ready []*task, via *worker) {
	for len(ended) > 0 || len(ready) > 0 {
		if len(ready) > 0 {
			ended = append(ended, ru.begin(ready, via)...)
			ready = nil
		}
		for _, t := range ended {
			if t.mine {
				ru.r.cleaned(t.j) // before it is counted: CleanupEnded follows every ProviderCleaned
			}
		}
		ru.mu.Lock()
		for _, t := range ended {
			ready = ru.count(t, ready)
		}
		ru.mu.Unlock()
		ended = nil
	}
}

// count counts t as ended, unless it is already, and appends to ready the
// tasks of this run that no longer wait for any dependent. ru.mu is held.
func (ru *run) count(t *task, ready []*task) []*task {
	if t.counted {
		return ready
	}
	t.counted = true
	for _, d := range t.deps {
		if d.pending--; d.pending == 0 && !d.launched {
			d.launched = true
			ready = append(ready, d)
		}
	}
	if ru.left--; ru.left == 0 {
		close(ru.settled)
	}
	return ready
}

// begin begins the cleanups of ready tasks together, one batch for each
// timeout among them, and returns the tasks whose jobs ended at once.
func (ru *run) begin(ready []*task, via *worker) (ended []*task) {
	jobs := make([]*job, 0, len(ready))
	for len(ready) > 0 {
		timeout, rest := ready[0].j.n.timeout, ready[:0]
		jobs = jobs[:0]
		for _, t := range ready {
			if t.j.n.timeout == timeout {
				jobs = append(jobs, t.j)
			} else {
				rest = append(rest, t)
			}
		}
		for _, j := range ru.r.begin(ru.ctx, timeout, jobs, via) { // begin keeps none of jobs
			ended = append(ended, j.task)
		}
		ready = rest
	}
	return ended
}

// link gives each task its dependencies in the run and counts, for each,
// the dependents it must wait for. Dependencies outside the run are
// ignored: they are gone or were never registered. A cycle (possible only
// in a registry that never started, since Start refuses one) is broken at
// its back edge, so that the run still ends.
func link(tasks []*task, index map[string]*task) {
	const (
		white = iota
		grey
		black
	)
	var visit func(t *task)
	visit = func(t *task) {
		t.color = grey
		for _, id := range t.j.n.deps {
			d := index[id]
			if d == nil || d.color == grey {
				continue
			}
			t.deps = append(t.deps, d)
			d.pending++
			if d.color == white {
				visit(d)
			}
		}
		t.color = black
	}
	for _, t := range tasks {
		if t.color == white {
			visit(t)
		}
	}
}

// summarize counts the outcomes of the tasks the run claimed into e, adds
// them to e's report if it has a map, and returns the errors of those that
// failed, ordered by provider id so that the joined error reads the same
// on every run.
func (ru *run) summarize(e *CleanupEnded) []error {
	var failed []*task
	for _, t := range ru.tasks {
		if !t.mine {
			continue
		}
		o, _ := t.j.outcome()
		e.count(o.Result)
		if e.Report.Providers != nil {
			e.Report.Providers[t.j.n.id] = o
		}
		if o.Err != nil {
			failed = append(failed, t)
		}
	}
	slices.SortFunc(failed, func(a, b *task) int { return strings.Compare(a.j.n.id, b.j.n.id) })
	errs := make([]error, len(failed))
	for i, t := range failed {
		o, _ := t.j.outcome()
		errs[i] = o.Err
	}
	return errs
}

// cleaned reports one provider's cleanup, unless no one listens for a
// cleanup that went well.
func (r *Registry) cleaned(j *job) {
	o, _ := j.outcome()
	if !r.quiet() || o.Result != ResultOK {
		r.emit(ProviderCleaned{ID: j.n.id, Trigger: j.trigger, Outcome: o})
	}
}
