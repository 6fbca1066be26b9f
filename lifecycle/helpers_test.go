package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait in these tests: a test that would hang fails.
const wait = testkit.Wait

// journal records what providers did, in order.
type journal = testkit.Journal

var (
	gate   = testkit.Gate
	within = testkit.Within
)

// fake is a provider whose every method can be told what to do. It counts
// its calls and records them in a journal.
type fake struct {
	id  string
	jnl *journal

	initialize func(ctx context.Context) error
	cleanup    func(ctx context.Context) error
	health     func(ctx context.Context) lifecycle.Health

	inits    atomic.Int32
	cleanups atomic.Int32
}

func newFake(id string, jnl *journal) *fake { return &fake{id: id, jnl: jnl} }

func (f *fake) ID() string { return f.id }

func (f *fake) Initialize(ctx context.Context) error {
	f.inits.Add(1)
	f.jnl.Add("init " + f.id)
	if f.initialize != nil {
		return f.initialize(ctx)
	}
	return nil
}

func (f *fake) Cleanup(ctx context.Context) error {
	f.cleanups.Add(1)
	f.jnl.Add("begin " + f.id)
	var err error
	if f.cleanup != nil {
		err = f.cleanup(ctx)
	}
	f.jnl.Add("end " + f.id)
	return err
}

func (f *fake) HealthCheck(ctx context.Context) lifecycle.Health {
	if f.health != nil {
		return f.health(ctx)
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "fine"}
}

// ignoring returns a method that ignores its context and returns only when
// release is closed: the provider every shutdown has met.
func ignoring(release <-chan struct{}) func(context.Context) error {
	return func(context.Context) error {
		<-release
		return nil
	}
}

// sleeping returns a method that takes d, or less if its context ends.
func sleeping(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func failing(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func panicking(v any) func(context.Context) error {
	return func(context.Context) error { panic(v) }
}

// eventually waits, within the test's bound, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, wait, time.Millisecond, what)
}

// events collects what an Observer receives.
type events struct {
	mu  sync.Mutex
	all []lifecycle.Event
}

func (e *events) Observe(ev lifecycle.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) snapshot() []lifecycle.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (e *events) cleaned() []lifecycle.ProviderCleaned {
	var out []lifecycle.ProviderCleaned
	for _, ev := range e.snapshot() {
		if c, ok := ev.(lifecycle.ProviderCleaned); ok {
			out = append(out, c)
		}
	}
	return out
}

func mustRegister(t *testing.T, r *lifecycle.Registry, p lifecycle.Provider, opts ...lifecycle.RegisterOption) {
	t.Helper()
	require.NoError(t, r.Register(p, opts...))
}

// started returns a started registry that holds f, registered with opts.
func started(t *testing.T, f *fake, opts ...lifecycle.RegisterOption) *lifecycle.Registry {
	t.Helper()
	r := lifecycle.NewRegistry()
	mustRegister(t, r, f, opts...)
	require.NoError(t, r.Start(context.Background()))
	return r
}

var errBoom = errors.New("boom")
