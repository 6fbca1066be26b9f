package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// [ErrStopped]. A Start still running is cancelled, and begins no further
// Initialize; Stop does not wait for it to return, so Start's last events
// (the Initialize it cut short, StartEnded) may come after Stop's. A
// second Stop runs nothing and returns the first one's result, waiting for
// it (within its own ctx) if it has not ended.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopDone != nil {
		done := r.stopDone
		r.mu.Unlock()
		select {
		case <-done:
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.stopErr
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first stop: %w", ctx.Err())
		}
	}
	r.stopDone = make(chan struct{})
	if r.phase == phaseStarting {
		// Start begins no Initialize from now on, and the one it runs
		// ends with its context: its cleanup waits for it. Stop does not
		// wait for Start itself, which may be the goroutine of an
		// observer that called Stop.
		r.cancelStart()
	}
	r.phase = phaseStopping
	ctx, span := r.span(ctx, "gleitzeit.stop")
	ru := r.claimRun(ctx, slices.Clone(r.order), TriggerStop)
	r.mu.Unlock()
	r.settleStart(true)

	began := time.Now()
	err := errObserverExited // kept if an observer ends this goroutine
	// Deferred, so that a second Stop is answered whatever becomes of
	// this one.
	defer func() {
		r.mu.Lock()
		r.reportDuration += time.Since(began)
		r.stopErr, r.phase = err, phaseStopped
		close(r.stopDone)
		r.mu.Unlock()
		endSpan(span, err)
	}()
	errs := r.cleanupRun(ru)
	if span != nil {
		span.SetAttributes(AttrFailed.Int(len(errs)))
	}
	err = errors.Join(errs...)
	return err
}

// errObserverExited is the result of a Start or a Stop whose goroutine an
// observer ended with runtime.Goexit (as t.FailNow does).
var errObserverExited = errors.New("an observer called runtime.Goexit, which ended the goroutine of this call")

// Report returns the per-provider outcome of every provider the registry
// held when Stop began (a cleanup another caller had begun and not
// finished then, with that caller's outcome, once it has one), together
// with those of a failed Start's rollback. Before either, it is empty. A
// cleanup that Stop abandoned and that returned since shows its real
// result, with Late set.
func (r *Registry) Report() StopReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := StopReport{Duration: r.reportDuration, Providers: make(map[string]Outcome)}
	for _, ru := range r.reported {
		for _, t := range ru.tasks {
			if t.c.done { // another caller's, still running, shows once it ends
				out.Providers[t.c.n.id] = t.c.latest()
			}
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
