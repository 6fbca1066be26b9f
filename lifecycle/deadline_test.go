package lifecycle_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The deadline path is the one this package exists for: a Stop whose
// context is already done when it begins (fx's StopTimeout used up by
// earlier hooks), or runs out at any moment while cleanups begin and end.
// Each of these tests would crash the process, hang, or lose a cleanup if a
// callback that another goroutine runs read something not yet published.

// counter is a provider whose cleanup counts its calls and does what it
// is told: return at once, take a little time, or ignore its context.
type counter struct {
	id       string
	kind     int // 0 instant, 1 slow (honours ctx), 2 ignores ctx until release
	release  <-chan struct{}
	cleanups atomic.Int32
}

func (c *counter) ID() string { return c.id }

func (c *counter) Cleanup(ctx context.Context) error {
	c.cleanups.Add(1)
	switch c.kind {
	case 1:
		select {
		case <-time.After(200 * time.Microsecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	case 2:
		<-c.release
	}
	return nil
}

// deadlineGraph registers n providers of mixed kinds: some independent,
// some in chains and diamonds, with timeouts down to a nanosecond.
func deadlineGraph(t *testing.T, rng *rand.Rand, n int, release <-chan struct{}) (*lifecycle.Registry, []*counter) {
	t.Helper()
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(wait))
	cs := make([]*counter, n)
	for i := range cs {
		c := &counter{id: fmt.Sprintf("p%d", i), kind: rng.IntN(3), release: release}
		cs[i] = c
		var opts []lifecycle.RegisterOption
		for j := 0; j < i; j++ {
			if rng.IntN(4) == 0 {
				opts = append(opts, lifecycle.DependsOn(cs[j].id))
			}
		}
		switch rng.IntN(4) {
		case 0:
			opts = append(opts, lifecycle.Timeout(time.Nanosecond))
		case 1:
			opts = append(opts, lifecycle.Timeout(time.Duration(rng.IntN(300))*time.Microsecond+time.Nanosecond))
		}
		mustRegister(t, r, c, opts...)
	}
	require.NoError(t, r.Start(context.Background()))
	return r, cs
}

// stopContext returns a context that is already done, or whose deadline
// falls within a few hundred microseconds: before, during or after the
// cleanups begin.
func stopContext(rng *rand.Rand) (context.Context, context.CancelFunc) {
	switch rng.IntN(3) {
	case 0:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	case 1:
		return context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	default:
		return context.WithTimeout(context.Background(), time.Duration(rng.IntN(500))*time.Microsecond)
	}
}

// Property 5 and 6: many Stops at once, each with a context that is done
// or about to be, on graphs of every shape. None crashes, each returns
// within its bound, each reports every provider, and every cleanup runs
// exactly once in the end.
func TestStopWithDoneAndNearlyDoneContexts(t *testing.T) {
	settled := testkit.Settle(t)
	release, open := gate(t)
	const registries = 64
	var wg sync.WaitGroup
	type result struct {
		r   *lifecycle.Registry
		cs  []*counter
		err error
	}
	results := make([]result, registries)
	for i := range registries {
		rng := rand.New(rand.NewPCG(uint64(i), 8))
		r, cs := deadlineGraph(t, rng, 1+rng.IntN(40), release)
		results[i] = result{r: r, cs: cs}
		ctx, cancel := stopContext(rng)
		wg.Go(func() {
			defer cancel()
			results[i].err = r.Stop(ctx)
		})
	}
	within(t, "every Stop", wg.Wait)
	for i, res := range results {
		rep := res.r.Report()
		require.Len(t, rep.Providers, len(res.cs), "registry %d: every provider is in the report", i)
		for _, c := range res.cs {
			o, ok := rep.Providers[c.id]
			require.True(t, ok, "registry %d: %s missing from the report", i, c.id)
			if o.Result.Failed() {
				assert.ErrorContains(t, res.err, fmt.Sprintf("%q", c.id), "registry %d: Stop's error names %s", i, c.id)
			}
		}
	}
	open()
	for i, res := range results {
		for _, c := range res.cs {
			if !assert.Eventually(t, func() bool { return c.cleanups.Load() == 1 }, wait, time.Millisecond) {
				t.Fatalf("registry %d: %s cleaned up %d times; outcome %+v; info %+v", i, c.id, c.cleanups.Load(), res.r.Report().Providers[c.id], res.r.Providers())
			}
		}
	}
	// No cleanup runs twice, even late: once the registries' goroutines
	// have ended, none can.
	settled()
	for _, res := range results {
		for _, c := range res.cs {
			require.EqualValues(t, 1, c.cleanups.Load(), c.id)
		}
	}
}

// Unregister with a request context that has run out, or is about to: the
// cleanup still runs exactly once, and Unregister returns.
func TestUnregisterWithDoneAndNearlyDoneContexts(t *testing.T) {
	release, open := gate(t)
	rng := rand.New(rand.NewPCG(3, 4))
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(wait))
	const n = 200
	cs := make([]*counter, n)
	for i := range cs {
		cs[i] = &counter{id: fmt.Sprintf("p%d", i), kind: rng.IntN(3), release: release}
		opts := []lifecycle.RegisterOption{}
		if rng.IntN(2) == 0 {
			opts = append(opts, lifecycle.Timeout(time.Duration(rng.IntN(100))*time.Microsecond+time.Nanosecond))
		}
		mustRegister(t, r, cs[i], opts...)
	}
	require.NoError(t, r.Start(context.Background()))
	var wg sync.WaitGroup
	for _, c := range cs {
		ctx, cancel := stopContext(rng)
		wg.Go(func() {
			defer cancel()
			_ = r.Unregister(ctx, c.id)
		})
	}
	within(t, "every Unregister", wg.Wait)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.Stop(ctx)
	open()
	for _, c := range cs {
		eventually(t, c.id+" cleaned up once", func() bool { return c.cleanups.Load() == 1 })
	}
}

