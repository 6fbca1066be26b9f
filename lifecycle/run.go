package lifecycle

import (
	"context"
	"slices"
	"strings"
	"time"
)

// run is one cleanup of many providers in dependency order: a Stop, or a
// failed Start's rollback. One goroutine, the caller's, executes it: it
// begins a provider's cleanup as soon as the cleanups of all the
// providers in the run that depend on it have finished, so the run takes
// the critical path of the graph, not the sum of its tiers.
//
// The cleanups tell that goroutine when they finish through events, a
// channel with room for every message the run can be sent; everything
// else in a run and its tasks belongs to that goroutine alone, and needs
// no lock, except what claimRun sets under the registry's mu before the
// run begins.
type run struct {
	r       *Registry
	trigger Trigger
	ctx     context.Context // the caller's: once done, what is left is abandoned
	tasks   []*task         // in registration order; fixed by claimRun
	mine    int             // tasks whose cleanup this run claimed
	events  chan event
	left    int // tasks not finished
}

// task is a cleanup's place in one run. A run waits for the cleanups it
// claimed (mine) and for those another caller had begun and that had not
// finished when it claimed the rest (a Stop waits for an Unregister or a
// rollback in flight).
type task struct {
	c    *cleanup
	run  *run
	mine bool
	deps []*task // its dependencies in this run
	// its dependents in this run, whose cleanups it waited for; kept only
	// when the registry traces, for its span's links
	dependents []*task
	left       int // dependents in this run not finished, plus one while held for AllowCleanup
	begun      bool
	over       bool // finished, as far as the run knows
}

// event tells a run that a task's cleanup finished, or, if allowed, that
// AllowCleanup freed it.
type event struct {
	t       *task
	allowed bool
}

// claimRun claims the cleanup of each node not claimed yet, and takes
// along those another caller claimed and that have not finished. A Stop's
// cleanup of a staged provider not yet allowed (see [Staged]) is held
// until [Registry.AllowCleanup]. r.mu is held, so that no provider can be
// registered meanwhile that depends on one of them.
func (r *Registry) claimRun(ctx context.Context, nodes []*node, trigger Trigger) *run {
	ru := &run{r: r, trigger: trigger, ctx: ctx}
	for _, n := range nodes {
		c, mine := r.claim(n, trigger, ctx)
		if !mine && c.finished {
			continue // cleaned up already
		}
		t := &task{c: c, run: ru, mine: mine, over: c.finished}
		if mine {
			ru.mine++
		}
		if !t.over {
			c.waiting = append(c.waiting, t)
		}
		if mine && trigger == TriggerStop && n.staged && !n.allowed && !t.over {
			c.heldBy = t
			t.left++
		}
		ru.tasks = append(ru.tasks, t)
	}
	ru.events = make(chan event, 2*len(ru.tasks)) // each task finishes once and is allowed at most once
	ru.left = len(ru.tasks)
	return ru
}

// execute runs the run on the caller's goroutine until every task has
// finished, or until the run's context is done: then it begins every
// cleanup not yet begun, with the done context, so that a close that needs
// no time still happens; records every one not yet ended abandoned; and
// returns without waiting further for any provider.
func (ru *run) execute() {
	ru.link()
	ru.r.emit(CleanupBegan{Trigger: ru.trigger, Providers: ru.mine})
	for _, t := range ru.tasks {
		if t.over { // skipped when claimed: never initialized
			t.over = false
			ru.finished(t)
		}
	}
	if ru.ctx.Err() != nil { // done already: nothing begins in order
		ru.cutShort()
		return
	}
	for _, t := range ru.tasks {
		ru.beginIfReady(t)
	}
	for ru.left > 0 {
		select {
		case e := <-ru.events:
			if e.allowed {
				e.t.left--
				ru.beginIfReady(e.t)
			} else {
				ru.finished(e.t)
			}
		case <-ru.ctx.Done():
			ru.cutShort()
			return
		}
	}
}

// link gives each task its dependencies in the run, and each task the
// count of its dependents in the run. A run without dependencies, the
// common large case, needs no index.
func (ru *run) link() {
	if !slices.ContainsFunc(ru.tasks, func(t *task) bool { return len(t.c.n.deps) > 0 }) {
		return
	}
	index := make(map[string]*task, len(ru.tasks))
	for _, t := range ru.tasks {
		index[t.c.n.id] = t
	}
	for _, t := range ru.tasks {
		for _, id := range t.c.n.deps {
			if d := index[id]; d != nil {
				t.deps = append(t.deps, d)
				d.left++
				if ru.r.tracer != nil {
					d.dependents = append(d.dependents, t)
				}
			}
		}
	}
}

