package lifecycle

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
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
	// quiet, instead of notify, when no cleanup of the run waits for this
	// one: its end is only counted, and its run is told once all such
	// jobs have ended.
	quiet *quietJobs

	began time.Time   // set before the job is shared with other goroutines
	batch *batch      // the cleanups begun with it; nil when skipped
	task  *task       // its place in the run that claimed it; set before it is shared
	ended atomic.Bool // the outcome has been claimed
	out   Outcome     // written once by whoever ends the job, before it is finished

	// finished is closed once out is written. Most jobs are never waited
	// for this way (their run hears of them through notify), so it is made
	// only when someone asks: see wait.
	finished atomic.Pointer[chan struct{}]
	done     atomic.Bool // out is written
}

// closedChan is what wait returns for a job that has finished.
var closedChan = func() *chan struct{} { c := make(chan struct{}); close(c); return &c }()

// wait returns a channel that is closed once the job's outcome is written.
func (j *job) wait() <-chan struct{} {
	if p := j.finished.Load(); p != nil {
		return *p
	}
	c := make(chan struct{})
	if j.finished.CompareAndSwap(nil, &c) {
		if j.done.Load() && j.finished.CompareAndSwap(&c, closedChan) {
			// finish ran before the channel was in place and did not see it.
			close(c)
		}
		return c
	}
	return *j.finished.Load()
}

// isDone reports whether the job's outcome is written.
func (j *job) isDone() bool { return j.done.Load() }

// finish marks the outcome written and wakes whoever waits.
func (j *job) finish() {
	j.done.Store(true)
	if p := j.finished.Swap(closedChan); p != nil && p != closedChan {
		close(*p)
	}
}

// claim creates n's cleanup job unless one exists. It returns nil when the
// provider's cleanup was claimed already. j, when not nil, is the memory to
// use for the job, so that a run can claim many at the cost of one
// allocation.
func (r *Registry) claim(n *node, trigger Trigger, notify chan<- *job, j *job) *job {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.job != nil {
		return nil
	}
	if j == nil {
		j = new(job)
	}
	j.n, j.trigger, j.notify = n, trigger, notify
	n.job = j
	return j
}

// end records the outcome unless another party has; it reports whether it
// did.
func (j *job) end(o Outcome) bool {
	if !j.ended.CompareAndSwap(false, true) {
		return false
	}
	j.out = o
	j.finish()
	switch {
	case j.quiet != nil:
		j.quiet.r.cleaned(j) // its run will not hear of it: it reports itself
		j.quiet.ended()
	case j.notify != nil:
		j.notify <- j // buffered for every job of the run: never blocks
	}
	if j.batch != nil {
		j.batch.ended()
	}
	return true
}

// batch is the cleanups begun at one moment with one timeout. They share a
// context, whose deadline is the earlier of that timeout and the caller's,
// and one watcher that ends, when it expires, those still running. A
// context and a watcher per cleanup cost more than the cleanup of a
// provider that has little to do; shared, they cost one timer a batch.
type batch struct {
	r       *Registry
	parent  context.Context // the caller's: done means abandoned, not timed out
	ctx     context.Context
	cancel  context.CancelFunc
	watch   func() bool // stops the watcher
	jobs    []*job
	running atomic.Int32 // jobs not yet ended; the last to end releases the timer

	next     atomic.Int64               // the index of the next job no worker has taken
	finished atomic.Int64               // jobs whose method a worker has run to the end
	rescue   atomic.Pointer[time.Timer] // checks that the workers make progress
	seen     int64                      // finished, as the rescue last saw it; only it touches this
	// done is ctx.Done(), fetched once before any worker starts. Workers
	// poll it rather than call ctx.Err(), which takes the shared context's
	// lock: with thousands of cleanups ending at once, that lock was
	// contended. Once made, the channel is read without a lock.
	done <-chan struct{}
}

// expired reports whether the batch's deadline has passed.
func (b *batch) expired() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Workers. A cleanup must run on a goroutine of its own, so that a hung
// one holds up no other; but a goroutine made and destroyed for each
// cleanup of a provider with little to do was the largest part of Stop's
// cost. So a batch starts a few workers, which take its cleanups one after
// another, and a rescue timer watches them: if no cleanup has ended for
// rescueAfter while some wait unstarted, the workers are all busy with
// slow or hung cleanups, and the rescue starts a goroutine for every
// cleanup left. A slow cleanup waits at most about rescueAfter to begin.
var workersPerBatch = 2 * runtime.GOMAXPROCS(0)

const rescueAfter = 100 * time.Microsecond

