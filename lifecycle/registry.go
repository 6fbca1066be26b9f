package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
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

// Registry holds providers and runs their lifecycle: initialization in
// dependency order, leases for units of work, health checks, and cleanup in
// dependency order, concurrently where the order allows, each bounded by a
// timeout. The zero value is not usable; build one with [NewRegistry].
type Registry struct {
	// Set by NewRegistry, then only read.
	timeout       time.Duration
	healthTimeout time.Duration
	observers     []Observer   // the zap observer first, then the user's
	log           *zap.Logger  // the zap observer's: an observer's panic is logged here
	watched       bool         // an observer besides the zap observer was given
	tracer        trace.Tracer // nil: no spans (WithTracerProvider)

	mu          sync.Mutex // the registry's one lock: guards the fields below, and every node's and cleanup's
	phase       phase
	nodes       map[string]*node
	order       []*node            // the nodes of nodes, in registration order
	startBegan  time.Time          // when Start was called
	startSpan   trace.Span         // the start's span until the start is over (settleStart); nil without a tracer
	startDone   chan struct{}      // closed when Start returns; nil before Start
	startErr    error              // Start's result, once startDone is closed
	cancelStart context.CancelFunc // cancels Start's initializations, for Stop
	stopDone    chan struct{}      // closed when Stop returns; nil before Stop
	stopErr     error              // Stop's result, once stopDone is closed
	// reported holds the runs of the rollback and of Stop: Report reads
	// their cleanups' outcomes when asked, so that late results show.
	reported       []*run
	reportDuration time.Duration
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
	log := zap.NewNop()
	if c.logger != nil {
		log = c.logger.Named("gleitzeit")
	}
	return &Registry{
		timeout:       c.timeout,
		healthTimeout: c.healthTimeout,
		observers:     append([]Observer{zapObserver{log}}, c.observers...),
		log:           log,
		watched:       len(c.observers) > 0,
		tracer:        c.tracer,
		nodes:         make(map[string]*node),
	}
}

// listening reports whether anyone takes the routine events (a provider
// registered, initialized or cleaned up without trouble): an observer, or
// the logger at debug level, which may be turned on while the service
// runs. Those events are built only then; failures always are.
func (r *Registry) listening() bool {
	return r.watched || r.log.Core().Enabled(zapcore.DebugLevel)
}

// emit gives e to every observer, in order. It is never called with mu
// held, so that an observer may call the registry.
func (r *Registry) emit(e Event) {
	for _, o := range r.observers {
		r.observe(o, e)
	}
}

// observe calls one observer. A panic in it is logged and goes no
// further: an observer is there to watch, and must not fail a Stop, skip a
// cleanup or crash the goroutine that runs one.
func (r *Registry) observe(o Observer, e Event) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("observer panicked", zap.String("event", fmt.Sprintf("%T", e)),
				zap.String("panic", Redact(fmt.Sprint(v))), zap.StackSkip("stack", 1))
		}
	}()
	o.Observe(e)
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
	if err := ValidateProvider(p); err != nil {
		id := ""
		if !isNil(p) {
			id = p.ID()
		}
		return providerError(id, "register", err)
	}
	reg := registration{timeout: r.timeout}
	for _, o := range opts {
		if o != nil {
			o.applyRegister(&reg)
		}
	}
	id := reg.id
	if id == "" {
		id = p.ID()
	}
	n := newNode(p, id, reg)

	r.mu.Lock()
	err := r.admit(n)
	running := r.phase == phaseRunning
	n.joinedRunning = running
	r.mu.Unlock()
	if err != nil {
		return providerError(n.id, "register", err)
	}
	if r.listening() {
		r.emit(ProviderRegistered{ID: n.id, DependsOn: n.deps, Timeout: n.timeout})
	}
	if running && !n.staged {
		ctx, span := r.span(context.Background(), "gleitzeit.register", AttrProviderID.String(n.id))
		err := r.initializeLate(ctx, n)
		endSpan(span, err)
		return err
	}
	return nil
}

// admit adds n to the registry, or says why it may not join. r.mu is
// held.
func (r *Registry) admit(n *node) error {
	switch {
	case r.phase >= phaseStopping:
		return ErrStopped
	case r.nodes[n.id] != nil:
		return ErrDuplicateID
	case r.phase == phaseStartFailed:
		return fmt.Errorf("the registry failed to start: %w", ErrStopped)
	}
	if err := r.checkDeps(n, r.phase == phaseRunning && !n.staged); err != nil {
		return err
	}
	r.nodes[n.id] = n
	r.order = append(r.order, n)
	return nil
}

// checkDeps refuses a dependency whose cleanup has been claimed: that
// cleanup may have begun already, so it could not wait for n's. If
// initNow, n is about to be initialized, so every dependency must moreover
// be registered and initialized; otherwise an unknown id is left for Start
// to report. r.mu is held.
func (r *Registry) checkDeps(n *node, initNow bool) error {
	for _, id := range n.deps {
		if id == n.id {
			return fmt.Errorf("depends on itself: %w", ErrCycle)
		}
		d := r.nodes[id]
		switch {
		case d == nil && initNow:
			return fmt.Errorf("depends on %q: %w", id, ErrNotFound)
		case d == nil:
		case d.cleanup != nil:
			return fmt.Errorf("depends on %q, which is being cleaned up: %w", id, ErrStopped)
		case initNow && d.state != StateReady:
			return fmt.Errorf("depends on %q: %w", id, ErrNotReady)
		}
	}
	return nil
}

// initializeLate initializes a provider registered while the registry runs.
// On failure it cleans the provider up (it may hold half of its resources)
// and removes it, unless Stop has claimed it in the meantime.
func (r *Registry) initializeLate(ctx context.Context, n *node) error {
	err := r.initialize(ctx, n)
	if errors.Is(err, errNotBegun) { // Stop or Unregister claimed it first
		return providerError(n.id, "register", err)
	}
	if err == nil {
		return nil
	}
	r.mu.Lock()
	c, mine := r.claim(n, TriggerRollback, ctx)
	r.mu.Unlock()
	if mine {
		r.cleanupOne(c) // bounded by the provider's timeout
		r.mu.Lock()
		r.remove(n)
		o := c.out
		r.mu.Unlock()
		r.cleaned(c, o, nil)
		r.emit(endedOne(TriggerRollback, n.id, o))
	}
	return err
}

// remove deletes n from the registry, unless another provider has taken
// its id since. r.mu is held.
func (r *Registry) remove(n *node) {
	if r.nodes[n.id] != n {
		return
	}
	delete(r.nodes, n.id)
	if i := slices.Index(r.order, n); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	}
}

// IDs returns the ids of the registered providers in registration order.
func (r *Registry) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.order))
	for i, n := range r.order {
		ids[i] = n.id
	}
	return ids
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}