// Stop while Start is still initializing, with a context that runs out
// during it: nothing crashes, and Stop returns.
func TestStopWithDoneContextDuringStart(t *testing.T) {
	for i := range 50 {
		rng := rand.New(rand.NewPCG(uint64(i), 99))
		r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(time.Millisecond))
		for j := range 10 {
			f := newFake(fmt.Sprintf("p%d", j), &journal{})
			f.initialize = sleeping(time.Duration(rng.IntN(200)) * time.Microsecond)
			f.cleanup = sleeping(time.Duration(rng.IntN(200)) * time.Microsecond)
			mustRegister(t, r, f)
		}
		started := make(chan error, 1)
		go func() { started <- r.Start(context.Background()) }()
		ctx, cancel := stopContext(rng)
		within(t, "Stop", func() { _ = r.Stop(ctx) })
		cancel()
		testkit.Receive(t, started, "Start")
	}
}

// Property 7: a cleanup that Stop abandoned and that returns afterwards has
// its real result in the report, marked late; one that overran its own
// timeout stays timed out. Either way the late return is an event. On
// synctest's clock the 20ms timeout, which bounds Initialize too, passes
// only while every goroutine waits, however loaded the machine.
func TestLateResultsReplaceAbandoned(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration // the provider's own
		stopIn     time.Duration // Stop's context
		returns    error
		wantBefore lifecycle.Result
		wantAfter  lifecycle.Result
		wantLate   bool
	}{
		{"abandoned, then ok", time.Hour, 20 * time.Millisecond, nil, lifecycle.ResultAbandoned, lifecycle.ResultOK, true},
		{"abandoned, then an error", time.Hour, 20 * time.Millisecond, errBoom, lifecycle.ResultAbandoned, lifecycle.ResultError, true},
		{"timed out, then ok", 20 * time.Millisecond, time.Hour, nil, lifecycle.ResultTimeout, lifecycle.ResultTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release, open := gate(t)
				obs := &events{}
				r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
				f := newFake("f", &journal{})
				f.cleanup = func(context.Context) error { <-release; return tt.returns }
				mustRegister(t, r, f, lifecycle.Timeout(tt.timeout))
				require.NoError(t, r.Start(context.Background()))
				ctx, cancel := context.WithTimeout(context.Background(), tt.stopIn)
				defer cancel()
				require.Error(t, r.Stop(ctx))
				before := r.Report().Providers["f"]
				require.Equal(t, tt.wantBefore, before.Result)
				require.False(t, before.Late)

				open()
				synctest.Wait()
				assert.True(t, slices.ContainsFunc(obs.snapshot(), func(e lifecycle.Event) bool {
					late, ok := e.(lifecycle.ProviderReturnedLate)
					return ok && late.ID == "f" && late.Op == "cleanup"
				}), "the late return is an event")
				after := r.Report().Providers["f"]
				assert.Equal(t, tt.wantAfter, after.Result)
				assert.Equal(t, tt.wantLate, after.Late)
				if tt.returns != nil {
					assert.ErrorIs(t, after.Err, tt.returns)
				}
				var info *lifecycle.Outcome
				for _, p := range r.Providers() {
					if p.ID == "f" {
						info = p.Outcome
					}
				}
				require.NotNil(t, info)
				assert.Equal(t, after, *info, "Providers agrees with Report")
			})
		})
	}
}

