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
func (r *Registry) Unregister(ctx context.Context, id string) error {
	_, err := r.Remove(ctx, id)
	return err
}

// Remove is [Registry.Unregister], and says how the cleanup ended: whoever
// removes providers all the time (a pool scaling down, a supervisor
// replacing a dead child) reports each one's outcome, which an error alone
// cannot carry for a cleanup that was skipped or went well. The Outcome is
// the zero value when no cleanup ran for this call: an unknown id, a
// dependent, a Stop already begun, or ctx done while another call's cleanup
// of the same provider was running.
func (r *Registry) Remove(ctx context.Context, id string) (Outcome, error) {
	r.mu.Lock()
	if r.phase >= phaseStopping {
		r.mu.Unlock()
		return Outcome{}, providerError(id, "unregister", ErrStopped)
	}
	n := r.nodes[id]
	if n == nil {
		r.mu.Unlock()
		return Outcome{}, providerError(id, "unregister", ErrNotFound)
	}
	if deps := r.dependentsOf(n); len(deps) > 0 {
		r.mu.Unlock()
		return Outcome{}, providerError(id, "unregister", fmt.Errorf("%w: %s", ErrHasDependents, quoteAll(deps)))
	}
	j := claim(n, TriggerUnregister, nil, nil)
	r.mu.Unlock()

	if j == nil { // another Unregister, or a rollback, owns the cleanup
		n.mu.Lock()
		j = n.job
		n.mu.Unlock()
		select {
		case <-j.wait():
			o, _ := j.outcome()
			return o, o.Err
		case <-ctx.Done():
			return Outcome{}, providerError(id, "unregister", ctx.Err())
		}
	}
	r.emit(CleanupBegan{Trigger: TriggerUnregister, Providers: 1})
	r.begin(ctx, n.timeout, []*job{j}, nil) // a provider never initialized has ended already, skipped
	<-j.wait()                              // bounded: the job ends by its deadline, which ctx bounds
	if _, _, holds := j.holding(); holds {
		// ctx ran out while the cleanup still runs within its own timeout.
		// The provider stays registered until it returns: a Stop must not
		// clean up what it depends on beside it, the providers it depends
		// on cannot be unregistered before it, and its id cannot be taken.
		go func() {
			j.awaitHolding(nil)
			r.remove(n)
		}()
	} else {
		r.remove(n)
	}
	o, _ := j.outcome()
	r.emit(ProviderCleaned{ID: id, Trigger: TriggerUnregister, Outcome: o})
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
