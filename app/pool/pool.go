package pool

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

var (
	// ErrQueueFull: every instance is at PerInstance and Queue tasks wait
	// already. The caller should retry later (429).
	ErrQueueFull = errors.New("every instance is busy and the queue is full")
	// ErrQueueTimeout: the task waited QueueTimeout for an instance (503).
	ErrQueueTimeout = errors.New("no instance could take the task within the queue timeout")
	// ErrNoInstance: no instance can take the task, and none is coming.
	ErrNoInstance = errors.New("no instance can take the task")
	// ErrClosed: the pool was closed; the service is shutting down.
	ErrClosed = errors.New("the pool is closed")
	// ErrExists: an instance with that id is in the pool already.
	ErrExists = errors.New("an instance with this id exists")
	// ErrUnknown: no instance with that id is in the pool.
	ErrUnknown = errors.New("no such instance")
)

// Exit is what became of an instance's child process.
type Exit struct {
	Pid      int
	Status   string // as the process package says it: "exit status 3", "signal: killed"
	Failed   bool   // a non-zero status or a signal
	Expected bool   // its cleanup had begun: not a crash
	LastLine string // the last line it wrote to stderr, if any
	// Busy: calls were waiting for its answers when its output ended, which
	// the pool's own count of tasks may no longer show by the time the
	// exit is told: they fail, and are released, as the output ends.
	Busy bool
	// Cut: the child has not exited, but is useless (its output broke);
	// the pool treats it as dead, and its removal ends it.
	Cut bool
	// Session: the instance is a session with a server already running
	// (a remote MCP server), not a child, and the session has ended: it
	// has no pid, no stderr, and the tasks it failed failed as it ended.
	Session bool
}

// Removal is one instance removed from the registry while the service
// runs, and how its cleanup ended.
type Removal struct {
	ID       string
	Template string
	Reason   string // "scaled down", "removed", "exited: exit status 1", "failed to start"
	Outcome  lifecycle.Outcome
	Err      error // the removal's error, if it had one (its cleanup's included)
	At       time.Time
}

// Deps is what a pool needs from the service. H is what a task runs
// through: a handler of the instance's protocol.
type Deps[H any] struct {
	Registry *lifecycle.Registry
	// Build makes, without starting it, the provider of the instance with
	// the given id; the provider calls exited once, when its child exits.
	Build func(id string, exited func(Exit)) (lifecycle.Provider, H, error)
	// Usable reports whether an instance's provider, ready since the given
	// time, may take tasks (running, and healthy at the last look if that
	// look was since); nil means every ready one may. It is called with
	// the pool's lock held, so it must not call the pool.
	Usable func(id string, p lifecycle.Provider, since time.Time) bool
	// Removed is told of every removal, with its cleanup's outcome.
	Removed func(Removal)
	Log     *zap.Logger
	// Now is the clock of scaling decisions; time.Now if nil.
	Now func() time.Time
}

// state is where an instance is in its life in the pool.
type state int

const (
	starting state = iota // registered, or about to be, and initializing
	ready                 // takes tasks
	draining              // being removed: no new task reaches it
	dead                  // its child exited: no task reaches it
	waiting               // its dead predecessor is removed; a replacement starts after the backoff
)

var stateNames = [...]string{"starting", "ready", "draining", "dead", "restarting"}

func (s state) String() string { return stateNames[s] }

// member is one instance: an id and the provider that now bears it.
type member[H any] struct {
	id       string
	provider lifecycle.Provider
	handle   H
	state    state
	inflight int // tasks admitted to it and not yet released
	since    time.Time
	born     time.Time // when its provider was built (zero for a slot awaiting one)
	exit     Exit      // how its child exited, once dead
	// replacing: dead, and a replacement is on its way (the supervisor is
	// removing it): tasks may wait for it.
	replacing bool
	due       time.Time // when a waiting one's replacement starts
	// served: it died while it ran tasks (see backoff.go).
	served bool
	// sickSince is when the first of the health checks in a row that found
	// it unhealthy began, and sickWhy what the last said; zero while the
	// last found it otherwise (see liveness.go).
	sickSince time.Time
	sickWhy   string
	// stalled: a task on it ran out of time since a check last found it
	// healthy, so a check that finds it degraded (busy) counts as unhealthy
	// (see liveness.go).
	stalled bool
}

