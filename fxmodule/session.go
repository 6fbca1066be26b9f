package fxmodule

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// session is one app's registry and what the module knows of its
// providers. Everything is per app: several apps in one process, or
// parallel tests, share nothing.
type session struct {
	reg *lifecycle.Registry
	log *zap.Logger // for what must be said even if fx's hooks cannot say it (see deadlinePassed)

	mu       sync.Mutex  // guards the fields below and each provider's mutable fields
	slots    []*provider // in the order fx built them, which is the order of their hooks
	byID     map[string]*provider
	byResult map[*result][]*provider // several if one Provide option is used in several modules
	byInner  map[string]*provider    // by the id of a wrapped original (see provider.inner)
	byValue  map[valueKey]*provider  // by the value its constructor built
	// shutdowner is the app's fx.Shutdowner, set by Module's invoke: the
	// way to its tree of modules (see readTree and nameApart).
	shutdowner any
	started    bool // the session's start hook ran: the providers are registered
	stopping   *stopRun
	// stopBegan ends the Initialize a provider's hook runs once a Stop
	// begins (see stopBegan).
	stopBegan stopBegan
	// startTimeout is what fx gave the start (its StartTimeout), measured
	// when the session's start hook runs: it bounds a rollback's cleanups.
	startTimeout time.Duration
	// unstartedAllowed: the providers whose start hook fx never ran are
	// allowed their cleanup (see allowUnstarted).
	unstartedAllowed bool
}

// provider is one value a Provide constructor built: where its hooks sit
// among fx's, and what the registry manages.
type provider struct {
	s        *session
	d        *decl
	r        *result         // which of d's results it is
	args     []reflect.Value // what its constructor received, for dependencies by identity
	heldThen []*provider     // the providers built before it that its arguments held when it received them (see held)

	// Set when its constructor returns, under s.mu; read-only once the
	// session starts.
	id       string
	raw      reflect.Value      // what the constructor built
	p        lifecycle.Provider // what the registry manages: raw, or what consumers receive
	replaced bool               // a decorator or fx.Replace changed the value consumers receive
	deps     []string           // found by discover
	allDeps  []string           // and those given with lifecycle.DependsOn, as registered
	ready    bool               // initialized: startWithDeps need not look at it again; guarded by s.mu
	hooked   map[int]bool       // the hooked components it was built from, by their node in fx's graph
	waitFor  []*provider        // whose cleanups its stop hook waits for: its own, or one it depends on that fx built later
	started  bool               // fx ran its start hook; guarded by s.mu
	dropped  bool               // a decorator handed its consumers another provider: nothing to manage
	// inner is the original a decorator wrapped in a provider with
	// lifecycle methods of its own (p): both are managed, p depending on
	// inner, whose cleanup closes innerCleaned.
	inner        lifecycle.Provider
	innerCleaned chan struct{}
	innerOutcome lifecycle.Outcome

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

func newSessionState(log *zap.Logger, reg func(lifecycle.Observer) *lifecycle.Registry) *session {
	s := &session{log: log, byID: make(map[string]*provider), byResult: make(map[*result][]*provider), byInner: make(map[string]*provider), byValue: make(map[valueKey]*provider),
		stopBegan: newStopBegan()}
	s.reg = reg(lifecycle.ObserverFunc(s.observe))
	return s
}

// build is called by a provider constructor's wrapper in place of the
// constructor. It appends each provider's hooks first, so that hooks
// appended by the constructor itself, and by every component built from
// the provider, run after its Initialize and before its cleanup. It
// returns the constructor's results.
func (s *session) build(d *decl, lc fx.Lifecycle, args []reflect.Value, call func() ([]reflect.Value, error)) ([]reflect.Value, error) {
	slots := make([]*provider, len(d.results))
	for i, r := range d.results {
		slots[i] = &provider{s: s, d: d, r: r, cleaned: make(chan struct{})}
		lc.Append(fx.Hook{OnStart: slots[i].initialize, OnStop: slots[i].cleanUp})
	}
	outs, err := call()
	if err != nil {
		return nil, err // fx names the constructor, by file and line
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil, fmt.Errorf("provider constructor %s: built after the app started", d.where())
	}
	vals := make([]reflect.Value, len(d.results))
	managed := 0
results:
	for i, r := range d.results {
		v := r.value(outs)
		vals[i] = v
		for _, w := range vals[:i] {
			if sameValue(w, v) {
				continue results // one provider given twice (as itself and as an interface, say): its hooks are the first's
			}
		}
		p, _ := v.Interface().(lifecycle.Provider)
		if r.maybe && (p == nil || lifecycle.ValidateProvider(p) != nil) {
			continue // an interface whose value is no provider
		}
		if err := lifecycle.ValidateProvider(p); err != nil {
			return nil, fmt.Errorf("provider constructor %s returned %w", d.where(), err)
		}
		id := p.ID()
		if other := s.byID[id]; other != nil {
			if !d.private || !other.d.private {
				return nil, duplicate(id, other, d, r.typ)
			}
			// Two fx.Private providers of one id, which fx keeps apart
			// in two fx.Modules (one module factory used twice, say):
			// named apart when the app starts (see nameApart), under a
			// name meanwhile that no provider's own id takes.
			id = s.freeID(id)
		}
		sl := slots[i]
		sl.id, sl.raw, sl.p, sl.args = id, v, p, slices.Clone(args)
		sl.heldThen = held(args, nil, s.byValue)
		s.slots = append(s.slots, sl)
		s.byID[id] = sl
		s.byResult[r] = append(s.byResult[r], sl)
		if k, ok := keyOf(v); ok {
			s.byValue[k] = sl
		}
		managed++
	}
	if managed == 0 && len(d.results) > 0 {
		// Every result that might have been a provider (an interface
		// without ID()) held none.
		return nil, fmt.Errorf("provider constructor %s returned no provider: no result's value has an ID() string method", d.where())
	}
	return outs, nil
}

// partsOf indexes a provider by its value's key k, and by the pointers its
// struct holds: a wrapper that holds the original's own parts (the
// connection an original embeds) wraps it as surely as one that holds the
// original.
func partsOf(k valueKey, sl *provider) map[valueKey]*provider {
	parts := map[valueKey]*provider{k: sl}
	v := sl.raw
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return parts
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		for i := range v.NumField() {
			if pk, ok := keyOf(v.Field(i)); ok {
				parts[pk] = sl
			}
		}
	}
	return parts
}

