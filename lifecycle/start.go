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
// An unknown dependency or a cycle fails Start, with an error that names
// it: before any provider is initialized, unless the provider was
// registered while Start ran; then what Start initialized is rolled back. If an Initialize fails, panics
// or times out, no further provider is initialized, and the providers
// initialized so far, with the one that failed (it may hold half of its
// resources), are cleaned up in dependency order before Start returns the
// error; those never initialized are reported skipped. That rollback is
// not cut short by ctx: a start that ran out of time is exactly when
// cleanup matters. Each of its cleanups is bounded by its provider's
// timeout.
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
	r.startBegan = time.Now()
	ctx, r.startSpan = r.span(ctx, "gleitzeit.start")
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
	count := len(r.order) - staged
	r.mu.Unlock()

	begin := time.Now()
	initialized, err := 0, errObserverExited
	defer func() { // deferred, so that Start ends whatever becomes of this goroutine
		cancel()
		r.mu.Lock()
		if r.phase == phaseStarting {
			r.phase = phaseStartFailed // start moves it to running on success
		}
		r.startErr = err
		close(r.startDone)
		r.mu.Unlock()
		r.settleStart(false)
		if err != errObserverExited {
			r.emit(StartEnded{Providers: initialized, Staged: staged, Duration: time.Since(begin), Err: err})
		}
	}()
	r.emit(StartBegan{Providers: count, Staged: staged})
	initialized, err = r.start(sctx)
	return err
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
		order, err := r.initOrder()
		if err == nil && len(order) == 0 {
			r.phase = phaseRunning
		}
		r.mu.Unlock()
		if err != nil && initialized > 0 { // a provider registered during Start
			return initialized, errors.Join(append([]error{err}, r.rollback(ctx)...)...)
		}
		if err != nil || len(order) == 0 {
			return initialized, err
		}
		for _, n := range order {
			err := r.initialize(ctx, n)
			switch {
			case err == nil:
				initialized++
				continue
			case r.stopping(): // Stop began, or cancelled this Initialize: it cleans up
				if errors.Is(err, errNotBegun) {
					return initialized, ErrStopped
				}
				return initialized, fmt.Errorf("%w during start: %w", ErrStopped, err)
			case errors.Is(err, errNotBegun), errors.Is(err, errBegunAlready):
				continue // unregistered, or begun by another call, since the batch was chosen
			}
			return initialized, errors.Join(append([]error{err}, r.rollback(ctx)...)...)
		}
	}
}

func (r *Registry) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase >= phaseStopping
}

// rollback cleans up, in dependency order, every provider initialized so
// far and the one that failed, and returns the errors of the cleanups that
// failed, which Start returns with its own. It claims every registered
// provider: those whose Initialize never began are skipped, as they would
// be by a later Stop, and no dependent is left for a later Stop to clean
// up after what it depends on. The registry is marked failed, and the
// providers claimed, in one critical section, so that none can be
// registered meanwhile. Its outcomes join the registry's report.
func (r *Registry) rollback(ctx context.Context) []error {
	r.mu.Lock()
	if r.phase != phaseStarting { // Stop has begun, and owns every cleanup
		r.mu.Unlock()
		return nil
	}
	r.phase = phaseStartFailed
	// The rollback is not cut short by ctx: a start that ran out of time
	// is exactly when cleanup matters. Its cleanups are bounded by their
	// providers' timeouts.
	ctx, span := r.span(context.WithoutCancel(ctx), "gleitzeit.rollback")
	ru := r.claimRun(ctx, slices.Clone(r.order), TriggerRollback)
	r.mu.Unlock()
	errs := r.cleanupRun(ru)
	endSpan(span, errors.Join(errs...))
	return errs
}

// initOrder returns the providers Start is to initialize next: those
// registered and not yet initialized nor claimed, staged ones left out,
// each after the providers it depends on, ties in registration order. A
// dependency outside them must be initialized already. It fails on an
// unknown dependency, a cycle, or a dependency on a staged provider not
// started yet, which Start would never wait for. r.mu is held.
func (r *Registry) initOrder() ([]*node, error) {
	const (
		unseen = iota
		onPath
		placed
	)
	mark := make(map[*node]int, len(r.order))
	var order, path []*node
	var visit func(n *node) error
	visit = func(n *node) error {
		mark[n] = onPath
		path = append(path, n)
		for _, id := range n.deps {
			d := r.nodes[id]
			switch {
			case d == nil:
				return providerError(n.id, "start", fmt.Errorf("depends on %q: %w", id, ErrNotFound))
			case mark[d] == onPath:
				return providerError(n.id, "start", cycleError(path, d))
			case d.state == StateReady && d.cleanup == nil:
			case d.staged && !n.staged:
				return providerError(n.id, "start", fmt.Errorf("depends on %q, which is staged and not started yet: %w", id, ErrNotReady))
			case mark[d] == placed:
			case d.state != StateRegistered || d.cleanup != nil:
				return providerError(n.id, "start", fmt.Errorf("depends on %q, which is not initialized: %w", id, ErrNotReady))
			default:
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		mark[n] = placed
		order = append(order, n)
		return nil
	}
	for _, n := range r.order {
		if mark[n] == unseen && n.state == StateRegistered && n.cleanup == nil {
			if err := visit(n); err != nil {
				return nil, err
			}
		}
	}
	return slices.DeleteFunc(order, func(n *node) bool { return n.staged }), nil
}

// cycleError names the cycle that closes at d: "a" -> "b" -> "a".
func cycleError(path []*node, d *node) error {
	start := slices.Index(path, d)
	names := make([]string, 0, len(path)-start+1)
	for _, n := range path[start:] {
		names = append(names, fmt.Sprintf("%q", n.id))
	}
	names = append(names, fmt.Sprintf("%q", d.id))
	return fmt.Errorf("%w: %s", ErrCycle, strings.Join(names, " -> "))
}
