package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// start is the session's OnStart hook, the first of the app's providers':
// it registers every provider, with the dependencies found, in the order
// fx built them, and starts the registry. Each provider is initialized by
// its own hook.
func (s *session) start(ctx context.Context) error {
	s.mu.Lock()
	s.started = true
	g := readTree(s.shutdowner)
	named := s.nameApart(g)
	slots := slices.DeleteFunc(slices.Clone(s.slots), func(sl *provider) bool { return sl.dropped })
	s.mu.Unlock()
	for _, sl := range slots {
		for _, id := range lifecycle.DependsOnOf(sl.d.opts...) {
			if names := named[id]; len(names) > 0 && !slices.Contains(names, id) {
				return fmt.Errorf("fxmodule: provider %q depends on %q, which fx.Private providers of several modules are: they are named %s; depend on one of those",
					sl.id, id, strings.Join(names, ", "))
			}
		}
	}
	if err := discover(slots, g); err != nil {
		return err
	}
	for _, sl := range slots {
		opts := append(slices.Clone(sl.d.opts), lifecycle.Staged())
		if len(sl.deps) > 0 {
			opts = append(opts, lifecycle.DependsOn(sl.deps...))
		}
		if sl.inner != nil {
			if err := s.reg.Register(sl.inner, opts...); err != nil {
				return err
			}
			opts = append(opts, lifecycle.DependsOn(sl.inner.ID()))
		}
		if sl.id != sl.p.ID() {
			opts = append(opts, lifecycle.RegisteredAs(sl.id))
		}
		if err := s.reg.Register(sl.p, opts...); err != nil {
			return err
		}
	}
	deps := make(map[string][]string, len(slots))
	for _, info := range s.reg.Providers() {
		deps[info.ID] = info.DependsOn
	}
	for _, sl := range slots {
		sl.allDeps = deps[sl.id]
	}
	if err := s.assignWaits(slots); err != nil {
		return err
	}
	s.mu.Lock()
	if deadline, ok := ctx.Deadline(); ok {
		s.startTimeout = time.Until(deadline)
	}
	s.mu.Unlock()
	ctx, cancel := early(ctx)
	defer cancel()
	return s.reg.Start(ctx)
}

// stop is the session's OnStop hook, the last of the app's providers': it
// allows the cleanup of every provider whose own hook fx did not reach,
// and returns the registry's errors that no provider's hook returned
// already.
func (s *session) stop(ctx context.Context) error {
	s.allowAll()
	sr, rollback := s.beginStop(ctx, false)
	ectx, cancel := early(ctx)
	defer cancel()
	select {
	case <-sr.done:
	case <-ectx.Done():
		if !rollback {
			// fx's deadline is near: say which cleanups are still running
			// while fx still listens. The registry's Stop goes on until
			// the deadline itself, so that a cleanup that can still end in
			// time does (see beginStop).
			unfinished := s.unfinished()
			if len(unfinished) == 0 { // it ended just now
				<-sr.done
				break
			}
			var errs []error
			for _, id := range unfinished {
				s.mu.Lock()
				sl := s.byID[id]
				reported := sl != nil && sl.reported
				s.mu.Unlock()
				if !reported { // its own hook said so
					errs = append(errs, fmt.Errorf("provider %q: its cleanup had not ended near fx's stop deadline: %w", id, ectx.Err()))
				}
			}
			return errors.Join(append(errs, s.failedSoFar())...)
		}
		// A rollback's cleanups are bounded by their own timeouts, not by
		// fx's start context; fx returns at its deadline whatever the hooks
		// do, and this error, returned first, names what is left.
		return fmt.Errorf("fxmodule: the providers' cleanups had not ended at fx's start deadline; "+
			"they go on, each within its timeout (Registry.Stop waits for them): %w", ectx.Err())
	}
	return s.unreported(sr.err)
}

