package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// behaviour is what a fuzzed provider's Initialize or Cleanup does.
type behaviour byte

const (
	behaveOK      behaviour = iota // returns nil at once
	behaveError                    // returns an error at once
	behavePanic                    // panics at once
	behaveOverrun                  // ignores its context until the run ends
	behaveSlow                     // takes a little time, honouring its context
	behaviours
)

// instant reports whether a cleanup with this behaviour ends by returning,
// before any deadline, so that the registry's "ended" is its return.
func (b behaviour) instant() bool { return b == behaveOK || b == behaveError || b == behavePanic }

// fuzzProvider records, on a clock shared by the run, when its cleanup
// began and returned, and catches a cleanup that runs while a lease is
// held. The plan's providers are templates: each registration copies one.
type fuzzProvider struct {
	id       string
	deps     []string
	init     behaviour
	clean    behaviour
	clock    *atomic.Int64
	release  <-chan struct{}
	cleanups atomic.Int32
	inits    atomic.Int32
	initing  atomic.Bool // its Initialize is running
	accepted bool        // the registry took this registration; guarded by the run's mutex
	regEnd   int64       // the clock when Register returned
	began    atomic.Int64
	ended    atomic.Int64
	inUse    atomic.Int32
	misuse   atomic.Bool // cleanup ran, within its deadline, while a lease was held
	overlap  atomic.Bool // cleanup ran while Initialize was running
	cut      atomic.Bool // cleanup began with its context done: begun by a Stop cut short
}

func (p *fuzzProvider) ID() string { return p.id }

func (p *fuzzProvider) Initialize(ctx context.Context) error {
	p.inits.Add(1)
	p.initing.Store(true)
	defer p.initing.Store(false)
	return p.act(ctx, p.init)
}

func (p *fuzzProvider) Cleanup(ctx context.Context) error {
	p.cleanups.Add(1)
	p.began.Store(p.clock.Add(1))
	if p.inUse.Load() > 0 && ctx.Err() == nil {
		p.misuse.Store(true)
	}
	if p.initing.Load() {
		p.overlap.Store(true)
	}
	if ctx.Err() != nil {
		p.cut.Store(true)
	}
	defer func() { p.ended.Store(p.clock.Add(1)) }()
	return p.act(ctx, p.clean)
}

func (p *fuzzProvider) act(ctx context.Context, b behaviour) error {
	switch b {
	case behaveError:
		return errBoom
	case behavePanic:
		panic("fuzzed panic")
	case behaveOverrun:
		<-p.release
	case behaveSlow:
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// plan is a fuzz input decoded: the providers, and the operations each
// goroutine performs.
type plan struct {
	providers []*fuzzProvider
	early     int      // providers[:early] are registered before the goroutines start
	ops       [][]byte // per goroutine
}

// reader hands out the fuzz input a byte at a time, then zeros.
type reader struct{ data []byte }

func (r *reader) next() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

const goroutines = 3

func decode(data []byte, clock *atomic.Int64, release <-chan struct{}) plan {
	r := &reader{data}
	n := 2 + int(r.next()%10)
	var pl plan
	pl.early = 1 + int(r.next())%n
	for i := 0; i < n; i++ {
		p := &fuzzProvider{id: fmt.Sprintf("p%d", i), clock: clock, release: release}
		p.init = behaviour(r.next()) % behaviours
		if r.next()%4 != 0 { // most Initialize calls succeed, so Start gets somewhere
			p.init = behaveOK
		}
		p.clean = behaviour(r.next()) % behaviours
		mask := r.next()
		for j := 0; j < i && j < 8; j++ {
			if mask&(1<<j) != 0 {
				p.deps = append(p.deps, fmt.Sprintf("p%d", j))
			}
		}
		pl.providers = append(pl.providers, p)
	}
	pl.ops = make([][]byte, goroutines)
	for len(r.data) > 0 {
		b := r.next()
		g := int(b) % goroutines
		pl.ops[g] = append(pl.ops[g], b/goroutines)
	}
	return pl
}

// FuzzRegistry drives random interleavings of Register, Unregister, Acquire
// and release, Start, Stop and Health from several goroutines against
// providers that succeed, fail, panic or overrun, with live contexts and
// with contexts that are done already or run out at random points. After
// each run it checks: every provider whose Initialize began was cleaned up
// exactly once, and no other; no cleanup ran beside its Initialize or
// while a lease was held; no dependency's cleanup began before its
// dependent's had ended (unless a done context began it); no goroutine was
// left behind; and nothing crashed or hung.
func FuzzRegistry(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 3, 0, 3, 6, 9, 12, 15})
	f.Add([]byte{9, 3, 0, 0, 3, 0, 0, 0, 1, 1, 0, 0, 2, 3, 0, 0, 4, 7, 1, 1, 3, 15, 2, 2, 1, 31, 0, 0, 0, 255, 40, 41, 42, 43, 44, 45, 0, 1, 2, 3})
	f.Add([]byte{5, 5, 2, 1, 3, 0, 0, 0, 4, 1, 0, 0, 3, 3, 0, 0, 1, 7, 0, 0, 2, 15, 200, 201, 202, 30, 31, 32, 3, 4, 5})
	f.Add([]byte{7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 12, 13, 14, 21, 22, 23, 30, 60, 90, 120, 150, 180})
	f.Add([]byte{3, 0, 1, 0, 2, 0, 0, 0, 3, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	// The deadline path: Stops, Unregisters and Starts whose contexts are
	// done or about to be, among providers that overrun.
	f.Add([]byte{6, 2, 0, 0, 3, 0, 0, 0, 3, 1, 0, 0, 1, 3, 0, 0, 3, 7, 0, 0, 0, 0, 18, 6, 16, 36, 9, 17, 27, 46, 56, 66})
	f.Add([]byte{8, 8, 0, 0, 3, 0, 0, 1, 0, 3, 0, 0, 0, 3, 1, 0, 3, 15, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 46, 47, 48, 26, 27, 28, 106, 107, 116, 126})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzing engine's own goroutines are there before the run.
		runPlan(t, data, testkit.Settle(t))
	})
}

