package lifecycle

import (
	"context"
	"sync"
)

// Acquire leases the provider with the given id for one unit of work. Call
// release once when the work is done; further calls do nothing. While a
// lease is held, the provider's cleanup waits (within its timeout), so no
// work uses a provider that is being closed.
//
// Acquire fails with [ErrNotFound] for an unknown id, [ErrNotReady] before
// the provider is initialized, and [ErrStopped] once Stop has begun or the
// provider's cleanup has been claimed. On failure release is a no-op, never
// nil.
func (r *Registry) Acquire(ctx context.Context, id string) (p Provider, release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, noop, providerError(id, "acquire", err)
	}
	r.mu.Lock()
	n := r.nodes[id]
	switch {
	case r.phase >= phaseStopping:
		err = ErrStopped
	case n == nil:
		err = ErrNotFound
	case n.cleanup != nil:
		err = ErrStopped
	case n.state != StateReady:
		err = ErrNotReady
	default:
		n.leases++
	}
	r.mu.Unlock()
	if err != nil {
		return nil, noop, providerError(id, "acquire", err)
	}
	return n.p, sync.OnceFunc(func() { r.releaseLease(n) }), nil
}

func noop() {}

func (r *Registry) releaseLease(n *node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n.leases--
	if n.leases == 0 && n.drained != nil {
		close(n.drained)
		n.drained = nil
	}
}

// awaitLeases waits until every lease of n is released or ctx is done.
func (r *Registry) awaitLeases(ctx context.Context, n *node) {
	r.mu.Lock()
	if n.leases == 0 {
		r.mu.Unlock()
		return
	}
	if n.drained == nil {
		n.drained = make(chan struct{})
	}
	drained := n.drained
	r.mu.Unlock()
	select {
	case <-drained:
	case <-ctx.Done():
	}
}
