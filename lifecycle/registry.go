package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// phase is where the registry is in its life. It only moves forward.
type phase int

const (
	phaseIdle        phase = iota // built; providers may be registered
	phaseStarting                 // Start is initializing providers
	phaseRunning                  // started; Register initializes at once
	phaseStartFailed              // Start failed and rolled back
	phaseStopping                 // Stop began: nothing new is accepted
	phaseStopped                  // Stop ended
)

var phaseNames = [...]string{"idle", "starting", "running", "start failed", "stopping", "stopped"}

func (p phase) String() string { return phaseNames[p] }

// Registry holds providers and runs their lifecycle: initialization in
// dependency order, leases for units of work, health checks, and cleanup in
// dependency order, concurrently where the order allows, each bounded by a
// timeout. The zero value is not usable; build one with [NewRegistry].
type Registry struct {
	timeout       time.Duration
	healthTimeout time.Duration
	observers     []Observer  // the zap observer first, then the user's
	log           *zap.Logger // the zap observer's, for its level
	hasObservers  bool        // observers besides the logger

	// stopping is set once Stop begins and never cleared. Acquire reads it
	// without taking mu.
	stopping atomic.Bool

	mu          sync.RWMutex // guards the fields below
	phase       phase
	nodes       map[string]*node
	order       []*node            // the nodes of nodes, in registration order
	seq         uint64             // registration counter
	startDone   chan struct{}      // closed when Start returns; nil before Start
	startErr    error              // Start's result, once startDone is closed
	cancelStart context.CancelFunc // cancels Start's initializations, for Stop
	stopDone    chan struct{}      // closed when Stop's work has ended; nil before Stop
	stopErr     error              // Stop's result, once stopDone is closed
	// reported holds the runs of the rollback and of Stop: Report reads
	// their jobs' outcomes when asked, so that late results show.
	reported       []*run
	reportDuration time.Duration
	walks          uint64 // initOrder's walks so far: each marks its nodes with its number
}

// NewRegistry returns an empty registry. With no options it logs nowhere,
// gives each provider [DefaultTimeout] and each health check
// [DefaultHealthTimeout].
func NewRegistry(opts ...Option) *Registry {
	c := config{timeout: DefaultTimeout, healthTimeout: DefaultHealthTimeout}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	r := &Registry{
		timeout:       c.timeout,
		healthTimeout: c.healthTimeout,
		nodes:         make(map[string]*node),
	}
	log := zap.NewNop()
	if c.logger != nil {
		log = c.logger.Named("gleitzeit")
	}
	r.observers = append(r.observers, zapObserver{log})
	r.observers = append(r.observers, c.observers...)
	r.log, r.hasObservers = log, len(c.observers) > 0
	return r
}

// quiet reports that no one listens for routine events (a provider
// registered, initialized or cleaned up without trouble): no observer but
// the logger, which does not log at debug level now. It is asked each
// time, since a logger's level may change while the service runs.
func (r *Registry) quiet() bool {
	return !r.hasObservers && !r.log.Core().Enabled(zapcore.DebugLevel)
}

func (r *Registry) emit(e Event) {
	for _, o := range r.observers {
		o.Observe(e)
	}
}

// Register adds a provider. The id must not be registered already
// ([ErrDuplicateID]), and Stop must not have begun ([ErrStopped]); a
// registry whose Start failed takes no more providers either. No provider
// may depend on one whose cleanup has been claimed.
//
// Before Start, Register only records the provider; Start initializes it.
// Once the registry is running, Register initializes the provider at once,
// bounded by its timeout, and every provider it depends on must be
// registered and initialized already. If that Initialize fails, the
// provider is cleaned up and not registered, and Register returns the
// error.
func (r *Registry) Register(p Provider, opts ...RegisterOption) error {
	if isNil(p) {
		return providerError("", "register", errors.New("nil provider"))
	}
	id := p.ID()
	if id == "" {
		return providerError("", "register", fmt.Errorf("provider of type %T has an empty id", p))
	}
	reg := registration{timeout: r.timeout}
	for _, o := range opts {
		if o != nil {
			o.applyRegister(&reg)
		}
	}
	n := newNode(p, id, reg)

	r.mu.Lock()
	if r.phase >= phaseStopping {
		r.mu.Unlock()
		return providerError(id, "register", ErrStopped)
	}
	if _, dup := r.nodes[id]; dup {
		r.mu.Unlock()
		return providerError(id, "register", ErrDuplicateID)
	}
	if r.phase == phaseStartFailed {
		r.mu.Unlock()
		return providerError(id, "register", fmt.Errorf("the registry failed to start: %w", ErrStopped))
	}
	running := r.phase == phaseRunning
	if err := r.checkDeps(n, running && !n.staged); err != nil {
		r.mu.Unlock()
		return providerError(id, "register", err)
	}
	r.seq++
	n.seq = r.seq
	r.nodes[id] = n
	r.order = append(r.order, n)
	r.mu.Unlock()

	if !r.quiet() { // only the logger's debug level and observers want this
		r.emit(ProviderRegistered{ID: id, DependsOn: n.deps, Timeout: n.timeout})
	}
	if running && !n.staged {
		return r.initializeLate(n)
	}
	return nil
}

