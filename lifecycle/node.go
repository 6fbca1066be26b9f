package lifecycle

import (
	"context"
	"sync"
	"time"
)

// initState is where a provider is in its initialization.
type initState int

const (
	initPending initState = iota // registered; Initialize has not begun
	initStarted                  // Start reached it: Initialize is running
	initDone                     // initialized: it may be leased
	initFailed                   // Initialize failed, panicked or timed out
)

// node is one registered provider and everything the registry knows of it.
type node struct {
	// Set at registration, then only read.
	p       Provider
	id      string
	seq     uint64 // registration order: ties in Start's order follow it
	timeout time.Duration
	deps    []string // ids of the providers it uses
	staged  bool     // see Staged: StartProvider initializes it, Release frees its cleanup
	method  string   // the cleanup method's name, "" when it has none
	cleanup func(context.Context) error
	init    func(context.Context) error // nil when it has no Initialize
	health  func(context.Context) Health

	// Start's walk of the graph (initOrder), under the registry's mu.
	walk  uint64 // the number of the last walk it was part of
	color uint8  // where that walk is with it

	mu      sync.Mutex // guards the fields below
	state   initState
	initErr error // why Initialize failed, when state is initFailed
	// initReturned is closed when the Initialize method returns, which may
	// be long after Start stopped waiting for it. It is made by the first
	// cleanup that must wait for that, as most never do.
	initReturned chan struct{}
	initRunning  bool          // the Initialize method has begun and not returned
	leases       int           // leases handed out and not yet released
	drained      chan struct{} // closed when leases reach zero, once a cleanup waits for that
	job          *job          // the cleanup, once claimed; never replaced, so cleanup runs once
	released     bool          // Release was called: a Stop need not wait for it
	check        *healthCall   // the health check in flight, shared by concurrent callers
}

func newNode(p Provider, id string, reg registration) *node {
	n := &node{p: p, id: id, timeout: reg.timeout, deps: dedupe(reg.deps), staged: reg.staged}
	n.method, n.cleanup = cleanupMethod(p)
	if i, ok := p.(Initializer); ok {
		n.init = i.Initialize
	}
	if h, ok := p.(HealthChecker); ok {
		n.health = h.HealthCheck
	}
	return n
}

// cleanupMethod picks exactly one cleanup method, in the contract's order:
// Cleanup, else Shutdown, else Close() error, else Close().
func cleanupMethod(p Provider) (string, func(context.Context) error) {
	switch c := p.(type) {
	case Cleaner:
		return "Cleanup", c.Cleanup
	case Shutdowner:
		return "Shutdown", c.Shutdown
	case errCloser:
		return "Close", func(context.Context) error { return c.Close() }
	case closer:
		return "Close", func(context.Context) error { c.Close(); return nil }
	}
	return "", nil
}

// acquire hands out a lease unless the provider's cleanup has been claimed
// or it is not initialized. stopping is read under n.mu so that a cleanup,
// which takes n.mu to count leases after Stop set the flag, either sees this
// lease or makes Acquire fail: never neither.
func (n *node) acquire(stopping func() bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.job != nil || stopping():
		return ErrStopped
	case n.state != initDone:
		return ErrNotReady
	}
	n.leases++
	return nil
}

func (n *node) release() {
	n.mu.Lock()
	n.leases--
	if n.leases == 0 && n.drained != nil {
		close(n.drained)
		n.drained = nil
	}
	n.mu.Unlock()
}

// awaitLeases waits until every lease is released or ctx is done.
func (n *node) awaitLeases(ctx context.Context) error {
	n.mu.Lock()
	if n.leases == 0 {
		n.mu.Unlock()
		return nil
	}
	if n.drained == nil {
		n.drained = make(chan struct{})
	}
	drained := n.drained
	n.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// beginInit moves n to initializing unless its cleanup has been claimed or
// stopping has begun: Initialize never begins after either, so that a
// cleanup never races an Initialize that began after it. It reports
// whether Initialize may begin.
func (n *node) beginInit(stopping bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.job != nil || stopping || n.state != initPending {
		return false
	}
	n.state = initStarted
	if n.init != nil {
		n.initRunning = true
	}
	return true
}

// initReturns marks the Initialize method returned, in time or late.
func (n *node) initReturns() {
	n.mu.Lock()
	n.initRunning = false
	if n.initReturned != nil {
		close(n.initReturned)
	}
	n.mu.Unlock()
}

// initializing reports whether the Initialize method is running.
func (n *node) initializing() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.initRunning
}

// awaitInitAndLeases waits until the Initialize method, if it began, has
// returned (however long that takes: a cleanup must not run beside it),
// then until every lease is released or ctx is done.
func (n *node) awaitInitAndLeases(ctx context.Context) {
	n.mu.Lock()
	if n.initRunning && n.initReturned == nil {
		n.initReturned = make(chan struct{})
	}
	returned, leases := n.initReturned, n.leases
	n.mu.Unlock()
	if returned != nil {
		select {
		case <-returned:
		default:
			<-returned
			leases = n.leaseCount()
		}
	}
	if leases > 0 {
		_ = n.awaitLeases(ctx)
	}
}

// holdsOn reports whether a cleanup of n has something to wait for: an
// Initialize still running, or leases.
func (n *node) holdsOn() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.initRunning || n.leases > 0
}

func (n *node) leaseCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leases
}

func (n *node) setState(s initState, err error) {
	n.mu.Lock()
	n.state, n.initErr = s, err
	n.mu.Unlock()
}

func dedupe(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
