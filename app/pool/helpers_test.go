package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// child stands for an instance's child process: the test kills it, and
// its cleanup ends it the way a real one's does, telling the pool that the
// exit was expected.
type child struct {
	id       string
	exited   func(Exit)
	initErr  error
	cleanups atomic.Int32
	once     sync.Once
	hold     <-chan struct{} // if set, Cleanup waits for it
	starting <-chan struct{} // if set, Initialize waits for it
	journal  *testkit.Journal
}

func (c *child) ID() string { return c.id }
func (c *child) Initialize(ctx context.Context) error {
	if c.starting != nil {
		select {
		case <-c.starting:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.initErr
}

func (c *child) Cleanup(context.Context) error {
	c.journal.Add("cleanup " + c.id)
	c.cleanups.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	c.end(Exit{Status: "signal: terminated", Failed: true, Expected: true})
	return nil
}

// kill ends the child as a crash does.
func (c *child) kill(status string, failed bool) {
	c.end(Exit{Pid: 4242, Status: status, Failed: failed, LastLine: "panic: boom"})
}

func (c *child) end(x Exit) { c.once.Do(func() { c.exited(x) }) }

// world is a pool over a real registry and children the test controls.
type world struct {
	t    *testing.T
	reg  *lifecycle.Registry
	pool *Pool[string]

	mu       sync.Mutex
	children map[string][]*child // by id, every generation
	removals []Removal
	failInit map[string]int // starts of the id that fail, still to come
	sick     map[string]bool
	hold     <-chan struct{} // the cleanups of children built from now on wait for it
	starting <-chan struct{} // the starts of children built from now on wait for it
	journal  testkit.Journal // what the test and the children did, in order: "cleanup <id>"
	ahead    atomic.Int64    // how far the pool's clock is ahead of the wall clock (advance)
}

func newWorld(t *testing.T, cfg Config) *world {
	w := &world{t: t, reg: lifecycle.NewRegistry(), children: map[string][]*child{}, failInit: map[string]int{}, sick: map[string]bool{}}
	if cfg.Template == "" {
		cfg.Template = "t"
	}
	if cfg.Restart.Window == 0 {
		cfg.Restart = Restart{Policy: OnFailure, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxRestarts: 3, Window: time.Minute}
	}
	w.pool = New(cfg, Deps[string]{
		Registry: w.reg,
		Build: func(id string, exited func(Exit)) (lifecycle.Provider, string, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			c := &child{id: id, exited: exited, hold: w.hold, starting: w.starting, journal: &w.journal}
			if w.failInit[id] > 0 {
				w.failInit[id]--
				c.initErr = errors.New("handshake refused")
			}
			w.children[id] = append(w.children[id], c)
			return c, "handler of " + id, nil
		},
		Usable: func(id string, _ lifecycle.Provider, _ time.Time) bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return !w.sick[id]
		},
		Removed: func(r Removal) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.removals = append(w.removals, r)
		},
		Now: func() time.Time { return time.Now().Add(time.Duration(w.ahead.Load())) },
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		require.NoError(t, w.pool.Close(ctx))
		require.NoError(t, w.reg.Stop(ctx))
	})
	return w
}

// start declares the pool's first instances and starts the registry and
// the scaler, as the service does.
func (w *world) start() {
	require.NoError(w.t, w.pool.DeclareMin())
	require.NoError(w.t, w.reg.Start(context.Background()))
	w.pool.Run()
}

func (w *world) child(id string) *child {
	w.mu.Lock()
	defer w.mu.Unlock()
	gens := w.children[id]
	require.NotEmpty(w.t, gens, "no child %s", id)
	return gens[len(gens)-1]
}

func (w *world) generations(id string) []*child {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*child(nil), w.children[id]...)
}

func (w *world) removed() []Removal {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Removal(nil), w.removals...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testkit.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, testkit.Wait)
		}
		time.Sleep(time.Millisecond)
	}
}

func sized(min, max, per, queue int) *Sizing {
	return &Sizing{Min: min, Max: max, PerInstance: per, ScaleUpAt: 0.8, ScaleDownAt: 0.2,
		Cooldown: time.Hour, Queue: queue, QueueTimeout: time.Minute}
}

func (w *world) setSick(id string, sick bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sick[id] = sick
}

// advance moves the pool's clock on by d: what it reckons by the clock
// (the restart window, a stable run) sees d pass, its timers do not.
func (w *world) advance(d time.Duration) { w.ahead.Add(int64(d)) }

// holdCleanups makes the cleanups of the children built from now on wait
// until the returned function is called.
func (w *world) holdCleanups() (release func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold = ch
	return sync.OnceFunc(func() { close(ch) })
}

// burst sends n tasks at once, each acquiring an instance: their leases
// and their errors come as they do.
func (w *world) burst(n int) (<-chan *Lease[string], <-chan error) {
	leases := make(chan *Lease[string], n)
	errs := make(chan error, n)
	for range n {
		go func() {
			l, err := w.pool.Acquire(context.Background())
			if err != nil {
				errs <- err
				return
			}
			leases <- l
		}()
	}
	return leases, errs
}

// holdStarts makes the starts of the children built from now on wait
// until the returned function is called.
func (w *world) holdStarts() (release func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starting = ch
	return sync.OnceFunc(func() { close(ch) })
}

// failStarts makes the next n starts of the id fail their handshake.
func (w *world) failStarts(id string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failInit[id] = n
}
