package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// session is one app's registry and what the module knows of its
// providers. Everything is per app: several apps in one process, or
// parallel tests, share nothing.
type session struct {
	reg *lifecycle.Registry

	mu       sync.Mutex // guards the fields below and each slot's mutable fields
	slots    []*slot    // in the order fx built them, which is the order of their hooks
	byID     map[string]*slot
	byDecl   map[*decl][]*slot // several if one Provide option is used in several modules
	graph    string            // fx's DOT graph, set by Module's invoke
	started  bool              // the session's start hook ran: the providers are registered
	stopping *stopRun
	// unstartedReleased: the providers whose start hook fx never ran are
	// released (see releaseUnstarted).
	unstartedReleased bool
}

// slot is one provider: where its hooks sit among fx's, and what the
// registry manages.
type slot struct {
	s    *session
	d    *decl
	args []reflect.Value // what its constructor received, for dependencies by identity

	// Set when its constructor returns, under s.mu; read-only once the
	// session starts.
	id       string
	raw      reflect.Value      // what the constructor built
	p        lifecycle.Provider // what the registry manages: raw, or what consumers receive
	replaced bool               // a decorator or fx.Replace changed the value consumers receive
	deps     []string           // found in fx's graph
	allDeps  []string           // and those given with lifecycle.DependsOn, as registered
	waits    bool               // a component it was built from has hooks: fx must not stop that before this cleanup ends
	ready    bool               // initialized: startWithDeps need not look at it again; guarded by s.mu
	hooked   map[int]bool       // the hooked components it was built from, by their constructor in fx's graph
	waitFor  []*slot            // whose cleanups its stop hook waits for: its own, or one it depends on that fx built later
	started  bool               // fx ran its start hook; guarded by s.mu
	dropped  bool               // a decorator handed its consumers another provider: nothing to manage

	cleaned  chan struct{} // closed when its cleanup has ended (or been abandoned)
	outcome  lifecycle.Outcome
	reported bool // its error was returned by its own stop hook
}

// stopRun is the registry's Stop, begun by the first provider hook that
// fx stops (or by the session's own, if none).
type stopRun struct {
	rolledBack bool // begun by a failed start; set before it is shared
	done       chan struct{}
	err        error // set before done is closed
}

func newSessionState(reg func(lifecycle.Observer) *lifecycle.Registry) *session {
	s := &session{byID: make(map[string]*slot), byDecl: make(map[*decl][]*slot)}
	s.reg = reg(lifecycle.ObserverFunc(s.observe))
	return s
}

// build is called by a provider's wrapper in place of its constructor. It
// appends the provider's hooks first, so that hooks appended by the
// constructor itself, and by every component built from the provider, run
// after its Initialize and before its cleanup.
func (s *session) build(d *decl, lc fx.Lifecycle, args []reflect.Value, call func() (reflect.Value, error)) (reflect.Value, error) {
	sl := &slot{s: s, d: d, cleaned: make(chan struct{})}
	lc.Append(fx.Hook{OnStart: sl.start, OnStop: sl.stop})
	v, err := call()
	if err != nil {
		return reflect.Value{}, fmt.Errorf("provider constructor %s: %w", d.where(), err)
	}
	p, ok := v.Interface().(lifecycle.Provider)
	if !ok || isNil(v) {
		return reflect.Value{}, fmt.Errorf("provider constructor %s returned a nil %v", d.where(), d.provided)
	}
	id := p.ID()
	if id == "" {
		return reflect.Value{}, fmt.Errorf("provider constructor %s returned a %v with an empty id", d.where(), d.provided)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return reflect.Value{}, fmt.Errorf("provider constructor %s: built after the app started", d.where())
	}
	if other := s.byID[id]; other != nil {
		return reflect.Value{}, duplicate(id, other, d, d.provided)
	}
	sl.id, sl.raw, sl.p, sl.args = id, v, p, slices.Clone(args)
	s.slots = append(s.slots, sl)
	s.byID[id] = sl
	s.byDecl[d] = append(s.byDecl[d], sl)
	return v, nil
}

func duplicate(id string, first *slot, d *decl, t reflect.Type) error {
	return fmt.Errorf("provider id %q is given twice: by %v from %s, and by %v from %s; each provider needs an id of its own: %w",
		id, reflect.TypeOf(first.p), first.d.where(), t, d.where(), lifecycle.ErrDuplicateID)
}

