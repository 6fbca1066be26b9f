package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Start initializes every registered provider, one at a time, each after
// the providers it depends on, in registration order where the
// dependencies leave a choice. Each Initialize is bounded by the provider's
// timeout and by ctx. Providers registered while Start runs are initialized
// by it too.
//
// An unknown dependency or a cycle fails Start before any provider is
// initialized, with an error that names it. If an Initialize fails, panics
// or times out, no further provider is initialized, and the providers
// initialized so far, with the one that failed (it may hold half of its
// resources), are cleaned up in dependency order before Start returns the
// error; so are the providers that depend on those, which were never
// initialized, so that the dependency order holds. That rollback is not cut
// short by ctx: a start that ran out of
// time is exactly when cleanup matters. Each of its cleanups is bounded by
// its provider's timeout.
//
// Initialization is sequential on purpose. Start's failures must be
// reproducible and "no further provider" must mean one thing; startup is
// not where a Kubernetes pod runs out of time.
//
// A second Start returns the first one's result. Start after Stop has begun
// fails with [ErrStopped].
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	switch r.phase {
	case phaseStopping, phaseStopped:
		r.mu.Unlock()
		return ErrStopped
	case phaseStarting, phaseRunning, phaseStartFailed:
		done := r.startDone
		r.mu.Unlock()
		select {
		case <-done:
			return r.startResult()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	r.phase = phaseStarting
	r.startDone = make(chan struct{})
	r.cancelStart = cancel
	staged := 0
	for _, n := range r.order {
		if n.staged {
			staged++
		}
	}
	count := len(r.nodes) - staged
	r.mu.Unlock()

	begin := time.Now()
	r.emit(StartBegan{Providers: count, Staged: staged})
	initialized, err := r.start(sctx)
	cancel()

	r.mu.Lock()
	if r.phase == phaseStarting {
		if err == nil {
			r.phase = phaseRunning
		} else {
			r.phase = phaseStartFailed
		}
	}
	r.startErr = err
	close(r.startDone)
	r.mu.Unlock()
	r.emit(StartEnded{Providers: initialized, Staged: staged, Duration: time.Since(begin), Err: err})
	return err
}

func (r *Registry) startResult() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.startErr
}

// start initializes batches of uninitialized providers until none is left,
// then moves the registry to running in the same critical section, so that a
// concurrent Register is either in a batch or initializes itself.
func (r *Registry) start(ctx context.Context) (initialized int, err error) {
	for {
		r.mu.Lock()
		if r.phase != phaseStarting {
			r.mu.Unlock()
			return initialized, ErrStopped
		}
		// Staged providers are checked with the rest (an unknown
		// dependency or a cycle fails Start), but left to StartProvider.
		var pending []*node
		for _, n := range r.sortedNodes() {
			n.mu.Lock()
			if n.state == initPending && n.job == nil {
				pending = append(pending, n)
			}
			n.mu.Unlock()
		}
		order, err := r.initOrder(pending)
		if err == nil {
			order = slices.DeleteFunc(order, func(n *node) bool { return n.staged })
			err = r.checkStagedDeps(order)
		}
		if err == nil && len(order) == 0 {
			r.phase = phaseRunning
			r.mu.Unlock()
			return initialized, nil
		}
		r.mu.Unlock()
		if err != nil {
			return initialized, err
		}
		count, failed, err := r.initAll(ctx, order)
		initialized += count
		switch {
		case err == nil:
		case r.stopping.Load(): // Stop began, or cancelled this Initialize: it cleans up
			if errors.Is(err, errNotBegun) {
				return initialized, ErrStopped
			}
			return initialized, fmt.Errorf("%w during start: %w", ErrStopped, err)
		default:
			r.rollback(ctx, failed)
			return initialized, err
		}
	}
}

// errNotBegun is initialize's answer for a provider whose cleanup was
// claimed, or whose registry began stopping, before its Initialize could
// begin.
var errNotBegun = errors.New("initialize not begun: the provider's cleanup is claimed")

// initialize runs n's Initialize, bounded by its timeout and ctx. It never
// begins once n's cleanup has been claimed or Stop has begun (errNotBegun):
// the two are decided under n's lock, so that a cleanup either sees the
// Initialize it must wait for or knows that none will run.
func (r *Registry) initialize(ctx context.Context, n *node) error {
	count, _, err := r.initAll(ctx, []*node{n})
	if err == nil && count == 0 {
		return errNotBegun
	}
	return err
}

func lateError(id, op string, err error) error {
	if err == nil {
		return nil
	}
	return providerError(id, op, err)
}