// checkDeps refuses a dependency that is being cleaned up or was cleaned
// up: that provider's cleanup may have begun already, so it could not wait
// for n's. While the registry runs, every dependency must moreover be
// registered and initialized, since n is initialized at once; before Start,
// an unknown id is left for Start to report. r.mu is held.
func (r *Registry) checkDeps(n *node, running bool) error {
	for _, id := range n.deps {
		if id == n.id {
			return fmt.Errorf("depends on itself: %w", ErrCycle)
		}
		d := r.nodes[id]
		if d == nil {
			if running {
				return fmt.Errorf("depends on %q: %w", id, ErrNotFound)
			}
			continue
		}
		d.mu.Lock()
		state, claimed := d.state, d.job != nil
		d.mu.Unlock()
		switch {
		case claimed:
			return fmt.Errorf("depends on %q, which is being cleaned up: %w", id, ErrStopped)
		case running && state != initDone:
			return fmt.Errorf("depends on %q: %w", id, ErrNotReady)
		}
	}
	return nil
}

// initializeLate initializes a provider registered while the registry runs.
// On failure it cleans the provider up (it may hold half of its resources)
// and removes it, unless Stop has claimed it in the meantime.
func (r *Registry) initializeLate(n *node) error {
	err := r.initialize(context.Background(), n)
	if errors.Is(err, errNotBegun) {
		return providerError(n.id, "register", ErrStopped) // Stop claimed it first
	}
	if err == nil {
		return nil
	}
	if j := claim(n, TriggerRollback, nil, nil); j != nil {
		r.emit(CleanupBegan{Trigger: TriggerRollback, Providers: 1})
		r.begin(context.Background(), n.timeout, []*job{j}, nil)
		<-j.wait() // bounded: the job ends by its deadline
		o, _ := j.outcome()
		r.emit(ProviderCleaned{ID: n.id, Trigger: TriggerRollback, Outcome: o})
		r.emit(endedOne(TriggerRollback, n.id, o))
		r.remove(n)
	}
	return err
}

// remove deletes n from the registry, unless another provider has taken its
// id since.
func (r *Registry) remove(n *node) {
	r.mu.Lock()
	if r.nodes[n.id] == n {
		delete(r.nodes, n.id)
		// order is sorted by seq: find n by binary search.
		if i, ok := slices.BinarySearchFunc(r.order, n.seq, func(m *node, seq uint64) int { return cmp.Compare(m.seq, seq) }); ok {
			r.order = slices.Delete(r.order, i, i+1)
		}
	}
	r.mu.Unlock()
}

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
	if r.stopping.Load() {
		return nil, noop, providerError(id, "acquire", ErrStopped)
	}
	r.mu.RLock()
	n := r.nodes[id]
	r.mu.RUnlock()
	if n == nil {
		return nil, noop, providerError(id, "acquire", ErrNotFound)
	}
	if err := n.acquire(r.stopping.Load); err != nil {
		return nil, noop, providerError(id, "acquire", err)
	}
	var released atomic.Bool
	return n.p, func() {
		if released.CompareAndSwap(false, true) {
			n.release()
		}
	}, nil
}

func noop() {}

// IDs returns the ids of the registered providers in registration order.
func (r *Registry) IDs() []string {
	r.mu.RLock()
	nodes := r.sortedNodes()
	r.mu.RUnlock()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	return ids
}

// sortedNodes returns the registered nodes in registration order: a copy,
// for use once r.mu is released. r.mu is held.
func (r *Registry) sortedNodes() []*node {
	return slices.Clone(r.order)
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}

// isNil reports whether p is nil or a typed nil pointer, which would panic
// on its first method call.
func isNil(p Provider) bool {
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
