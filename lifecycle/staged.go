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
// Initialize began (once Release is called for it).
func (r *Registry) StartProvider(ctx context.Context, id string) error {
	r.mu.RLock()
	n, ph := r.nodes[id], r.phase
	var depErr error
	if n != nil {
		depErr = r.checkDeps(n, true) // as for a provider registered while running
	}
	r.mu.RUnlock()
	switch {
	case n == nil:
		return providerError(id, "start", ErrNotFound)
	case ph >= phaseStopping || ph == phaseStartFailed:
		return providerError(id, "start", ErrStopped)
	case ph != phaseRunning:
		return providerError(id, "start", fmt.Errorf("the registry has not started: %w", ErrNotReady))
	case depErr != nil:
		return providerError(id, "start", depErr)
	}
	n.mu.Lock()
	state, initErr := n.state, n.initErr
	n.mu.Unlock()
	switch state {
	case initDone:
		return nil
	case initFailed:
		return initErr
	case initStarted:
		return providerError(id, "start", errors.New("its Initialize is running already"))
	}
	err := r.initialize(ctx, n)
	if errors.Is(err, errNotBegun) {
		return providerError(id, "start", ErrStopped) // Stop claimed it first
	}
	return err
}

// Release lets Stop begin the cleanup of a provider registered with
// [Staged], once the cleanups of its dependents have ended: its owner has
// stopped everything that used it. It may be called before Stop begins or
// while Stop runs; further calls, and calls for an unknown id, do nothing.
func (r *Registry) Release(id string) {
	r.mu.RLock()
	n := r.nodes[id]
	r.mu.RUnlock()
	if n == nil {
		return
	}
	n.mu.Lock()
	if n.released {
		n.mu.Unlock()
		return
	}
	n.released = true
	j := n.job
	n.mu.Unlock()
	if j == nil || j.task == nil {
		return // no Stop has claimed it: one that does will not hold it
	}
	t := j.task
	ru := t.run
	var ready []*task
	ru.mu.Lock()
	if t.held {
		t.held = false
		if t.holding { // the run has begun: free it
			t.holding = false
			if t.pending--; t.pending == 0 && !t.launched {
				t.launched = true
				ready = append(ready, t)
			}
		}
	}
	ru.mu.Unlock()
	if len(ready) > 0 {
		ru.advance(nil, ready, nil)
	}
}