// freeID returns a name for a provider of id until nameApart names it:
// id, a NUL and a number, the first not taken. s.mu is held.
func (s *session) freeID(id string) string {
	for n := 2; ; n++ {
		if c := id + "\x00" + strconv.Itoa(n); s.byID[c] == nil {
			return c
		}
	}
}

func duplicate(id string, first *provider, d *decl, t reflect.Type) error {
	return fmt.Errorf("provider id %q is given twice: by %v from %s, and by %v from %s; each provider needs an id of its own: %w",
		id, reflect.TypeOf(first.p), first.d.where(), t, d.where(), lifecycle.ErrDuplicateID)
}

// received records the value that consumers of a provider receive. A
// decorator or fx.Replace may have changed it: the registry then manages
// that value, which is the one in use, and not the one its constructor
// built, which no one sees. A decorator that wraps the original (holds it)
// without lifecycle methods of its own leaves the original managed: the
// wrapper delegates to it.
func (s *session) received(r *result, v reflect.Value) error {
	if !v.IsValid() {
		return nil
	}
	p, ok := v.Interface().(lifecycle.Provider)
	if !ok || lifecycle.ValidateProvider(p) != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sl *provider
	for _, c := range s.byResult[r] {
		if sameValue(c.raw, v) {
			return nil
		}
		sl = c
	}
	if sl == nil || len(s.byResult[r]) > 1 {
		return nil // not built, or used in several modules: which one changed is unknown
	}
	var inner lifecycle.Provider
	if k, ok := keyOf(sl.raw); ok {
		if wraps := held(nil, []reflect.Value{v}, partsOf(k, sl)); len(wraps) > 0 {
			if !hasLifecycle(p) || p.ID() == sl.id {
				return nil // the wrapper delegates to the original, or cannot be told from it
			}
			inner = sl.p // a wrapper with a life of its own: both are managed
		}
	}
	if inner == nil && len(r.d.results) > 1 {
		// The constructor gives other results too: it was called for
		// them, and its value for this one is built, as in fx, where its
		// hooks would run. The value consumers receive instead replaced
		// it (fx.Replace, or a decorator): the test's or the decorator's
		// own, not this module's.
		return nil
	}
	if k, ok := keyOf(v); ok {
		for _, other := range s.slots {
			if other != sl && !other.dropped && (identifies(other.raw, k) || identifies(reflect.ValueOf(other.p), k)) {
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
		return duplicate(id, other, r.d, v.Type())
	}
	if inner != nil {
		if other := s.byID[id]; other != nil && other != sl {
			return duplicate(id, other, r.d, v.Type())
		}
		sl.inner, sl.innerCleaned = inner, make(chan struct{})
		s.byInner[sl.id] = sl
		delete(s.byID, sl.id)
		sl.id, sl.p, sl.replaced = id, p, true
		s.byID[id] = sl
		return nil
	}
	delete(s.byID, sl.id)
	sl.id, sl.p, sl.replaced = id, p, true
	s.byID[id] = sl
	return nil
}

// identifies reports whether k is the key of v.
func identifies(v reflect.Value, k valueKey) bool {
	kv, ok := keyOf(v)
	return ok && kv == k
}

// hasLifecycle reports whether p has an Initialize or a cleanup method.
func hasLifecycle(p lifecycle.Provider) bool {
	_, initializes := p.(lifecycle.Initializer)
	return initializes || lifecycle.CleanupMethod(p) != ""
}

// observe sees the registry's events: a Stop began, or a provider's
// cleanup ended.
func (s *session) observe(e lifecycle.Event) {
	s.stopBegan.observe(e)
	c, ok := e.(lifecycle.ProviderCleaned) // by Stop, or by an Unregister before it
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl := s.byInner[c.ID]; sl != nil {
		if sl.innerOutcome.Result == 0 {
			sl.innerOutcome = c.Outcome
			close(sl.innerCleaned)
		}
		return
	}
	sl := s.byID[c.ID]
	if sl != nil && sl.outcome.Result == 0 {
		sl.outcome = c.Outcome
		close(sl.cleaned)
	}
}

// waits reports whether a component the provider was built from has hooks:
// fx must not stop it before the provider's cleanup ends.
func (sl *provider) waits() bool { return len(sl.hooked) > 0 }