// begin begins the cleanups of jobs, whose providers share timeout. Each
// waits for its provider's leases to drain, then calls the cleanup method.
// A job ends when its method returns or the batch's deadline passes,
// whichever is first; a method that overruns keeps its goroutine, and its
// late return is reported as a [ProviderReturnedLate] event. A provider
// without a cleanup method and without leases ends at once, as skipped.
func (r *Registry) begin(ctx context.Context, timeout time.Duration, jobs []*job) {
	now := time.Now()
	b := &batch{r: r, parent: ctx, jobs: make([]*job, 0, len(jobs))}
	for _, j := range jobs {
		j.began = now
		if j.n.cleanup == nil && j.n.leaseCount() == 0 {
			j.end(Outcome{Result: ResultSkipped})
			continue
		}
		j.batch = b
		b.jobs = append(b.jobs, j)
	}
	if len(b.jobs) == 0 {
		return
	}
	b.running.Store(int32(len(b.jobs)))
	b.ctx, b.cancel = context.WithDeadline(ctx, now.Add(timeout))
	b.done = b.ctx.Done()
	// The watcher is in place, with every job, before any worker starts,
	// so the last job to end can always stop it.
	b.watch = context.AfterFunc(b.ctx, func() {
		for _, j := range b.jobs {
			if !j.ended.Load() {
				j.end(r.expired(ctx, j))
			}
		}
	})
	workers := min(len(b.jobs), workersPerBatch)
	for range workers {
		go b.work()
	}
	if len(b.jobs) > workers {
		// Stored before it is armed: check may run at once.
		b.rescue.Store(time.AfterFunc(math.MaxInt64, b.check))
		b.rescue.Load().Reset(rescueAfter)
	}
}

// work takes the batch's cleanups one after another until none is left.
func (b *batch) work() {
	for {
		i := int(b.next.Add(1) - 1)
		if i >= len(b.jobs) {
			return
		}
		b.r.clean(b, b.jobs[i])
		b.finished.Add(1)
	}
}

// check runs on the rescue timer: while cleanups wait unstarted, it starts
// a goroutine for each of them if no cleanup has ended since it last
// looked, and looks again later otherwise.
func (b *batch) check() {
	left := len(b.jobs) - int(b.next.Load())
	if left <= 0 {
		return
	}
	finished := b.finished.Load()
	if finished == b.seen {
		for range left {
			go b.work()
		}
		return
	}
	b.seen = finished
	b.rescue.Load().Reset(rescueAfter)
}

// clean runs on a worker: it waits for the leases, calls the cleanup
// method, and ends j if the deadline has not passed.
func (r *Registry) clean(b *batch, j *job) {
	n := j.n
	_ = n.awaitLeases(b.ctx) // a deadline here is the watcher's to report
	var err error
	if n.cleanup != nil {
		err = protect(b.ctx, n.cleanup)
	}
	took := time.Since(j.began)
	if !b.expired() && j.end(r.returned(j, err, took)) {
		return
	}
	if n.cleanup != nil {
		r.emit(ProviderReturnedLate{ID: n.id, Op: "cleanup", Duration: took, Err: lateError(n.id, "cleanup", err)})
	}
}

// ended tells the batch that one of its jobs has ended; the last releases
// the batch's timer.
func (b *batch) ended() {
	if b.running.Add(-1) == 0 {
		b.watch()
		b.cancel()
	}
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
	ended   chan *job // every job of the run that unblocks another, once ended
	quiet   quietJobs // the run's other jobs
}

// quietJobs counts the jobs of a run that no other cleanup of the run
// waits for: the scheduler needs to hear only when the last has ended,
// not of each. For a run of many independent providers that saves a
// channel operation and a wake-up each.
type quietJobs struct {
	r    *Registry
	left atomic.Int64
	done chan struct{} // closed when left reaches zero
}

func (q *quietJobs) ended() {
	if q.left.Add(-1) == 0 {
		close(q.done)
	}
}

// task is a job's place in one run. A job claimed by one run may be waited
// for by another (a Stop waits for an Unregister or a rollback in flight),
// so the scheduling state is the run's, not the job's. Only the goroutine
// that runs the run touches it.
type task struct {
	j        *job
	run      *run
	mine     bool    // claimed by this run; otherwise only waited for
	pending  int     // dependents in this run whose cleanup has not ended
	deps     []*task // dependencies in this run, back edges of a cycle removed
	color    uint8   // for linkTasks's walk
	launched bool
	recorded bool
}

// claimRun claims the cleanup of each node not claimed yet, and takes along,
// to wait for them, the ones whose cleanup another caller has begun and not
// ended. The caller holds r.mu, so that no provider can be registered
// meanwhile that depends on one of them.
func (r *Registry) claimRun(nodes []*node, trigger Trigger) *run {
	ru := &run{trigger: trigger, ended: make(chan *job, len(nodes))}
	tasks := make([]task, 0, len(nodes)) // one allocation each for the run's tasks and jobs
	jobs := make([]job, len(nodes))
	for i, n := range nodes {
		if j := r.claim(n, trigger, ru.ended, &jobs[i]); j != nil {
			ru.mine++
			tasks = append(tasks, task{j: j, run: ru, mine: true})
			continue
		}
		n.mu.Lock()
		j := n.job
		n.mu.Unlock()
		if !j.isDone() { // else cleaned up already
			tasks = append(tasks, task{j: j})
		}
	}
	ru.tasks = make([]*task, len(tasks))
	for i := range tasks {
		ru.tasks[i] = &tasks[i]
		if tasks[i].mine {
			tasks[i].j.task = &tasks[i]
		}
	}
	return ru
}

