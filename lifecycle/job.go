package lifecycle

import (
	"sync"
	"time"
)

// jobState is where one provider's cleanup is. It only moves forward.
type jobState uint8

const (
	jobClaimed  jobState = iota // claimed: it will run, or be skipped, exactly once
	jobRunning                  // begun: waiting for Initialize, for leases, or in its method
	jobCutShort                 // ended, abandoned, before it began: it still begins, once
	jobEnded                    // its outcome is recorded, and it has begun or never will
)

var jobStateNames = [...]string{"claimed", "running", "cut short", "ended"}

// over reports whether the job's outcome is recorded.
func (s jobState) over() bool { return s == jobCutShort || s == jobEnded }

func (s jobState) String() string { return jobStateNames[s] }

// job is one provider's cleanup. It is created once per provider, when Stop,
// Unregister or a rollback claims the provider, and never replaced: that is
// what makes cleanup run exactly once.
//
// Three parties may end a job: the goroutine that runs its method, when the
// method returns in time; its batch's deadline; and a Stop whose context is
// done. Each ends it through end, under mu, and only the first one counts.
// Everything another goroutine reads is either set before the job is shared
// (n, trigger, task) or guarded by mu.
type job struct {
	n       *node
	trigger Trigger
	task    *task // its place in the run that claimed it; nil for a lone cleanup

	mu      sync.Mutex // guards the fields below
	state   jobState
	began   time.Time     // when it began running
	out     Outcome       // once ended
	endedCh chan struct{} // closed when ended; made by the first waiter
	// returned: the goroutine that runs the cleanup is through (its method
	// returned, or it had none to call), or none will run. A job can end
	// long before that, when its caller stops waiting.
	returned   bool
	returnedCh chan struct{} // closed when returned is set; made by the first waiter
}

// closed is what wait returns for a job that has ended.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// claim creates n's cleanup job unless one exists, and returns nil if one
// does. A provider whose Initialize never began holds nothing, so its job
// ends at once, skipped, the way fx runs no OnStop for a hook whose OnStart
// never ran. j, when not nil, is the memory to use, so that a run can claim
// many providers with one allocation.
func claim(n *node, trigger Trigger, t *task, j *job) *job {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.job != nil {
		return nil
	}
	if j == nil {
		j = new(job)
	}
	j.n, j.trigger, j.task = n, trigger, t
	if n.state == initPending {
		j.state, j.returned = jobEnded, true
		j.out = Outcome{Result: ResultSkipped, Reason: ReasonNotInitialized}
	}
	// A Stop's cleanup of a staged provider waits for its Release. Decided
	// here, under n.mu, with n.job: a Release either comes before and is
	// seen, or comes after and finds the task to free.
	if t != nil && trigger == TriggerStop && n.staged && !n.released && j.state != jobEnded {
		t.held = true
	}
	n.job = j
	return j
}

// start begins the job. It reports whether the job is to run,
// and whether it has ended already: a Stop whose context is done may end a
// job, abandoned, between the moment its run launched it and the moment it
// begins. It still runs then, so that a close that needs no time still
// happens, and its result replaces abandoned, as late.
func (j *job) start(now time.Time) (runs, ended bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch j.state {
	case jobClaimed:
		j.state, j.began = jobRunning, now
		return true, false
	case jobCutShort:
		j.state, j.began = jobEnded, now
		return true, true
	}
	return false, false
}

// record ends the job with outcome o unless it has ended already, and
// reports whether it did. It does not tell anyone: see end.
func (j *job) record(o Outcome) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch j.state {
	case jobClaimed:
		j.state = jobCutShort
	case jobRunning:
		j.state = jobEnded
	default:
		return false
	}
	j.out = o
	if j.endedCh != nil {
		close(j.endedCh)
	}
	return true
}

// end ends the job with outcome o unless it has ended already, then tells
// its run. It reports whether it ended the job.
func (j *job) end(o Outcome, via *worker) bool {
	if !j.record(o) {
		return false
	}
	if j.task != nil {
		j.task.run.ended(j.task, via)
	}
	return true
}

// returnedLate records the result of a method that returned after the job
// had ended by its deadline. An abandoned cleanup's real result replaces
// its outcome, marked late: a Stop whose context was done still got the
// close it began. A timed-out one keeps its outcome, since the provider
// broke its own timeout.
func (j *job) returnedLate(o Outcome) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state.over() && j.out.Result == ResultAbandoned {
		o.Late = true
		j.out = o
	}
}

// markReturned records that the cleanup's goroutine is through.
func (j *job) markReturned() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.returned = true
	if j.returnedCh != nil {
		close(j.returnedCh)
	}
}

// holding reports whether the job still holds back the cleanups of the
// providers its provider depends on, although it has ended: it was
// abandoned (its caller, an Unregister or a Stop, stopped waiting), and its
// method still runs within the provider's own timeout. A Stop with time
// left then waits for it, on returned or until deadline, as it would have
// waited had it begun the cleanup itself.
func (j *job) holding() (returned <-chan struct{}, deadline time.Time, holds bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.state.over() || j.out.Result != ResultAbandoned || j.returned || j.began.IsZero() {
		return nil, time.Time{}, false
	}
	deadline = j.began.Add(j.n.timeout)
	if !time.Now().Before(deadline) {
		return nil, time.Time{}, false
	}
	if j.returnedCh == nil {
		j.returnedCh = make(chan struct{})
	}
	return j.returnedCh, deadline, true
}

// awaitHolding waits while the job holds back its dependencies (see
// holding), or until stop is closed. It reports whether it waited to the
// end rather than being stopped.
func (j *job) awaitHolding(stop <-chan struct{}) bool {
	returned, deadline, holds := j.holding()
	if !holds {
		return true
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-returned:
	case <-timer.C:
	case <-stop:
		return false
	}
	return true
}

// wait returns a channel that is closed once the job has ended.
func (j *job) wait() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state.over() {
		return closed
	}
	if j.endedCh == nil {
		j.endedCh = make(chan struct{})
	}
	return j.endedCh
}

// outcome returns the job's outcome and whether it has ended.
func (j *job) outcome() (Outcome, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.out, j.state.over()
}

// startedAt returns when the job began running; the zero time if it has
// not.
func (j *job) startedAt() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.began
}
