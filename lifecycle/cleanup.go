package lifecycle

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// cleanup is one provider's cleanup. It is made once per provider, when
// Stop, a rollback or Unregister claims the provider, and kept in
// node.cleanup for good: that is what makes a cleanup run exactly once.
//
// It ends once: its outcome is recorded by the first of its goroutine
// (the method returned), its deadline (timeout) and its caller, whose
// context is done (abandoned). It finishes once: from then on it no longer
// holds back the cleanups of the providers it depends on. A cleanup
// finishes when it ends, except one its caller abandoned while the method
// still ran: that one finishes when the method returns or its own timeout
// passes, whichever is first.
type cleanup struct {
	// Set by claim, then only read.
	n       *node
	trigger Trigger
	caller  context.Context // the claimer's: once done, what has not ended is abandoned
	ended   chan struct{}   // closed when the outcome is recorded

	// Guarded by the registry's mu.
	began    time.Time // when it began; zero before
	done     bool      // the outcome is recorded; ended is closed
	out      Outcome   // the outcome, as recorded: what the claimer reports and returns
	lateOut  *Outcome  // what an abandoned cleanup's method returned since, for Report
	finished bool      // it holds back no dependency's cleanup any more
	waiting  []*task   // the runs' places for it that wait to be told it finished
	heldBy   *task     // the Stop's place for it that waits for AllowCleanup
	// A late return is reported after the outcome: by returned if its
	// claimer has reported the outcome by then (see cleaned), or else by
	// cleaned, right after it.
	reported   bool
	lateReturn *ProviderReturnedLate
	span       trace.SpanContext // its span, once traced, for the spans of the cleanups that waited for it to link to
}

// claim makes n's cleanup unless n has one already, and reports whether
// it made it. A provider whose Initialize never began holds nothing, so
// its cleanup ends and finishes at once, skipped, as fx runs no OnStop for
// a hook whose OnStart never ran. r.mu is held.
func (r *Registry) claim(n *node, trigger Trigger, caller context.Context) (c *cleanup, mine bool) {
	if n.cleanup != nil {
		return n.cleanup, false
	}
	c = &cleanup{n: n, trigger: trigger, caller: caller, ended: make(chan struct{})}
	n.cleanup = c
	if n.state == StateRegistered {
		r.record(c, Outcome{Result: ResultSkipped, Reason: ReasonNotInitialized})
		r.finish(c) // no run waits for it yet
	}
	return c, true
}