// beginStop begins the registry's Stop unless it has begun, and returns
// it. A Stop begun by a failed start (a rollback) is bounded by each
// provider's timeout rather than by ctx, fx's start context, and frees
// every provider once that context is done, when fx runs no more hooks.
func (s *session) beginStop(ctx context.Context, rollback bool) (*stopRun, bool) {
	s.mu.Lock()
	if sr := s.stopping; sr != nil {
		s.mu.Unlock()
		return sr, sr.rolledBack
	}
	sr := &stopRun{rolledBack: rollback, done: make(chan struct{})}
	s.stopping = sr
	s.mu.Unlock()

	var sctx context.Context
	cancel := func() {}
	if rollback {
		// fx hands a rollback the start's context, done if the start ran
		// out of time: the cleanups get as long as fx gave the start.
		sctx = context.WithoutCancel(ctx)
		s.mu.Lock()
		if s.startTimeout > 0 {
			sctx, cancel = context.WithTimeout(sctx, s.startTimeout)
		}
		s.mu.Unlock()
		context.AfterFunc(ctx, s.allowAll)
	} else {
		// fx's own deadline, not the hooks' earlier one: a cleanup that
		// waits for its dependents (a server draining to the end of
		// StopTimeout) begins no earlier than fx would run its hook.
		sctx = ctx
		context.AfterFunc(ctx, s.deadlinePassed)
	}
	go func() {
		defer cancel()
		sr.err = s.reg.Stop(sctx)
		close(sr.done)
	}()
	return sr, rollback
}

func (s *session) allowAll() {
	s.mu.Lock()
	slots := slices.Clone(s.slots)
	s.mu.Unlock()
	for _, sl := range slots {
		s.allowCleanup(sl)
	}
}

// failedSoFar returns the errors of the cleanups that have failed by now
// and that no provider's own hook returned.
func (s *session) failedSoFar() error {
	var errs []error
	for _, p := range s.reg.Providers() {
		if o := p.Outcome; o != nil && o.Result.Failed() && o.Result != lifecycle.ResultAbandoned {
			errs = append(errs, o.Err)
		}
	}
	return s.unreported(errors.Join(errs...))
}