// cleanup runs ru in dependency order: a provider's cleanup begins as soon
// as the cleanups of all its dependents in the run have ended, so the run
// takes the critical path of the graph, not the sum of its tiers. When it
// returns, every task the run claimed is recorded; the others are their
// claimers' to report.
//
// Once ctx is done, every cleanup not yet begun is begun at once, with the
// done context, so that a close that needs no time still happens; every
// cleanup not yet ended is recorded as abandoned, and cleanup returns
// without waiting further.
func (r *Registry) cleanup(ctx context.Context, ru *run) {
	quit := make(chan struct{})
	defer close(quit)
	// The id index is for dependencies and for other callers' cleanups; a
	// run of independent providers, the common large case, needs none.
	var index map[string]*task
	for _, t := range ru.tasks {
		if len(t.j.n.deps) > 0 || !t.mine {
			index = make(map[string]*task, len(ru.tasks))
			break
		}
	}
	if index != nil {
		for _, t := range ru.tasks {
			index[t.j.n.id] = t
			if !t.mine {
				go func(j *job) { // relay another caller's cleanup to this run
					select {
					case <-j.wait():
						ru.ended <- j
					case <-quit:
					}
				}(t.j)
			}
		}
		linkTasks(ru.tasks, index)
	}

	// A job that unblocks no other needs no word to the scheduler: it is
	// counted, and reports itself when it ends.
	quiet := 0
	ru.quiet.r, ru.quiet.done = r, make(chan struct{})
	for _, t := range ru.tasks {
		if t.mine && len(t.deps) == 0 {
			t.j.notify, t.j.quiet = nil, &ru.quiet
			quiet++
		}
	}
	ru.quiet.left.Store(int64(quiet))
	quietDone := ru.quiet.done
	if quiet == 0 {
		close(quietDone)
	}

	r.emit(CleanupBegan{Trigger: ru.trigger, Providers: ru.mine})
	record := func(t *task) {
		if t.mine && !t.recorded {
			t.recorded = true
			if t.j.quiet == nil {
				r.cleaned(t.j)
			}
		}
	}
	// Cleanups launched in one step begin together, one batch for each
	// timeout among them.
	var queue []*job
	launch := func(t *task) {
		if t.mine && !t.launched {
			t.launched = true
			queue = append(queue, t.j)
		}
	}
	flush := func() {
		for len(queue) > 0 {
			timeout, rest := queue[0].n.timeout, queue[:0]
			same := make([]*job, 0, len(queue))
			for _, j := range queue {
				if j.n.timeout == timeout {
					same = append(same, j)
				} else {
					rest = append(rest, j)
				}
			}
			r.begin(ctx, timeout, same)
			queue = rest
		}
	}
	remaining := len(ru.tasks) - quiet
	handle := func(j *job) {
		remaining--
		t := j.task
		if t == nil || t.run != ru {
			t = index[j.n.id]
		}
		record(t)
		for _, d := range t.deps {
			if d.pending--; d.pending == 0 {
				launch(d)
			}
		}
	}

	for _, t := range ru.tasks {
		if t.pending == 0 {
			launch(t)
		}
	}
	flush()
	for remaining > 0 || quietDone != nil {
		select {
		case <-quietDone:
			quietDone = nil
		case j := <-ru.ended:
			handle(j)
			for drained := false; !drained; { // take what else has ended, to begin what it frees together
				select {
				case j := <-ru.ended:
					handle(j)
				default:
					drained = true
				}
			}
			flush()
		case <-ctx.Done():
			for _, t := range ru.tasks {
				launch(t)
			}
			flush()
			for _, t := range ru.tasks {
				if t.mine && (t.j.ended.Load() || !t.j.end(r.expired(ctx, t.j))) {
					<-t.j.wait() // ended by its own goroutine; the outcome is being set
				}
				record(t)
			}
			<-ru.quiet.done // every quiet job has ended above, and reported itself
			return
		}
	}
	for _, t := range ru.tasks {
		record(t)
	}
}

// cleaned reports one provider's cleanup, unless no one listens for a
// cleanup that went well.
func (r *Registry) cleaned(j *job) {
	if !r.quiet() || j.out.Result != ResultOK {
		r.emit(ProviderCleaned{ID: j.n.id, Trigger: j.trigger, Outcome: j.out})
	}
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

// errorsOf returns the errors of the run's failed cleanups, ordered by
// provider id so that the joined error reads the same on every run.
func (ru *run) errorsOf() []error {
	var failed []*task
	for _, t := range ru.tasks {
		if t.mine && t.j.out.Err != nil {
			failed = append(failed, t)
		}
	}
	slices.SortFunc(failed, func(a, b *task) int { return strings.Compare(a.j.n.id, b.j.n.id) })
	errs := make([]error, len(failed))
	for i, t := range failed {
		errs[i] = t.j.out.Err
	}
	return errs
}
