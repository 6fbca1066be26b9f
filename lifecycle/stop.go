package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stop cleans up every registered provider: in dependency order (a
// provider's cleanup begins once the cleanups of all the providers that
// depend on it have ended), concurrently where that order allows, each
// bounded by the earlier of its own timeout and ctx. It cleans up providers
// that were never initialized too: their cleanup must be safe to call, and
// no registered provider is ever left holding something.
//
// Errors, panics and hangs of one provider never stop another's cleanup.
// Once ctx is done, the cleanups not yet begun are begun at once with the
// done context, and Stop returns without waiting for any of them: it never
// waits past ctx. Stop returns the errors of every cleanup it ran that
// failed, joined; [Registry.Report] gives each provider's outcome, those of
// a failed Start's rollback included.
//
// From the moment Stop begins, Register and Acquire fail with
// [ErrStopped]. A Start still running is cancelled first. A second Stop
// runs nothing and returns the first one's result, waiting for it (within
// its own ctx) if it has not ended.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopDone != nil {
		done := r.stopDone
		r.mu.Unlock()
		select {
		case <-done:
			r.mu.RLock()
			defer r.mu.RUnlock()
			return r.stopErr
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first stop: %w", ctx.Err())
		}
	}
	r.stopDone = make(chan struct{})
	r.stopping.Store(true)
	starting := r.phase == phaseStarting
	r.phase = phaseStopping
	startDone, cancelStart := r.startDone, r.cancelStart
	r.mu.Unlock()

	begin := time.Now()
	if starting {
		// Start returns promptly once cancelled: its waits are bounded by
		// its context. Its initialized providers are cleaned up below.
		cancelStart()
		select {
		case <-startDone:
		case <-ctx.Done():
		}
	}

	r.mu.Lock()
	ru := r.claimRun(r.sortedNodes(), TriggerStop)
	r.mu.Unlock()
	r.cleanupRun(ctx, ru)

	r.mu.Lock()
	r.report.Duration = time.Since(begin)
	r.stopErr = errors.Join(ru.errorsOf()...)
	r.phase = phaseStopped
	err := r.stopErr
	close(r.stopDone)
	r.mu.Unlock()
	return err
}