// chaosProvider's cleanup is quick, slow (honouring its context), ignores
// its context until released, or panics once its context is done.
type chaosProvider struct {
	id       string
	kind     int
	release  <-chan struct{}
	inits    atomic.Int32
	cleanups atomic.Int32
	initing  atomic.Bool
	overlap  atomic.Bool
}

func (p *chaosProvider) ID() string { return p.id }

func (p *chaosProvider) Initialize(context.Context) error {
	p.inits.Add(1)
	p.initing.Store(true)
	defer p.initing.Store(false)
	return nil
}

func (p *chaosProvider) Cleanup(ctx context.Context) error {
	p.cleanups.Add(1)
	if p.initing.Load() {
		p.overlap.Store(true)
	}
	switch p.kind {
	case 1:
		select {
		case <-time.After(100 * time.Microsecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	case 2:
		<-p.release
	case 3:
		<-ctx.Done()
		panic("late panic")
	}
	return nil
}

// Random graphs whose Stop races Start, Unregister (with live and nearly
// done contexts), Register, Health and leases on providers without a
// cleanup method, with Stop contexts done or about to be. Nothing hangs;
// every provider still registered is in the report; every
// provider whose Initialize began is cleaned up once, never beside it.
func TestRandomGraphsRacingEveryOperation(t *testing.T) {
	settled := testkit.Settle(t)
	release, open := gate(t)
	var all []*chaosProvider
	for round := range 60 {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(2 * time.Millisecond))
		n := 3 + rng.IntN(12)
		ps := make([]*chaosProvider, n)
		for i := range ps {
			ps[i] = &chaosProvider{id: fmt.Sprintf("p%d", i), kind: rng.IntN(4), release: release}
			var opts []lifecycle.RegisterOption
			for j := range i {
				if rng.IntN(3) == 0 {
					opts = append(opts, lifecycle.DependsOn(ps[j].id))
				}
			}
			switch rng.IntN(3) {
			case 0:
				opts = append(opts, lifecycle.Timeout(time.Nanosecond))
			case 1:
				opts = append(opts, lifecycle.Timeout(time.Duration(1+rng.IntN(500))*time.Microsecond))
			}
			mustRegister(t, r, ps[i], opts...)
		}
		all = append(all, ps...)
		bares := []string{"bare0", "bare1"}
		for _, id := range bares {
			mustRegister(t, r, &bare{id: id}, lifecycle.DependsOn(ps[rng.IntN(n)].id))
		}
		startCtx, cancelStart := context.WithTimeout(context.Background(), time.Duration(rng.IntN(300))*time.Microsecond)
		started := make(chan struct{})
		go func() { defer close(started); _ = r.Start(startCtx) }()
		if rng.IntN(2) == 0 {
			testkit.Receive(t, started, "Start")
		}
		var leases []func()
		for _, id := range bares {
			if _, rel, err := r.Acquire(context.Background(), id); err == nil {
				leases = append(leases, rel)
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { _ = r.Unregister(context.Background(), ps[n-1].id) })
		unregWithin := time.Duration(rng.IntN(100)) * time.Microsecond
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), unregWithin)
			defer cancel()
			_ = r.Unregister(ctx, "bare0")
		})
		wg.Go(func() { _ = r.Register(&chaosProvider{id: "late", release: release}) })
		wg.Go(func() { _ = r.Health(context.Background()) })
		wg.Go(func() {
			for _, rel := range leases {
				time.Sleep(50 * time.Microsecond) // spreads the releases over the Stop; asserts nothing
				rel()
			}
		})
		ctx, cancel := stopContext(rng)
		within(t, "Stop", func() { _ = r.Stop(ctx) })
		cancel()
		within(t, "the racing operations", wg.Wait)
		testkit.Receive(t, started, "Start")
		cancelStart()
		rep := r.Report()
		for _, id := range r.IDs() {
			assert.Contains(t, rep.Providers, id, "round %d: registered, not in the report", round)
		}
	}
	open()
	for _, p := range all {
		eventually(t, p.id+" cleaned up once if initialized", func() bool { return p.cleanups.Load() == p.inits.Load() })
		assert.False(t, p.overlap.Load(), "%s: cleanup beside Initialize", p.id)
	}
	settled() // no goroutine is left to run a cleanup twice
	for _, p := range all {
		assert.Equal(t, p.inits.Load(), p.cleanups.Load(), p.id)
	}
}
