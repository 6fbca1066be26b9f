package lifecycle

import (
	"context"
	"errors"
	"fmt"
)

// StartProvider initializes one provider registered with [Staged], bounded
// by its timeout and ctx, once Start has returned without error. It returns
// nil at once if the provider is initialized already, and the first
// attempt's error if that failed: Initialize runs at most once.
//
// Every provider it depends on must be initialized already; if one is not,
// StartProvider fails with [ErrNotReady], naming it, and Initialize does
// not begin. A failed Initialize leaves the provider registered: it may hold
// half of its resources, so Stop cleans it up like any provider whose
// Initialize began (once AllowCleanup is called for it).
func (r *Registry) StartProvider(ctx context.Context, id string) error {
	r.mu.Lock()
	n := r.nodes[id]
	var err error
	switch {
	case n == nil:
		err = ErrNotFound
	case r.phase >= phaseStopping || r.phase == phaseStartFailed:
		err = ErrStopped
	case r.phase != phaseRunning:
		err = fmt.Errorf("the registry has not started: %w", ErrNotReady)
	case n.state == StateReady:
		r.mu.Unlock()
		return nil
	case n.state == StateFailed:
		err := n.initErr
		r.mu.Unlock()
		return err
	case n.state == StateInitializing:
		err = errBegunAlready
	default:
		err = r.checkDeps(n, true) // as for a provider registered while running
	}
	r.mu.Unlock()
	if err != nil {
		return providerError(id, "start", err)
	}
	ictx, span := r.stagedSpan(ctx, n)
	err = r.initialize(ictx, n)
	r.settleStart(false)
	if errors.Is(err, errNotBegun) || errors.Is(err, errBegunAlready) { // another call came first
		endSpan(span, nil) // not this provider's failure: that call's span tells its outcome
		return providerError(id, "start", err)
	}
	endSpan(span, err)
	return err
}

// AllowCleanup lets Stop begin the cleanup of a provider registered with
// [Staged], once the cleanups of its dependents have ended: its owner has
// stopped everything that used it. It may be called before Stop begins or
// while Stop runs; further calls, and calls for an unknown id, do nothing.
func (r *Registry) AllowCleanup(id string) {
	r.mu.Lock()
	n := r.nodes[id]
	if n == nil || n.allowed {
		r.mu.Unlock()
		return
	}
	n.allowed = true
	if c := n.cleanup; c != nil && c.heldBy != nil {
		c.heldBy.run.events <- event{t: c.heldBy, allowed: true} // never blocks: the run has room for it
		c.heldBy = nil
	}
	r.mu.Unlock()
}
