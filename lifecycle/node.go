package lifecycle

import (
	"context"
	"time"
)

// node is one registered provider and everything the registry knows of it.
type node struct {
	// Set by newNode, then only read.
	p       Provider
	id      string
	timeout time.Duration               // NoTimeout: the caller's context alone bounds it
	deps    []string                    // ids of the providers it uses
	staged  bool                        // see Staged: StartProvider initializes it, AllowCleanup frees its cleanup
	method  string                      // the cleanup method's name, "" when it has none
	clean   func(context.Context) error // the cleanup method; nil when it has none
	init    func(context.Context) error // nil when it has no Initialize
	health  func(context.Context) Health

	// Guarded by the registry's mu.
	state   ProviderState // StateRegistered, StateInitializing, StateReady or StateFailed
	initErr error         // why Initialize failed, once state is StateFailed
	// When its Initialize began, and how long it took (until the registry
	// stopped waiting for it, if it did), once it has ended: StartReport.
	initBegan     time.Time
	initTook      time.Duration
	joinedRunning bool          // registered while the registry ran: initialized by Register or StartProvider, not by the start
	call          *initCall     // its Initialize while it runs; a cleanup waits for call.done
	leases        int           // leases handed out and not yet released
	drained       chan struct{} // closed when leases reach zero; made by the first cleanup to wait
	cleanup       *cleanup      // set once, when claimed, and never replaced: cleanup runs once
	allowed       bool          // AllowCleanup was called: a Stop need not wait for it
	check         *healthCheck  // the health check in flight, shared by concurrent callers
}

func newNode(p Provider, id string, reg registration) *node {
	n := &node{p: p, id: id, timeout: reg.timeout, deps: dedupe(reg.deps), staged: reg.staged, state: StateRegistered}
	n.method, n.clean = cleanupMethod(p)
	if i, ok := p.(Initializer); ok {
		n.init = i.Initialize
	}
	if h, ok := p.(HealthChecker); ok {
		n.health = h.HealthCheck
	}
	return n
}

// bound returns ctx bounded by n's timeout, if it has one.
func (n *node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if n.timeout == NoTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.timeout)
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
