package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// initCall is one provider's Initialize, once begun. Its fields but done
// are guarded by the registry's mu.
type initCall struct {
	deadline time.Time     // its context's
	done     chan struct{} // closed when the method has returned (or panicked, or exited)
	returned bool
	err      error // the method's result, once returned
	late     bool  // it did not return before its deadline, or its caller stopped waiting
	// A late return is reported after the outcome: by initReturned if the
	// outcome is reported by then, or else by initialize, right after it.
	reported   bool                  // the outcome is reported
	lateReturn *ProviderReturnedLate // a late return waiting for that
}

// errNotBegun is initialize's answer for a provider whose cleanup was
// claimed (by Stop, a rollback or Unregister), or whose registry began
// stopping, before its Initialize could begin. It wraps ErrStopped when
// Stop has begun.
var errNotBegun = errors.New("initialize not begun: the provider's cleanup is claimed")

// errBegunAlready is initialize's answer for a provider whose Initialize
// another call began: it runs at most once.
var errBegunAlready = errors.New("its Initialize has begun already, in another call")

// initialize runs n's Initialize on a goroutine of its own, bounded by its
// timeout and ctx, and records the outcome. It never begins once n's
// cleanup has been claimed or Stop has begun (errNotBegun): both are
// decided under r.mu, so that a cleanup either sees the Initialize it must
// wait for or knows that none will run.
//
// If the deadline passes first, Initialize has failed; the method may go
// on, and its cleanup waits for it to return.
func (r *Registry) initialize(ctx context.Context, n *node) error {
	r.mu.Lock()
	if err := ctx.Err(); err != nil {
		r.mu.Unlock()
		return providerError(n.id, "initialize", fmt.Errorf("not begun: %w", err))
	}
	switch {
	case r.phase >= phaseStopping:
		r.mu.Unlock()
		return fmt.Errorf("%w: %w", errNotBegun, ErrStopped)
	case n.cleanup != nil:
		r.mu.Unlock()
		return errNotBegun
	case n.state != StateRegistered:
		r.mu.Unlock()
		return errBegunAlready
	}
	if n.init == nil {
		n.state = StateReady
		n.initBegan = time.Now()
		r.mu.Unlock()
		r.traceInit(ctx, n.id, n.initBegan, 0, nil)
		if r.listening() {
			r.emit(ProviderInitialized{ID: n.id, Began: n.initBegan})
		}
		return nil
	}
	n.state = StateInitializing
	call := &initCall{done: make(chan struct{})}
	n.call = call
	r.mu.Unlock()

	began := time.Now()
	ictx, cancel := n.bound(ctx)
	defer cancel()
	call.deadline, _ = ictx.Deadline()
	goCall(ictx, n.init, func(err error) { r.initReturned(n, call, err, began) })
	select {
	case <-call.done:
	case <-ictx.Done():
	}

	r.mu.Lock()
	err := call.err
	took := time.Since(began)
	switch {
	case !call.returned || call.late:
		call.late = true
		err = initOverdue(ctx, n, took)
	case err != nil:
		err = providerError(n.id, "initialize", err)
	}
	if err != nil {
		n.state, n.initErr = StateFailed, err
	} else {
		n.state = StateReady
	}
	n.initBegan, n.initTook = began, took
	r.mu.Unlock()
	r.traceInit(ctx, n.id, began, took, err)
	if err != nil || r.listening() {
		r.emit(ProviderInitialized{ID: n.id, Began: began, Duration: took, Err: err})
	}
	r.mu.Lock()
	call.reported = true
	lateReturn := call.lateReturn
	r.mu.Unlock()
	if lateReturn != nil {
		r.emit(*lateReturn)
	}
	return err
}

// initReturned runs on the Initialize's goroutine when the method ends.
func (r *Registry) initReturned(n *node, call *initCall, err error, began time.Time) {
	r.mu.Lock()
	call.returned, call.err = true, err
	n.call = nil                                                      // nothing waits for an Initialize that has returned
	if !call.deadline.IsZero() && !time.Now().Before(call.deadline) { // the outcome follows the clock
		call.late = true
	}
	var late *ProviderReturnedLate
	if call.late {
		late = &ProviderReturnedLate{ID: n.id, Op: "initialize", Duration: time.Since(began)}
		if err != nil {
			late.Err = providerError(n.id, "initialize", err)
		}
		if !call.reported {
			call.lateReturn, late = late, nil // initialize reports it after the outcome
		}
	}
	close(call.done)
	r.mu.Unlock()
	if late != nil {
		r.emit(*late)
	}
}

// initOverdue is the error of an Initialize that did not return in time:
// its caller's context ended, or its own timeout ran out.
func initOverdue(ctx context.Context, n *node, took time.Duration) error {
	if err := ctx.Err(); err != nil {
		return providerError(n.id, "initialize", fmt.Errorf("abandoned after %v: context done: %w", took.Round(time.Microsecond), err))
	}
	return providerError(n.id, "initialize", fmt.Errorf("did not return within its %v timeout: %w", n.timeout, context.DeadlineExceeded))
}

func (r *Registry) startResult() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startErr
}