// unreported returns the errors of err, the registry's Stop's, that no
// provider's own hook returned.
func (s *session) unreported(err error) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []error
	for _, e := range errs {
		var pe *lifecycle.ProviderError
		if errors.As(e, &pe) {
			if sl := s.byID[pe.ProviderID]; sl != nil && sl.reported {
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// initialize is a provider's OnStart hook: it initializes the provider, a
// little before fx's deadline (see early).
func (sl *provider) initialize(fxCtx context.Context) error {
	id := sl.ident()
	if id == "" {
		return nil // its constructor failed: fx does not start the app
	}
	sl.s.mu.Lock()
	sl.started = true
	sl.s.mu.Unlock()
	ctx, cancel := early(fxCtx)
	defer cancel()
	// A Stop begun meanwhile cancels the Initialize; the waits below
	// keep ctx.
	ictx, stopped := sl.s.stopBegan.until(ctx)
	err := sl.s.startWithDeps(ictx, sl, map[*provider]bool{})
	if err != nil && !errors.Is(err, lifecycle.ErrStopped) && context.Cause(ictx) == errStopBegan {
		err = fmt.Errorf("%w during start: %w", lifecycle.ErrStopped, err)
	}
	stopped()
	if err != nil {
		sl.s.allowUnstarted()
		// fx calls no OnStop for a hook whose OnStart failed: the provider
		// (which may hold half of what it acquired) is allowed its cleanup here, and
		// cleaned up by the Stop this begins, which every provider hook
		// fx stops next joins.
		sl.s.beginStop(fxCtx, true)
		sl.s.allowCleanup(sl)
		if sl.waits() { // fx stops a component it was built from next
			sl.awaitCleanups(ctx)
		}
	}
	return err
}

// startWithDeps initializes sl's dependencies that are not yet, then sl.
// Every provider sl's constructor received was built, so started, before
// it; only a lifecycle.DependsOn on a provider fx builds later can be
// pending, and its Initialize is brought forward to sl's turn.
func (s *session) startWithDeps(ctx context.Context, sl *provider, visiting map[*provider]bool) error {
	visiting[sl] = true
	for _, id := range sl.allDeps {
		s.mu.Lock()
		d := s.byID[id]
		pending := d != nil && !d.ready && !visiting[d]
		s.mu.Unlock()
		if pending {
			if err := s.startWithDeps(ctx, d, visiting); err != nil {
				return err
			}
		}
	}
	if sl.inner != nil {
		if err := s.reg.StartProvider(ctx, sl.inner.ID()); err != nil {
			return err
		}
	}
	if err := s.reg.StartProvider(ctx, sl.id); err != nil {
		return err
	}
	s.mu.Lock()
	sl.ready = true
	s.mu.Unlock()
	return nil
}

// ident is the provider's id, or "" if its constructor failed.
func (sl *provider) ident() string {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if sl.dropped {
		return ""
	}
	return sl.id
}

// cleanUp is a provider's OnStop hook. fx has stopped every hook appended
// after the provider's, so every component built from it: its cleanup
// may begin, as soon as those of the providers that depend on it have
// ended. The hook returns at once, so that fx goes on and the cleanups
// run concurrently, unless a component the provider was built from has
// hooks: fx stops that next, so the hook waits for the cleanup to end.
func (sl *provider) cleanUp(ctx context.Context) error {
	id := sl.ident()
	if id == "" {
		return nil
	}
	s := sl.s
	s.beginStop(ctx, false)
	s.allowUnstarted()
	s.allowCleanup(sl)
	if len(sl.waitFor) == 0 {
		return nil
	}
	ctx, cancel := early(ctx)
	defer cancel()
	var errs []error
	for _, q := range sl.waitFor {
		if !q.awaitCleanups(ctx) {
			s.mu.Lock()
			q.reported = true
			s.mu.Unlock()
			return fmt.Errorf("provider %q: its cleanup had not ended near fx's stop deadline: %w", q.id, ctx.Err())
		}
		s.mu.Lock()
		if q.outcome.Err != nil {
			q.reported = true
			errs = append(errs, q.outcome.Err)
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// allowUnstarted allows the cleanups of the providers whose start hook fx
// never ran: it will not run their stop hooks either. A provider among
// them may have been initialized at a dependent's turn.
func (s *session) allowUnstarted() {
	s.mu.Lock()
	if s.unstartedAllowed { // fx runs no start hook once it stops: once is enough
		s.mu.Unlock()
		return
	}
	s.unstartedAllowed = true
	var unstarted []*provider
	for _, sl := range s.slots {
		if !sl.started && sl.id != "" && !sl.dropped {
			unstarted = append(unstarted, sl)
		}
	}
	s.mu.Unlock()
	for _, sl := range unstarted {
		s.allowCleanup(sl)
	}
}

// allowCleanup allows a provider's cleanup, and its wrapped original's.
func (s *session) allowCleanup(sl *provider) {
	s.reg.AllowCleanup(sl.id)
	if sl.inner != nil {
		s.reg.AllowCleanup(sl.inner.ID())
	}
}

// early returns ctx with a deadline a little before its own. fx answers a
// hook that returns after its deadline with the bare context error; the
// registry, given the earlier deadline, returns first, and app.Start's or
// app.Stop's error names the providers that failed or hung.
func early(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline.Add(-margin(time.Until(deadline))))
}

// margin is how much earlier than fx's deadline, left away, the hooks'
// own deadline falls: a tenth of what is left, at least 20ms (the
// registry's return must be scheduled, under load, before fx's deadline)
// and at most 250ms; never more than half of what is left, so that a short
// timeout still leaves the registry time to work.
func margin(left time.Duration) time.Duration {
	return min(max(left/10, 20*time.Millisecond), 250*time.Millisecond, left/2)
}

// awaitCleanups waits until the provider's cleanups have ended (its
// provider's, and its wrapped original's), and reports whether they did
// before ctx ended.
func (sl *provider) awaitCleanups(ctx context.Context) bool {
	for _, cleaned := range []chan struct{}{sl.cleaned, sl.innerCleaned} {
		if cleaned == nil {
			continue // no wrapped original
		}
		select {
		case <-cleaned:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
