package lifecycletest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The properties, as the subtests of [Run] are named.
const (
	Lifecycle                = "Lifecycle"
	CleanupWithoutInitialize = "CleanupWithoutInitialize"
	ContextDone              = "ContextDone"
	Health                   = "Health"
	NoLeaks                  = "NoLeaks"
	Concurrent               = "Concurrent"
	Identity                 = "Identity"
)

// Properties are every property, in the order Run checks them.
var Properties = []string{Lifecycle, CleanupWithoutInitialize, ContextDone, Health, NoLeaks, Concurrent, Identity}

// Defaults of the bounds.
const (
	// DefaultBound is how long Initialize or a cleanup may go on once its
	// context is done: a close that needs no time still happens, and
	// nothing waits for a peer that does not answer.
	DefaultBound = time.Second
	// DefaultTimeout bounds a call whose context is not done: a peer's
	// handshake, a pool's first connection.
	DefaultTimeout = 30 * time.Second
)

// An Option changes what [Run] checks.
type Option func(*config)

type config struct {
	bound, timeout time.Duration
	skip           map[string]string
	secret         string
	held           []string
	failing        func(*testing.T) lifecycle.Provider
}

// Skip leaves property out; the test output says why.
func Skip(property, reason string) Option {
	return func(c *config) { c.skip[property] = reason }
}

// Bound sets how long Initialize or a cleanup may go on once its context
// is done ([DefaultBound]).
func Bound(d time.Duration) Option { return func(c *config) { c.bound = d } }

// Timeout bounds every call whose context is not done ([DefaultTimeout]).
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// Secret names a secret the providers' configuration holds (a password in
// a URL or a DSN): no error, health message or resource may carry it.
func Secret(s string) Option { return func(c *config) { c.secret = s } }

// Held names health resources, besides those Run knows, that the
// provider holds while initialized and must release in its cleanup: after
// it, a bool among them reads false and a number 0. Run knows open,
// running, connected, reachable, http_session, session, in_use, and the
// names open_*, *_open and *_in_flight.
func Held(keys ...string) Option { return func(c *config) { c.held = append(c.held, keys...) } }

// Failing gives a function that makes a provider whose Initialize fails
// (its server unreachable, its file not writable), for the properties that
// look at a failed Initialize. Without it, Run fails Initialize by giving
// it a context that is done.
func Failing(fresh func(*testing.T) lifecycle.Provider) Option {
	return func(c *config) { c.failing = fresh }
}

// Run checks that the providers fresh makes keep the contract, a subtest
// per property (see the package documentation). fresh is called once or
// more per property, and must make a new provider each time, holding
// nothing until its Initialize; what the provider talks to (a server, a
// database) is the test's to start, before Run. Run does not call
// t.Parallel: NoLeaks counts the process's goroutines and descriptors.
func Run(t *testing.T, fresh func(*testing.T) lifecycle.Provider, opts ...Option) {
	t.Helper()
	c := &config{bound: DefaultBound, timeout: DefaultTimeout, skip: map[string]string{}}
	for _, o := range opts {
		o(c)
	}
	for name := range c.skip {
		if !slices.Contains(Properties, name) {
			t.Fatalf("lifecycletest.Skip(%q): no such property; the properties are %v", name, Properties)
		}
	}
	k := &kit{config: c, fresh: fresh}
	checks := map[string]func(*testing.T){
		Lifecycle:                k.lifecycle,
		CleanupWithoutInitialize: k.cleanupWithoutInitialize,
		ContextDone:              k.contextDone,
		Health:                   k.health,
		NoLeaks:                  k.noLeaks,
		Concurrent:               k.concurrent,
		Identity:                 k.identity,
	}
	for _, name := range Properties {
		t.Run(name, func(t *testing.T) {
			if why, ok := c.skip[name]; ok {
				t.Skipf("skipped by the caller: %s", why)
			}
			checks[name](t)
		})
	}
}

// kit is one Run.
type kit struct {
	*config
	fresh func(*testing.T) lifecycle.Provider
}

// make calls fresh and checks what it made.
func (k *kit) make(t *testing.T) lifecycle.Provider {
	t.Helper()
	p := k.fresh(t)
	if err := lifecycle.ValidateProvider(p); err != nil {
		t.Fatalf("fresh made no provider the registry would take: %v", err)
	}
	return p
}

// outcome is what one call of a provider's method did.
type outcome struct {
	err      error
	panicked any
	took     time.Duration
	returned bool // within the wait
}

func (o outcome) String() string {
	switch {
	case !o.returned:
		return fmt.Sprintf("had not returned after %v", o.took.Round(time.Millisecond))
	case o.panicked != nil:
		return fmt.Sprintf("panicked: %v", o.panicked)
	case o.err != nil:
		return fmt.Sprintf("returned %q after %v", o.err, o.took.Round(time.Millisecond))
	}
	return fmt.Sprintf("returned nil after %v", o.took.Round(time.Millisecond))
}

// call runs f(ctx) on a goroutine of its own and waits for it at most
// wait. A call that has not returned is left running: the subtest fails.
func call(ctx context.Context, f func(context.Context) error, wait time.Duration) outcome {
	done := make(chan outcome, 1)
	began := time.Now()
	go func() {
		var o outcome
		defer func() {
			o.panicked = recover()
			o.took, o.returned = time.Since(began), true
			done <- o
		}()
		o.err = f(ctx)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case o := <-done:
		return o
	case <-t.C:
		return outcome{took: time.Since(began)}
	}
}

// initialize calls p's Initialize, if it has one, within the timeout.
func (k *kit) initialize(ctx context.Context, p lifecycle.Provider) outcome {
	i, ok := p.(lifecycle.Initializer)
	if !ok {
		return outcome{returned: true}
	}
	return call(ctx, i.Initialize, k.timeout)
}

// cleanup calls p's cleanup method, the one the registry would, within
// the timeout.
func (k *kit) cleanup(ctx context.Context, p lifecycle.Provider) outcome {
	f := lifecycle.CleanupFunc(p)
	if f == nil {
		return outcome{returned: true}
	}
	return call(ctx, f, k.timeout)
}

// mustInitialize initializes p or ends the subtest, with its cleanup
// registered.
func (k *kit) mustInitialize(t *testing.T, p lifecycle.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	if o := k.initialize(ctx, p); !o.returned || o.panicked != nil || o.err != nil {
		t.Fatalf("Initialize, with its peer up, %s", o)
	}
}

// done is a context that is done already.
func done() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