// rollback cleans up, in dependency order, every provider initialized so
// far and the one that failed. Its outcomes join the registry's report.
//
// It takes along every provider that depends, directly or not, on one of
// those, although none of them was initialized: a dependent is always
// cleaned up before what it depends on, and one left for a later Stop would
// be cleaned up after. The registry is marked failed, and the set chosen
// and claimed, in one critical section, so that no provider can be
// registered meanwhile that depends on one being rolled back.
func (r *Registry) rollback(ctx context.Context, failed *node) {
	r.mu.Lock()
	if r.phase != phaseStarting { // Stop has begun, and owns every cleanup
		r.mu.Unlock()
		return
	}
	r.phase = phaseStartFailed
	nodes := r.sortedNodes()
	dependents := make(map[string][]*node)
	for _, n := range nodes {
		for _, id := range n.deps {
			dependents[id] = append(dependents[id], n)
		}
	}
	in := make(map[*node]bool)
	var take func(n *node)
	take = func(n *node) {
		if in[n] {
			return
		}
		in[n] = true
		for _, d := range dependents[n.id] {
			take(d)
		}
	}
	for _, n := range nodes {
		n.mu.Lock()
		initialized := n.state == initDone
		n.mu.Unlock()
		if n == failed || initialized {
			take(n)
		}
	}
	set := make([]*node, 0, len(in))
	for _, n := range nodes {
		if in[n] {
			set = append(set, n)
		}
	}
	// The rollback is not cut short by ctx: a start that ran out of time
	// is exactly when cleanup matters. Its cleanups are bounded by their
	// providers' timeouts.
	ru := r.claimRun(context.WithoutCancel(ctx), set, TriggerRollback)
	r.mu.Unlock()
	r.cleanupRun(ru)
}

// initOrder returns batch ordered so that every provider follows the
// providers it depends on, ties following registration order. A dependency
// outside the batch must be initialized already. batch is in registration
// order. r.mu is held.
//
// The walk marks the nodes themselves (walk, color) rather than a map of
// them: with 100,000 providers, the map's lookups, each a cache miss, were
// a third of Start's time.
func (r *Registry) initOrder(batch []*node) ([]*node, error) {
	const (
		white = iota
		grey
		black
	)
	r.walks++
	walk := r.walks // a node is in the batch if it carries this walk's mark
	for _, n := range batch {
		n.walk, n.color = walk, white
	}
	order := make([]*node, 0, len(batch))
	var path []*node
	var visit func(n *node) error
	visit = func(n *node) error {
		n.color = grey
		path = append(path, n)
		for _, id := range n.deps {
			d := r.nodes[id]
			if d == nil {
				return providerError(n.id, "start", fmt.Errorf("depends on %q: %w", id, ErrNotFound))
			}
			color, ok := d.color, d.walk == walk
			switch {
			case !ok:
				d.mu.Lock()
				state, claimed := d.state, d.job != nil
				d.mu.Unlock()
				if claimed || state != initDone {
					return providerError(n.id, "start", fmt.Errorf("depends on %q, which is not initialized: %w", id, ErrNotReady))
				}
			case color == grey:
				return cycleError(path, d)
			case color == white:
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		n.color = black
		order = append(order, n)
		return nil
	}
	for _, n := range batch {
		if n.color == white {
			if err := visit(n); err != nil {
				return nil, err
			}
		}
	}
	return order, nil
}

// cycleError names the cycle that closes at d: "a" -> "b" -> "a".
func cycleError(path []*node, d *node) error {
	start := 0
	for i, n := range path {
		if n == d {
			start = i
		}
	}
	names := make([]string, 0, len(path)-start+1)
	for _, n := range path[start:] {
		names = append(names, fmt.Sprintf("%q", n.id))
	}
	names = append(names, fmt.Sprintf("%q", d.id))
	return fmt.Errorf("%w: %s", ErrCycle, strings.Join(names, " -> "))
}

// checkStagedDeps refuses a provider that Start would initialize although
// it depends on a staged provider not started yet: Start never waits for
// StartProvider. r.mu is held.
func (r *Registry) checkStagedDeps(order []*node) error {
	for _, n := range order {
		for _, id := range n.deps {
			d := r.nodes[id]
			if d == nil || !d.staged {
				continue
			}
			d.mu.Lock()
			ready := d.state == initDone
			d.mu.Unlock()
			if !ready {
				return providerError(n.id, "start", fmt.Errorf("depends on %q, which is staged and not started yet: %w", id, ErrNotReady))
			}
		}
	}
	return nil
}