// received records the value that consumers of a provider receive. A
// decorator or fx.Replace may have changed it: the registry then manages
// that value, which is the one in use, and not the one its constructor
// built, which no one sees. A decorator that wraps the original (holds it)
// without lifecycle methods of its own leaves the original managed: the
// wrapper delegates to it.
func (s *session) received(d *decl, v reflect.Value) error {
	if !v.IsValid() || isNil(v) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sl *slot
	for _, c := range s.byDecl[d] {
		if sameValue(c.raw, v) {
			return nil
		}
		sl = c
	}
	if sl == nil || len(s.byDecl[d]) > 1 {
		return nil // not built, or used in several modules: which one changed is unknown
	}
	p, ok := v.Interface().(lifecycle.Provider)
	if !ok {
		return nil
	}
	if k, ok := keyOf(sl.raw); ok && !hasLifecycle(p) {
		if wraps := held(nil, []reflect.Value{v}, map[valueKey]*slot{k: sl}); len(wraps) > 0 {
			return nil
		}
	}
	if k, ok := keyOf(v); ok {
		for _, other := range s.slots {
			if other != sl && !other.dropped && (keyOf2(other.raw, k) || keyOf2(reflect.ValueOf(other.p), k)) {
				// Another provider, managed already: the original is
				// unused, and holds nothing.
				delete(s.byID, sl.id)
				sl.dropped = true
				return nil
			}
		}
	}
	id := p.ID()
	if other := s.byID[id]; other != nil && other != sl {
		return duplicate(id, other, d, v.Type())
	}
	delete(s.byID, sl.id)
	sl.id, sl.p, sl.replaced = id, p, true
	s.byID[id] = sl
	return nil
}

// keyOf2 reports whether v is the value k identifies.
func keyOf2(v reflect.Value, k valueKey) bool {
	kv, ok := keyOf(v)
	return ok && kv == k
}

// hasLifecycle reports whether p has an Initialize or a cleanup method.
func hasLifecycle(p lifecycle.Provider) bool {
	switch p.(type) {
	case lifecycle.Initializer, lifecycle.Cleaner, lifecycle.Shutdowner, interface{ Close() error }, interface{ Close() }:
		return true
	}
	return false
}

// observe sees the registry's events: a provider's cleanup ended.
func (s *session) observe(e lifecycle.Event) {
	c, ok := e.(lifecycle.ProviderCleaned) // by Stop, or by an Unregister before it
	if !ok {
		return
	}
	s.mu.Lock()
	sl := s.byID[c.ID]
	if sl != nil && sl.outcome.Result == 0 {
		sl.outcome = c.Outcome
		close(sl.cleaned)
	}
	s.mu.Unlock()
}