// Pool is one template's instances. Its methods are safe for concurrent
// use.
type Pool[H any] struct {
	cfg  Config
	deps Deps[H]
	log  *zap.Logger

	ctx    context.Context // ends starts and backoffs at Close
	cancel context.CancelFunc
	kick   chan struct{}  // wakes the scaler; buffered, one pending kick is enough
	wg     sync.WaitGroup // the scaler, starts and restarts: Close waits for them
	// removing counts removals in progress. Close does not wait for them:
	// a removal is the registry's to finish (its Stop waits for it), and
	// waiting here would hold up every other provider's cleanup behind it.
	removing sync.WaitGroup

	mu       sync.Mutex // guards the fields below and every member's fields
	members  map[string]*member[H]
	queue    []*waiter[H] // FIFO
	closed   bool
	quiet    bool        // the service is shutting down: no growth, no restarts
	scaling  bool        // the scaler runs
	restarts []time.Time // restarts within the window, oldest first
	// served are the restarts within the window of instances that died
	// while they ran tasks, oldest first: they set the ordinary pace of
	// those restarts, and are not counted against the budget.
	served []time.Time
	// The crash loop (see backoff.go): failures since an instance last ran
	// for a whole window, those of them past the restart budget, when the
	// instance that may end them started (zero while none has), and why
	// the supervisor backs off ("" while it does not).
	failures    int
	crashLoop   int
	stableFrom  time.Time
	backingOff  string
	meter       *meter    // the tasks in flight over Sizing.Window; nil without one
	lowSince    time.Time // when utilization last fell to ScaleDownAt or below; zero while above
	holdUntil   time.Time // no growth before this: a start failed
	startFailed string    // why the scaler's last start failed; "" once one succeeds
	last        *ScaleEvent
	counts      Counts
}

// Counts are a pool's cumulative events.
type Counts struct {
	ScaleUps   int
	ScaleDowns int
	Restarts   int
}

// New returns an empty pool. Its instances are added by [Pool.Declare],
// [Pool.Add] and, for a sized pool, by [Pool.Run].
func New[H any](cfg Config, deps Deps[H]) *Pool[H] {
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Usable == nil {
		deps.Usable = func(string, lifecycle.Provider, time.Time) bool { return true }
	}
	if deps.Removed == nil {
		deps.Removed = func(Removal) {}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[H]{cfg: cfg, deps: deps, log: deps.Log.With(zap.String("template", cfg.Template)),
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), members: map[string]*member[H]{}}
	if cfg.Sizing != nil {
		p.meter = newMeter(cfg.Sizing.Window, deps.Now())
	}
	return p
}

// Config returns the pool's configuration.
func (p *Pool[H]) Config() Config { return p.cfg }

// Declare builds an instance and registers it before the registry starts,
// whose Start then initializes it with everything else: the instances the
// configuration names, and a sized pool's first Min.
func (p *Pool[H]) Declare(id string) error {
	p.mu.Lock()
	if _, ok := p.members[id]; ok {
		p.mu.Unlock()
		return ErrExists
	}
	// Starting until Run: the registry's Start initializes it, and a child
	// that exits meanwhile fails that start rather than being restarted.
	now := p.deps.Now()
	m := &member[H]{id: id, state: starting, since: now, born: now}
	p.members[id] = m
	p.mu.Unlock()
	prov, h, err := p.deps.Build(id, func(x Exit) { p.exited(m, x) })
	if err == nil {
		err = p.deps.Registry.Register(prov, p.cfg.Register...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		delete(p.members, id)
		return err
	}
	m.provider, m.handle = prov, h
	return nil
}

// DeclareMin declares a sized pool's first Min instances.
func (p *Pool[H]) DeclareMin() error {
	if p.cfg.Sizing == nil {
		return nil
	}
	for n := 1; n <= p.cfg.Sizing.Min; n++ {
		if err := p.Declare(InstanceID(p.cfg.Template, n)); err != nil {
			return err
		}
	}
	return nil
}

// Run puts the declared instances to work, once the registry has started
// (and so initialized them), and starts a sized pool's scaler.
func (p *Pool[H]) Run() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.scaling || p.closed {
		return
	}
	for _, m := range p.members {
		if m.provider != nil && (m.state == starting || m.state == dead) {
			p.settle(m)
		}
	}
	if p.cfg.Sizing == nil {
		return
	}
	p.scaling = true
	p.goLocked(p.scaler)
}

