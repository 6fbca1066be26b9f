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
// bounded by the earlier of its own timeout and ctx.
//
// Cleanup follows Initialize, as OnStop follows OnStart in fx: a provider
// whose Initialize never began (Start never reached it, or never ran) holds
// nothing and is not cleaned up; its outcome is skipped, with
// [ReasonNotInitialized]. A provider whose Initialize Start stopped waiting
// for is cleaned up once that Initialize returns, within its timeout.
//
// Errors, panics and hangs of one provider never stop another's cleanup.
// Once ctx is done, the cleanups not yet begun are begun at once with the
// done context, and Stop returns without waiting for any of them: it never
// waits past ctx. Those it stopped waiting for are abandoned; one that then
// returns has its real result in [Registry.Report], marked late. Stop
// returns the errors of every cleanup it ran that failed, joined;
// [Registry.Report] gives each provider's outcome, those of a failed
// Start's rollback included.
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

	began := time.Now()
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
	ru := r.claimRun(ctx, r.sortedNodes(), TriggerStop)
	r.mu.Unlock()
	errs := r.cleanupRun(ru)

	r.mu.Lock()
	r.reportDuration += time.Since(began)
	r.stopErr = errors.Join(errs...)
	r.phase = phaseStopped
	err := r.stopErr
	close(r.stopDone)
	r.mu.Unlock()
	return err
}

// cleanupRun executes ru, a Stop or a rollback, and keeps it for the
// report, which reads each job's outcome when asked, so that a late result
// shows there. It returns the errors of the cleanups that failed.
func (r *Registry) cleanupRun(ru *run) []error {
	began := time.Now()
	ru.execute()
	took := time.Since(began)

	ended := CleanupEnded{Trigger: ru.trigger, Duration: took, Report: StopReport{Duration: took}}
	if !r.quiet() { // a copy for observers, made only if someone listens
		ended.Report.Providers = make(map[string]Outcome, ru.mine)
	}
	errs := ru.summarize(&ended)
	r.mu.Lock()
	r.reported = append(r.reported, ru)
	if ru.trigger == TriggerRollback { // Stop adds its whole duration itself
		r.reportDuration += took
	}
	r.mu.Unlock()
	r.emit(ended)
	return errs
}

// Report returns the per-provider outcome of every provider the registry
// held when Stop began (a cleanup another caller had begun and not ended
// then, with that caller's outcome), together with those of a failed
// Start's rollback. Before either, it is empty. A cleanup that Stop abandoned and that returned since shows its
// real result, with Late set.
func (r *Registry) Report() StopReport {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, ru := range r.reported {
		n += len(ru.tasks)
	}
	out := StopReport{Duration: r.reportDuration, Providers: make(map[string]Outcome, n)}
	for _, ru := range r.reported {
		// A task another caller claimed (an Unregister or the rollback in
		// flight when Stop began) is reported with that caller's outcome:
		// the provider was registered when Stop began.
		for _, t := range ru.tasks {
			out.Providers[t.j.n.id], _ = t.j.outcome()
		}
	}
	return out
}

// count adds one outcome to the event's counts.
func (e *CleanupEnded) count(res Result) {
	switch res {
	case ResultOK:
		e.OK++
	case ResultSkipped:
		e.Skipped++
	default:
		e.Failed++
	}
}

// endedOne is the CleanupEnded event of a cleanup of one provider.
func endedOne(trigger Trigger, id string, o Outcome) CleanupEnded {
	e := CleanupEnded{Trigger: trigger, Duration: o.Duration,
		Report: StopReport{Duration: o.Duration, Providers: map[string]Outcome{id: o}}}
	e.count(o.Result)
	return e
}
