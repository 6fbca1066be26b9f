package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

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
// held.
type fuzzProvider struct {
	id       string
	deps     []string
	init     behaviour
	clean    behaviour
	clock    *atomic.Int64
	release  <-chan struct{}
	cleanups atomic.Int32
	began    atomic.Int64
	ended    atomic.Int64
	inUse    atomic.Int32
	misuse   atomic.Bool // cleanup ran, within its deadline, while a lease was held
}

func (p *fuzzProvider) ID() string { return p.id }

func (p *fuzzProvider) Initialize(ctx context.Context) error { return p.act(ctx, p.init) }

func (p *fuzzProvider) Cleanup(ctx context.Context) error {
	p.cleanups.Add(1)
	p.began.Store(p.clock.Add(1))
	if p.inUse.Load() > 0 && ctx.Err() == nil {
		p.misuse.Store(true)
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
// providers that succeed, fail, panic or overrun, and checks after each
// run: every cleanup ran at most once, and exactly once once Stop returned;
// no dependency's cleanup began before its dependent's had ended; no
// cleanup ran while a lease was held; no goroutine was left behind.
func FuzzRegistry(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 3, 0, 3, 6, 9, 12, 15})
	f.Add([]byte{9, 3, 0, 0, 3, 0, 0, 0, 1, 1, 0, 0, 2, 3, 0, 0, 4, 7, 1, 1, 3, 15, 2, 2, 1, 31, 0, 0, 0, 255, 40, 41, 42, 43, 44, 45, 0, 1, 2, 3})
	f.Add([]byte{5, 5, 2, 1, 3, 0, 0, 0, 4, 1, 0, 0, 3, 3, 0, 0, 1, 7, 0, 0, 2, 15, 200, 201, 202, 30, 31, 32, 3, 4, 5})
	f.Add([]byte{7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 12, 13, 14, 21, 22, 23, 30, 60, 90, 120, 150, 180})
	f.Add([]byte{3, 0, 1, 0, 2, 0, 0, 0, 3, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzing engine's own goroutines are there before the run.
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		runPlan(t, data)
	})
}

func runPlan(t *testing.T, data []byte) {
	var clock atomic.Int64
	release := make(chan struct{})
	pl := decode(data, &clock, release)
	r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(20 * time.Millisecond))
	byID := make(map[string]*fuzzProvider, len(pl.providers))
	for _, p := range pl.providers {
		byID[p.id] = p
	}

	// How many times the registry accepted each provider, and so must
	// clean it up: one provider may be registered again once unregistered.
	var mu sync.Mutex
	owed := make(map[string]int32)
	register := func(p *fuzzProvider) {
		timeout := wait
		if p.clean == behaveOverrun || p.init == behaveOverrun {
			timeout = 5 * time.Millisecond
		}
		err := r.Register(p, lifecycle.Timeout(timeout), lifecycle.DependsOn(p.deps...))
		var pe *lifecycle.ProviderError
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			owed[p.id]++
		case errors.As(err, &pe) && pe.Op == "initialize":
			owed[p.id]++ // rolled back: cleaned up already
		}
	}
	for _, p := range pl.providers[:pl.early] {
		register(p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	for _, ops := range pl.ops {
		wg.Go(func() {
			for _, op := range ops {
				p := pl.providers[int(op/6)%len(pl.providers)]
				switch op % 6 {
				case 0:
					_ = r.Start(ctx)
				case 1:
					_ = r.Stop(ctx)
				case 2:
					register(p)
				case 3:
					_ = r.Unregister(ctx, p.id)
				case 4:
					if _, release, err := r.Acquire(ctx, p.id); err == nil {
						p.inUse.Add(1)
						runtime.Gosched()
						p.inUse.Add(-1)
						release()
					}
				case 5:
					_ = r.Health(ctx)
				}
			}
		})
	}
	wg.Wait()
	_ = r.Stop(ctx)
	close(release) // let overrunning providers return
	if ctx.Err() != nil {
		t.Fatalf("the run did not finish within %v", wait)
	}

	for _, p := range pl.providers {
		if n := p.cleanups.Load(); n != owed[p.id] {
			t.Errorf("%s: cleanup ran %d times for %d registrations, want once for each", p.id, n, owed[p.id])
		}
		if p.misuse.Load() {
			t.Errorf("%s: cleanup ran while a lease was held", p.id)
		}
		for _, id := range p.deps {
			d := byID[id]
			if p.cleanups.Load() == 0 || d.cleanups.Load() == 0 {
				continue
			}
			// The registry's end of an instant cleanup is its return; a
			// cleanup that can overrun may be ended by its deadline, so only
			// its beginning is known to precede the dependency's.
			end := p.ended.Load()
			if !p.clean.instant() {
				end = p.began.Load()
			}
			if d.began.Load() < end {
				t.Errorf("%s began cleanup (at %d) before its dependent %s ended (at %d)", id, d.began.Load(), p.id, end)
			}
		}
	}
}