// Quiesce stops growth and restarts while the pool goes on serving: the
// service is shutting down, and whatever started now would be cleaned up
// moments later.
func (p *Pool[H]) Quiesce() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quiet = true
	p.handoff() // refuses the waiting tasks that only growth would have served
}

// AwaitRemovals waits, within ctx, for the removals in progress to end and
// be reported: after the registry's Stop, which finishes them, so that a
// final report can list them.
func (p *Pool[H]) AwaitRemovals(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.removing.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recheck hands waiting tasks to instances that became usable (their
// health came back), and lets the scaler look again.
func (p *Pool[H]) Recheck() {
	p.mu.Lock()
	p.handoff()
	p.mu.Unlock()
	p.wake()
}

// Close stops the pool: waiting tasks fail with [ErrClosed], no instance
// is added, started or restarted any more, and the pool's goroutines end.
// It waits for them within ctx, but not for removals in progress, which
// the registry finishes (its Stop waits for them). The instances stay
// registered: the registry's Stop cleans them up.
func (p *Pool[H]) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.queue {
		w.got <- grant[H]{err: ErrClosed}
	}
	p.queue = nil
	p.mu.Unlock()
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BackingOff says why the supervisor backs off the template's restarts
// (more than MaxRestarts within the window, and no instance has started
// since), or "" if it does not.
func (p *Pool[H]) BackingOff() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backingOff
}

// Has reports whether the instance is in the pool.
func (p *Pool[H]) Has(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.members[id]
	return ok
}

// MemberState says what an instance is doing: starting, ready, draining,
// dead or restarting; "" if it is not in the pool.
func (p *Pool[H]) MemberState(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.members[id]; ok {
		return m.state.String()
	}
	return ""
}

// Member is what the pool knows of one of its instances.
type Member struct {
	State string // starting, ready, draining, dead or restarting
	// Born is when the provider that bears the id now was built: a health
	// check begun before then was of a predecessor under the same id.
	Born time.Time
	Exit Exit // how its child exited, once dead
	// Gone: its provider says its child is not running, or has been
	// reaped, which it knows a moment before the pool is told of the exit.
	Gone bool
}

// Member describes the instance with the id, if the pool has it.
func (p *Pool[H]) Member(id string) (Member, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	if !ok {
		return Member{}, false
	}
	return Member{State: m.state.String(), Born: m.born, Exit: m.exit, Gone: gone(m.provider)}, true
}

// gone reports whether a provider says its child has exited.
func gone(p lifecycle.Provider) bool {
	if r, ok := p.(interface{ Reaped() bool }); ok && r.Reaped() {
		return true
	}
	r, ok := p.(interface{ Running() bool })
	return ok && !r.Running()
}

// Members returns the ids of the pool's instances, sorted.
func (p *Pool[H]) Members() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.members))
	for id := range p.members {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// compareIDs orders ids by their numbers where they share a template:
// t-2 before t-10.
func compareIDs(a, b string) int {
	ia, na := splitNumber(a)
	ib, nb := splitNumber(b)
	if ia == ib && na != nb {
		return na - nb
	}
	return strings.Compare(a, b)
}

func splitNumber(id string) (string, int) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return id, 0
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil {
		return id, 0
	}
	return id[:i], n
}

// goLocked starts f on a goroutine the pool owns, unless the pool is
// closed. p.mu is held, which orders it before Close's wait.
func (p *Pool[H]) goLocked(f func()) bool {
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// removeLocked starts a removal on a goroutine of its own, which Close
// does not wait for. p.mu is held.
func (p *Pool[H]) removeLocked(f func()) {
	p.removing.Add(1)
	go func() {
		defer p.removing.Done()
		f()
	}()
}

// wake asks the scaler to look now.
func (p *Pool[H]) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