// start is the session's OnStart hook, the first of the app's providers':
// it registers every provider, with the dependencies found, in the order
// fx built them, and starts the registry. Each provider is initialized by
// its own hook.
func (s *session) start(ctx context.Context) error {
	s.mu.Lock()
	s.started = true
	slots, graph := slices.Clone(s.slots), s.graph
	s.mu.Unlock()
	slots = slices.DeleteFunc(slots, func(sl *slot) bool { return sl.dropped })
	if err := discover(slots, graph); err != nil {
		return err
	}
	for _, sl := range slots {
		opts := append(slices.Clone(sl.d.opts), lifecycle.Staged())
		if len(sl.deps) > 0 {
			opts = append(opts, lifecycle.DependsOn(sl.deps...))
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
	ctx, cancel := early(ctx)
	defer cancel()
	return s.reg.Start(ctx)
}

// assignWaits decides which stop hook waits for each cleanup that must end
// before fx stops a hooked component its provider was built from. Its own
// hook, usually; but if a provider that depends on it was built earlier
// (lifecycle.DependsOn on a provider built later), fx runs that one's hook
// later, and the cleanup cannot begin before it: the waiting moves to the
// hook fx runs last among them. That is only right if the hooked
// components were built before that provider too; otherwise fx would stop
// one of them before the cleanup can begin, and the start fails, saying
// so.
func (s *session) assignWaits(slots []*slot) error {
	order := make(map[*slot]int, len(slots))
	byID := make(map[string]*slot, len(slots))
	for i, sl := range slots {
		order[sl], byID[sl.id] = i, sl
	}
	first := make(map[int]int) // by hooked component: the first provider built from it
	for i := len(slots) - 1; i >= 0; i-- {
		for c := range slots[i].hooked {
			first[c] = i
		}
	}
	dependents := make(map[*slot][]*slot, len(slots))
	for _, sl := range slots {
		for _, id := range sl.allDeps {
			if d := byID[id]; d != nil {
				dependents[d] = append(dependents[d], sl)
			}
		}
	}
	for _, q := range slots {
		if !q.waits {
			continue
		}
		// The hook fx runs last among q's and its dependents'.
		waiter := q
		seen := map[*slot]bool{q: true}
		stack := []*slot{q}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if order[n] < order[waiter] {
				waiter = n
			}
			for _, d := range dependents[n] {
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		if waiter != q {
			for c := range q.hooked {
				// A hooked component some provider up to the waiter was
				// built from was built, and so started, before the waiter.
				if first[c] > order[waiter] {
					return fmt.Errorf("fxmodule: provider %q depends on %q, which fx builds after it, from a component with hooks "+
						"built after %q: fx would stop that component before %q can be cleaned up; "+
						"let %s take %q's type as a parameter, so that fx builds %q first",
						waiter.id, q.id, waiter.id, q.id, waiter.d.where(), q.id, q.id)
				}
			}
		}
		waiter.waitFor = append(waiter.waitFor, q)
	}
	return nil
}

// stop is the session's OnStop hook, the last of the app's providers': it
// releases every provider whose own hook fx did not reach, and returns
// the registry's errors that no provider's hook returned already.
func (s *session) stop(ctx context.Context) error {
	s.releaseAll()
	sr, rollback := s.beginStop(ctx, false)
	ectx, cancel := early(ctx)
	defer cancel()
	select {
	case <-sr.done:
	case <-ectx.Done():
		if !rollback {
			<-sr.done // the registry's Stop has the same deadline: it is returning
			break
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
		sctx = context.WithoutCancel(ctx)
		context.AfterFunc(ctx, s.releaseAll)
	} else {
		sctx, cancel = early(ctx)
	}
	go func() {
		defer cancel()
		sr.err = s.reg.Stop(sctx)
		close(sr.done)
	}()
	return sr, rollback
}

func (s *session) releaseAll() {
	s.mu.Lock()
	slots := slices.Clone(s.slots)
	s.mu.Unlock()
	for _, sl := range slots {
		s.reg.Release(sl.id)
	}
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

// start is a provider's OnStart hook: it initializes the provider, a
// little before fx's deadline (see early).
func (sl *slot) start(fxCtx context.Context) error {
	id := sl.ident()
	if id == "" {
		return nil // its constructor failed: fx does not start the app
	}
	sl.s.mu.Lock()
	sl.started = true
	sl.s.mu.Unlock()
	ctx, cancel := early(fxCtx)
	defer cancel()
	err := sl.s.startWithDeps(ctx, sl, map[*slot]bool{})
	if err != nil {
		sl.s.releaseUnstarted()
		// fx calls no OnStop for a hook whose OnStart failed: the provider
		// (which may hold half of what it acquired) is released here, and
		// cleaned up by the Stop this begins, which every provider hook
		// fx stops next joins.
		sl.s.beginStop(fxCtx, true)
		sl.s.reg.Release(id)
		if sl.waits { // fx stops a component it was built from next
			select {
			case <-sl.cleaned:
			case <-ctx.Done():
			}
		}
	}
	return err
}

// startWithDeps initializes sl's dependencies that are not yet, then sl.
// Every provider sl's constructor received was built, so started, before
// it; only a lifecycle.DependsOn on a provider fx builds later can be
// pending, and its Initialize is brought forward to sl's turn.
func (s *session) startWithDeps(ctx context.Context, sl *slot, visiting map[*slot]bool) error {
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
	if err := s.reg.StartProvider(ctx, sl.id); err != nil {
		return err
	}
	s.mu.Lock()
	sl.ready = true
	s.mu.Unlock()
	return nil
}

// ident is the provider's id, or "" if its constructor failed.
func (sl *slot) ident() string {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if sl.dropped {
		return ""
	}
	return sl.id
}

// stop is a provider's OnStop hook. fx has stopped every hook appended
// after the provider's, so every component built from it: its cleanup
// may begin, as soon as those of the providers that depend on it have
// ended. The hook returns at once, so that fx goes on and the cleanups
// run concurrently, unless a component the provider was built from has
// hooks: fx stops that next, so the hook waits for the cleanup to end.
func (sl *slot) stop(ctx context.Context) error {
	id := sl.ident()
	if id == "" {
		return nil
	}
	s := sl.s
	s.beginStop(ctx, false)
	s.releaseUnstarted()
	s.reg.Release(id)
	if len(sl.waitFor) == 0 {
		return nil
	}
	ctx, cancel := early(ctx)
	defer cancel()
	var errs []error
	for _, q := range sl.waitFor {
		select {
		case <-q.cleaned:
		case <-ctx.Done():
			return fmt.Errorf("provider %q: its cleanup had not ended at fx's stop deadline: %w", q.id, ctx.Err())
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

// releaseUnstarted releases the providers whose start hook fx never ran:
// it will not run their stop hooks either. A provider among them may have
// been initialized at a dependent's turn.
func (s *session) releaseUnstarted() {
	s.mu.Lock()
	if s.unstartedReleased { // fx runs no start hook once it stops: once is enough
		s.mu.Unlock()
		return
	}
	s.unstartedReleased = true
	var ids []string
	for _, sl := range s.slots {
		if !sl.started && sl.id != "" && !sl.dropped {
			ids = append(ids, sl.id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.reg.Release(id)
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
	// A tenth of what is left, at least 20ms (the registry's return must be
	// scheduled, under load, before fx's deadline) and at most 250ms; never
	// more than half of what is left, so that a short timeout still leaves
	// the registry time to work.
	left := time.Until(deadline)
	margin := min(max(left/10, 20*time.Millisecond), 250*time.Millisecond, left/2)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

func isNil(v reflect.Value) bool {
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
