package lifecycle

import (
	"context"
	"fmt"
	"slices"
)

// Unregister cleans up the provider with the given id, by the same rules as
// Stop (its leases drain first, its cleanup is bounded by its timeout and by
// ctx), and then removes it. It fails with [ErrHasDependents], naming them,
// while a registered provider depends on it; with [ErrNotFound] for an
// unknown id; and with [ErrStopped] once Stop has begun, since Stop then
// owns every cleanup. The provider's cleanup outcome is returned as an
// error when it failed.
//
// If two Unregister calls race for one id, the cleanup still runs once: the
// second call waits for the first one's outcome.
//
// If ctx is done before the cleanup ends, the outcome is abandoned, and
// the provider stays registered until its cleanup method returns or its
// own timeout passes: a Stop meanwhile waits for it before it cleans up
// what the provider depends on.
func (r *Registry) Unregister(ctx context.Context, id string) error {
	_, err := r.UnregisterOutcome(ctx, id)
	return err
}

// UnregisterOutcome is [Registry.Unregister], returning the cleanup's
// outcome as well: whoever removes providers all the time (a pool scaling
// down, a supervisor replacing a dead child) reports each one's outcome,
// which an error alone cannot carry for a cleanup that was skipped or went
// well. The Outcome is the zero value when no cleanup ran for this call:
// an unknown id, a dependent, a Stop already begun, or ctx done while
// another call's cleanup of the same provider was running.
func (r *Registry) UnregisterOutcome(ctx context.Context, id string) (o Outcome, err error) {
	ctx, span := r.span(ctx, "gleitzeit.unregister", AttrProviderID.String(id))
	defer func() {
		endSpan(span, err)
		r.settleStart(false) // it may have been the last staged provider the start waited for
	}()
	r.mu.Lock()
	n := r.nodes[id]
	switch {
	case r.phase >= phaseStopping:
		err = ErrStopped
	case n == nil:
		err = ErrNotFound
	default:
		if deps := r.dependentsOf(n); len(deps) > 0 {
			err = fmt.Errorf("%w: %s", ErrHasDependents, quoteAll(deps))
		}
	}
	if err != nil {
		r.mu.Unlock()
		return Outcome{}, providerError(id, "unregister", err)
	}
	c, mine := r.claim(n, TriggerUnregister, ctx)
	r.mu.Unlock()

	if !mine { // another Unregister, or a rollback, owns the cleanup
		select {
		case <-c.ended:
			o, _ := r.outcome(c)
			return o, o.Err
		case <-ctx.Done():
			return Outcome{}, providerError(id, "unregister", ctx.Err())
		}
	}
	r.cleanupOne(c)
	o, _ = r.outcome(c)
	r.cleaned(c, o, nil)
	r.emit(endedOne(TriggerUnregister, id, o))
	return o, o.Err
}

// dependentsOf returns the ids of the registered providers that depend on
// n, sorted. A dependent whose own cleanup is still running counts. r.mu is
// held.
func (r *Registry) dependentsOf(n *node) []string {
	var ids []string
	for _, m := range r.nodes {
		if m != n && slices.Contains(m.deps, n.id) {
			ids = append(ids, m.id)
		}
	}
	slices.Sort(ids)
	return ids
}