// runPlan runs the plan, then settles (every goroutine the run started must
// end: a cleanup the registry stopped waiting for may not even have begun
// running yet), then checks.
func runPlan(t *testing.T, data []byte, settle func()) {
	var clock atomic.Int64
	release := make(chan struct{})
	pl := decode(data, &clock, release)
	r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(20 * time.Millisecond))

	// Every registration gets an object of its own (a provider may be
	// registered again once unregistered), so that each object's cleanup
	// is owed exactly once if the registry took it, and never otherwise.
	var mu sync.Mutex
	var registered []*fuzzProvider
	register := func(slot *fuzzProvider) {
		p := &fuzzProvider{id: slot.id, deps: slot.deps, init: slot.init, clean: slot.clean, clock: &clock, release: release}
		timeout := wait
		if p.clean == behaveOverrun || p.init == behaveOverrun {
			timeout = 5 * time.Millisecond
		}
		err := r.Register(p, lifecycle.Timeout(timeout), lifecycle.DependsOn(p.deps...))
		var pe *lifecycle.ProviderError
		mu.Lock()
		defer mu.Unlock()
		p.regEnd = clock.Add(1)
		// A registration whose Initialize failed was rolled back: cleaned up.
		p.accepted = err == nil || errors.As(err, &pe) && pe.Op == "initialize"
		registered = append(registered, p)
	}
	for _, p := range pl.providers[:pl.early] {
		register(p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// short returns a context that is done already (arg 0) or runs out
	// within arg×20µs: the deadline path, where Stop, Unregister, Start and
	// Health must neither crash nor hang nor lose a cleanup.
	short := func(arg byte) (context.Context, context.CancelFunc) {
		if arg%4 == 0 {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return c, cancel
		}
		return context.WithTimeout(ctx, time.Duration(arg)*20*time.Microsecond)
	}
	var wg sync.WaitGroup
	for _, ops := range pl.ops {
		wg.Go(func() {
			for _, op := range ops {
				slot := pl.providers[int(op/10)%len(pl.providers)]
				switch op % 10 {
				case 0:
					_ = r.Start(ctx)
				case 1:
					_ = r.Stop(ctx)
				case 2:
					register(slot)
				case 3:
					_ = r.Unregister(ctx, slot.id)
				case 6:
					c, cancel := short(op / 10)
					_ = r.Stop(c)
					cancel()
				case 7:
					c, cancel := short(op / 10)
					_ = r.Unregister(c, slot.id)
					cancel()
				case 8:
					c, cancel := short(op / 10)
					_ = r.Start(c)
					cancel()
				case 9:
					c, cancel := short(op / 10)
					_ = r.Health(c)
					cancel()
				case 4:
					if p, release, err := r.Acquire(ctx, slot.id); err == nil {
						fp := p.(*fuzzProvider)
						fp.inUse.Add(1)
						runtime.Gosched()
						fp.inUse.Add(-1)
						release()
					}
				case 5:
					_ = r.Health(ctx)
				}
			}
		})
	}
	within(t, "the operations", wg.Wait)
	_ = r.Stop(ctx)
	close(release) // let overrunning providers return
	if ctx.Err() != nil {
		t.Fatalf("the run did not finish within %v", wait)
	}
	settle()

	for _, p := range registered {
		// Cleanup follows Initialize: owed once if Initialize began.
		want := int32(0)
		if p.accepted && p.inits.Load() > 0 {
			want = 1
		}
		if n := p.cleanups.Load(); n != want {
			t.Errorf("%s (registered at %d, initialized %d times): cleanup ran %d times, want %d", p.id, p.regEnd, p.inits.Load(), n, want)
		}
		if n := p.inits.Load(); n > 1 {
			t.Errorf("%s: Initialize ran %d times", p.id, n)
		}
		if p.misuse.Load() {
			t.Errorf("%s: cleanup ran while a lease was held", p.id)
		}
		if p.overlap.Load() {
			t.Errorf("%s: cleanup ran while Initialize was running", p.id)
		}
	}
	// Dependency order: a dependency whose cleanup began after its
	// dependent was registered began only once the dependent's had ended.
	for _, p := range registered {
		if !p.accepted {
			continue
		}
		// The registry's end of an instant cleanup is its return; a
		// cleanup that can overrun may be ended by its deadline, so only its
		// beginning is known to precede the dependency's.
		end := p.ended.Load()
		if !p.clean.instant() {
			end = p.began.Load()
		}
		// A cleanup waits for an Initialize that overran; if that outlasts
		// the cleanup's timeout, the deadline ends it and its dependencies
		// go ahead, and its method runs later: its end is not observed.
		if p.init == behaveOverrun {
			continue
		}
		for _, d := range registered {
			// A cleanup begun with its context done was begun by a Stop
			// or an Unregister cut short, which begins every cleanup left
			// at once: no order is owed then.
			if !d.accepted || !slices.Contains(p.deps, d.id) || d.began.Load() < p.regEnd || d.cut.Load() || d.cleanups.Load() == 0 {
				continue
			}
			if d.began.Load() < end {
				t.Errorf("%s began cleanup (at %d) before its dependent %s ended (at %d)", d.id, d.began.Load(), p.id, end)
			}
		}
	}
}