// begin begins c on a goroutine of its own, bounded by a context whose
// deadline is the earlier of the provider's timeout and the caller's
// context: the goroutine waits for the provider's Initialize to return and
// its leases to be released, then calls the cleanup method. If the
// provider's timeout runs out first, a timer records a timeout (see
// overran), and the goroutine goes on, so that a provider whose
// Initialize returns late is still closed.
//
// A provider with no cleanup method and nothing to wait for is skipped at
// once, without a goroutine.
func (r *Registry) begin(c *cleanup) {
	r.mu.Lock()
	c.began = time.Now()
	if r.skipIdle(c) {
		r.finish(c)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	ctx, cancel := c.n.bound(c.caller)
	overrun := func() bool { return true } // no timeout of its own: none to overrun
	if c.n.timeout != NoTimeout {
		t := time.AfterFunc(c.n.timeout, func() { r.overran(c) })
		overrun = t.Stop
	}
	goCall(ctx, r.cleanupCall(c.n), func(err error) {
		// In time if the deadline had not passed: the outcome follows the
		// clock, even if the callback has not run yet.
		inTime := overrun() && ctx.Err() == nil
		cancel()
		r.returned(c, err, inTime)
	})
}

// cleanupCall is what a cleanup's goroutine runs. The wait for Initialize
// has no bound of its own: calling the cleanup method while Initialize
// still runs would let the provider reopen what it closed. The deadline
// records the outcome meanwhile; the provider is closed, late, once its
// Initialize returns.
func (r *Registry) cleanupCall(n *node) func(context.Context) error {
	return func(ctx context.Context) error {
		r.mu.Lock()
		call := n.call
		r.mu.Unlock()
		if call != nil {
			<-call.done
		}
		r.awaitLeases(ctx, n)
		if n.clean == nil {
			return nil
		}
		return n.clean(ctx)
	}
}

// skipIdle records c skipped if its provider has no cleanup method and
// nothing to wait for (an Initialize running, leases), and reports
// whether it did. r.mu is held.
func (r *Registry) skipIdle(c *cleanup) bool {
	n := c.n
	if c.done || n.clean != nil || n.call != nil || n.leases > 0 {
		return false
	}
	return r.record(c, Outcome{Result: ResultSkipped, Reason: ReasonNoMethod, Began: c.began})
}

// returned takes the result of c's goroutine. If the deadline or the
// caller ended c first, the result is late: Report shows it in place of an
// abandoned outcome (the close a Stop out of time began still happened),
// not of a timeout (the provider broke its own bound).
func (r *Registry) returned(c *cleanup, err error, inTime bool) {
	n := c.n
	r.mu.Lock()
	o := Outcome{Method: n.method, Duration: time.Since(c.began), Began: c.began, Result: ResultOK}
	switch {
	case n.clean == nil:
		o.Result, o.Reason = ResultSkipped, ReasonNoMethod
	case err != nil:
		o.Result, o.Err = ResultError, providerError(n.id, "cleanup", err)
		if _, ok := err.(*PanicError); ok {
			o.Result = ResultPanic
		}
	}
	late := c.done
	if !late && !inTime {
		r.record(c, r.overdue(c, c.caller.Err() != nil))
		late = true
	}
	if late && c.out.Result == ResultAbandoned {
		o.Late = true
		c.lateOut = &o
	}
	r.record(c, o)
	r.finish(c)
	var report *ProviderReturnedLate
	traceLate := o.Late && r.tracer != nil
	if late && n.clean != nil {
		report = &ProviderReturnedLate{ID: n.id, Op: "cleanup", Duration: o.Duration, Err: o.Err}
		if !c.reported {
			c.lateReturn, report = report, nil // cleaned reports it after the outcome
		}
	}
	r.mu.Unlock()
	if traceLate {
		r.traceCleanup(c, o, nil)
	}
	if report != nil {
		r.emit(*report)
	}
}

// overran runs when c's own timeout has run out before its goroutine
// returned. If c has not ended, it has timed out. Either way, it no longer
// holds back its dependencies' cleanups: one its caller abandoned earlier
// (see abandon) finishes now.
func (r *Registry) overran(c *cleanup) {
	r.mu.Lock()
	r.record(c, r.overdue(c, false))
	r.finish(c)
	r.mu.Unlock()
}

// abandon records c abandoned, by a caller whose context is done, unless
// it has ended. c finishes later: when its method returns, or when its
// own timeout runs out (overran). r.mu is held.
func (r *Registry) abandon(c *cleanup) {
	r.record(c, r.overdue(c, true))
}

// record sets c's outcome unless it has one, and reports whether it did.
// r.mu is held.
func (r *Registry) record(c *cleanup, o Outcome) bool {
	if c.done {
		return false
	}
	c.done, c.out = true, o
	close(c.ended)
	return true
}

// finish marks c finished unless it is, removes an unregistered provider
// from the registry, and tells each run waiting for c. A run's channel has
// room for every message it can be sent, so the send never blocks. r.mu is
// held.
func (r *Registry) finish(c *cleanup) {
	if c.finished {
		return
	}
	c.finished = true
	if c.trigger == TriggerUnregister {
		r.remove(c.n)
	}
	for _, t := range c.waiting {
		t.run.events <- event{t: t}
	}
	c.waiting = nil
}

// cleaned reports o, c's outcome, to the observers (a cleanup that went
// well only if someone listens), and traces it, linked to the cleanups it
// waited for. Its claimer calls it, once c has ended.
func (r *Registry) cleaned(c *cleanup, o Outcome, waited []*cleanup) {
	r.traceCleanup(c, o, waited)
	if o.Result != ResultOK || r.listening() { // a failure or a skip is logged at warn or debug
		r.emit(ProviderCleaned{ID: c.n.id, Trigger: c.trigger, Outcome: o})
	}
	r.mu.Lock()
	c.reported = true
	late := c.lateReturn
	r.mu.Unlock()
	if late != nil {
		r.emit(*late)
	}
}

// latest is c's outcome as Report gives it: an abandoned cleanup's late
// result in place of abandoned, once it has one. r.mu is held.
func (c *cleanup) latest() Outcome {
	if c.lateOut != nil {
		return *c.lateOut
	}
	return c.out
}

// outcome returns c's outcome, as recorded, and whether it has ended.
func (r *Registry) outcome(c *cleanup) (Outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.out, c.done
}

// cleanupOne runs c, the cleanup of one provider (an Unregister's, or a
// failed late Register's), and returns once it has ended, or once its
// caller's context is done, having recorded it abandoned. It begins c
// before it tells the observers, so that the cleanup runs whatever an
// observer does to this goroutine.
func (r *Registry) cleanupOne(c *cleanup) {
	r.mu.Lock()
	skipped := c.done
	r.mu.Unlock()
	if !skipped {
		r.begin(c)
	}
	r.emit(CleanupBegan{Trigger: c.trigger, Providers: 1})
	select {
	case <-c.ended:
	case <-c.caller.Done():
		r.mu.Lock()
		r.abandon(c)
		r.mu.Unlock()
	}
}

// overdue is the outcome of a cleanup that did not end in time: abandoned
// if its caller's context is done, timed out if its provider's own
// timeout ran out. It says what the cleanup was waiting for. r.mu is held.
func (r *Registry) overdue(c *cleanup, abandoned bool) Outcome {
	n := c.n
	var took time.Duration
	if !c.began.IsZero() {
		took = time.Since(c.began)
	}
	what := n.method
	if what == "" {
		what = "cleanup"
	}
	if n.call != nil {
		what += ", waiting for its Initialize to return,"
	} else if n.leases > 0 {
		what = fmt.Sprintf("%s, waiting for %d lease(s) to be released,", what, n.leases)
	}
	o := Outcome{Method: n.method, Duration: took, Began: c.began}
	if abandoned {
		when := "after " + took.Round(time.Microsecond).String()
		if c.began.IsZero() {
			when = "before it began"
		}
		o.Result = ResultAbandoned
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s abandoned %s: context done: %w", what, when, c.caller.Err()))
	} else {
		o.Result = ResultTimeout
		o.Err = providerError(n.id, "cleanup", fmt.Errorf("%s did not end within its %v timeout: %w", what, n.timeout, context.DeadlineExceeded))
	}
	return o
}