// finished counts t's cleanup as finished and begins those it unblocks.
func (ru *run) finished(t *task) {
	if t.over {
		return
	}
	t.over = true
	ru.left--
	ru.cleaned(t)
	for _, d := range t.deps {
		d.left--
		ru.beginIfReady(d)
	}
}

// beginIfReady begins t's cleanup if it is the run's to begin and nothing
// holds it back.
func (ru *run) beginIfReady(t *task) {
	if t.mine && !t.begun && !t.over && t.left == 0 {
		t.begun = true
		ru.r.begin(t.c)
	}
}

// cutShort runs once the run's context is done. Every cleanup of the run
// not ended is recorded abandoned; those not begun are begun now; those of
// other callers are no longer waited for.
func (ru *run) cutShort() {
	r := ru.r
	var begin []*task
	r.mu.Lock()
	for _, t := range ru.tasks {
		if !t.mine || t.over {
			continue
		}
		if !t.begun {
			t.begun = true
			if r.skipIdle(t.c) { // nothing to abandon
				r.finish(t.c)
				continue
			}
			begin = append(begin, t)
		}
		r.abandon(t.c)
	}
	r.mu.Unlock()
	for _, t := range begin {
		r.begin(t.c)
	}
	for _, t := range ru.tasks {
		if !t.over {
			t.over = true
			ru.cleaned(t)
		}
	}
}

// cleaned reports the end of one of the run's own cleanups. The run's
// goroutine reports them all, so that every ProviderCleaned comes before
// the run's CleanupEnded.
func (ru *run) cleaned(t *task) {
	if !t.mine {
		return
	}
	o, _ := ru.r.outcome(t.c)
	var waited []*cleanup
	for _, d := range t.dependents {
		waited = append(waited, d.c)
	}
	ru.r.cleaned(t.c, o, waited)
}

// beginRest begins every cleanup of the run not begun yet, regardless of
// order and without telling observers. It is for a run whose goroutine an
// observer ended with runtime.Goexit: the cleanups still run, once, and
// their late returns are still reported.
func (ru *run) beginRest() {
	r := ru.r
	var begin []*task
	var late []ProviderReturnedLate
	r.mu.Lock()
	for _, t := range ru.tasks {
		if !t.mine {
			continue
		}
		if !t.begun && !t.c.done {
			t.begun = true
			begin = append(begin, t)
		}
		t.c.reported = true // no outcome will be reported now
		if t.c.lateReturn != nil {
			late = append(late, *t.c.lateReturn)
		}
	}
	r.mu.Unlock()
	for _, t := range begin {
		r.begin(t.c)
	}
	for _, e := range late {
		r.emit(e)
	}
}

// cleanupRun executes ru, a Stop or a rollback, keeps it for the report,
// and returns the errors of the cleanups it claimed that failed, ordered
// by provider id so that the joined error reads the same on every run.
func (r *Registry) cleanupRun(ru *run) []error {
	began := time.Now()
	executed := false
	defer func() {
		if !executed { // an observer ended this goroutine with runtime.Goexit
			ru.beginRest()
			r.mu.Lock()
			r.reported = append(r.reported, ru)
			r.mu.Unlock()
		}
	}()
	ru.execute()
	executed = true
	took := time.Since(began)

	ended := CleanupEnded{Trigger: ru.trigger, Duration: took, Report: StopReport{Duration: took}}
	if r.watched { // the zap observer needs only the counts
		ended.Report.Providers = make(map[string]Outcome, ru.mine)
	}
	var errs []error
	r.mu.Lock()
	for _, t := range ru.tasks {
		if !t.mine {
			continue
		}
		o := t.c.out
		if ended.Report.Providers != nil {
			ended.Report.Providers[t.c.n.id] = o
		}
		ended.count(o.Result)
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	r.reported = append(r.reported, ru)
	if ru.trigger == TriggerRollback { // Stop adds its whole duration itself
		r.reportDuration += took
	}
	r.mu.Unlock()
	slices.SortFunc(errs, func(a, b error) int {
		return strings.Compare(a.(*ProviderError).ProviderID, b.(*ProviderError).ProviderID)
	})
	r.emit(ended)
	return errs
}
