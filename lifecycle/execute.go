package lifecycle

import (
	"context"
	"fmt"
	"time"
)

// execute runs one cleanup on a goroutine of b's pool: it waits for the
// provider's Initialize to return (cleanup follows Initialize: calling
// Cleanup while Initialize still runs would let the provider reopen what it
// closed), then for its leases, then calls the cleanup method, and ends the
// job if the deadline has not passed.
//
// The wait for Initialize has no bound of its own: a job still waiting when
// its deadline passes is ended by it, and the goroutine goes on waiting, so
// that the provider is closed, late, once its Initialize returns.
func (r *Registry) execute(b *batch, j *job, w *worker) {
	defer j.markReturned()
	n := j.n
	n.awaitInitAndLeases(b.ctx) // a deadline here is the batch's to report
	var err error
	if n.cleanup != nil {
		err = protect(b.ctx, n.cleanup)
	}
	o := r.returned(j, err, time.Since(b.began))
	if !b.passed() && j.end(o, w) { // w returns at once: it may run what this end unblocks
		return
	}
	// The deadline passed first, or a Stop whose context is done ended the
	// job. If the batch's callback has not ended it yet, it is about to:
	// end it here, so that the late result below has an outcome to replace.
	if _, ended := j.outcome(); !ended {
		j.end(r.overdue(b.caller, j), nil)
	}
	j.returnedLate(o)
	if n.cleanup != nil {
		r.emit(ProviderReturnedLate{ID: n.id, Op: "cleanup", Duration: o.Duration, Err: o.Err})
	}
}

// returned is the outcome of a cleanup method that returned.
func (r *Registry) returned(j *job, err error, took time.Duration) Outcome {
	o := Outcome{Method: j.n.method, Duration: took, Result: ResultOK}
	if j.n.cleanup == nil {
		o.Result, o.Reason = ResultSkipped, ReasonNoMethod
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

// overdue is the outcome of a cleanup whose deadline passed before it
// ended: abandoned if the caller's context (Stop's, Unregister's) is done,
// timed out if only the provider's own timeout ran out.
func (r *Registry) overdue(caller context.Context, j *job) Outcome {
	n := j.n
	var took time.Duration
	began := j.startedAt()
	if !began.IsZero() {
		took = time.Since(began)
	}
	what := n.method
	if what == "" {
		what = "cleanup"
	}
	if n.initializing() {
		what += ", waiting for its Initialize to return,"
	} else if held := n.leaseCount(); held > 0 {
		what = fmt.Sprintf("%s, waiting for %d lease(s) to be released,", what, held)
	}
	o := Outcome{Method: n.method, Duration: took}
	if cause := caller.Err(); cause != nil {
		when := "after " + took.Round(time.Microsecond).String()
		if began.IsZero() {
			when = "before it began"
		}
		o.Result = ResultAbandoned
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s abandoned %s: context done: %w", what, when, cause))
	} else {
		o.Result = ResultTimeout
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s did not end within its %v timeout: %w", what, n.timeout, context.DeadlineExceeded))
	}
	return o
}
