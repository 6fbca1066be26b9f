package pool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Lease is a task's hold on one instance. Release gives it back; further
// calls do nothing.
type Lease[H any] struct {
	ID      string // the instance's id
	Handle  H
	once    sync.Once
	done    func()
	stalled func()
}

// Release gives the instance back, to the first task waiting if any.
func (l *Lease[H]) Release() { l.once.Do(l.done) }

// TimedOut tells the pool that the task ran out of time on the instance,
// unanswered: from then on, until a check finds it healthy, a check that
// finds it busy (degraded) counts toward Restart.UnhealthyAfter as an
// unhealthy one does. A child busy with a long call is not broken, but one
// that lets the calls given it run out of time and answers no health call
// either is hung, however many tasks keep it busy.
func (l *Lease[H]) TimedOut() {
	if l.stalled != nil {
		l.stalled()
	}
}

// waiter is a task in the queue. got receives the instance it was handed,
// or why it never will be; it is buffered, so a sender never blocks.
type waiter[H any] struct {
	got chan grant[H]
}

// grant is what a waiter is told: an instance, or an error.
type grant[H any] struct {
	m   *member[H]
	err error
}

// Acquire leases an instance for one task: at once if one can take it, or
// after waiting in the queue (sized pools only). It fails with
// [ErrQueueFull], [ErrQueueTimeout], [ErrNoInstance], [ErrClosed], or
// ctx's error.
func (p *Pool[H]) Acquire(ctx context.Context) (*Lease[H], error) {
	return p.acquire(ctx, true)
}

// TryAcquire leases an instance only if one can take the task at once.
func (p *Pool[H]) TryAcquire(ctx context.Context) (*Lease[H], error) {
	return p.acquire(ctx, false)
}

func (p *Pool[H]) acquire(ctx context.Context, wait bool) (*Lease[H], error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if m := p.best(); m != nil {
		m.inflight++
		p.counted()
		h := m.handle
		p.mu.Unlock()
		p.wakeIfBusy()
		return p.lease(ctx, m, h)
	}
	if !wait || !p.canWait() {
		why := p.whyNone()
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNoInstance, why)
	}
	if len(p.queue) >= p.queueRoom() {
		n := len(p.queue)
		p.mu.Unlock()
		return nil, fmt.Errorf("%w (%d waiting)", ErrQueueFull, n)
	}
	w := &waiter[H]{got: make(chan grant[H], 1)}
	p.queue = append(p.queue, w)
	p.mu.Unlock()
	p.wake()

	timer := time.NewTimer(p.cfg.Sizing.QueueTimeout)
	defer timer.Stop()
	var err error
	select {
	case g := <-w.got:
		if g.err != nil {
			return nil, g.err
		}
		return p.lease(ctx, g.m, p.handleOf(g.m))
	case <-timer.C:
		p.mu.Lock()
		why := p.whyNone()
		p.mu.Unlock()
		err = fmt.Errorf("%w (%v): %s", ErrQueueTimeout, p.cfg.Sizing.QueueTimeout, why)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	p.mu.Lock()
	if i := slices.Index(p.queue, w); i >= 0 {
		p.queue = slices.Delete(p.queue, i, i+1)
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()
	// Handed an instance (or the close) just as the wait ended: the
	// handoff happened under the lock, before the waiter left the queue,
	// so got holds it. Pass it on.
	if g := <-w.got; g.m != nil {
		p.release(g.m)
	}
	return nil, err
}

func (p *Pool[H]) handleOf(m *member[H]) H {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m.handle
}

// lease takes the registry's lease on m, which p admitted the task to.
func (p *Pool[H]) lease(ctx context.Context, m *member[H], h H) (*Lease[H], error) {
	_, release, err := p.deps.Registry.Acquire(ctx, m.id)
	if err != nil {
		p.release(m)
		return nil, fmt.Errorf("%w: %s: %w", ErrNoInstance, m.id, err)
	}
	return &Lease[H]{ID: m.id, Handle: h, done: func() {
		release()
		p.release(m)
	}, stalled: func() {
		p.mu.Lock()
		m.stalled = true
		p.mu.Unlock()
	}}, nil
}

// release ends one task on m and hands m to the first waiter if it can
// take one more.
func (p *Pool[H]) release(m *member[H]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.inflight--
	p.counted()
	p.handoff()
}

// handoff gives waiting tasks, first come first served, to instances that
// can take them, and refuses them at once if none ever will (the last
// instance died and none is coming, the service is shutting down): a task
// must not wait out its queue timeout for nothing. p.mu is held.
func (p *Pool[H]) handoff() {
	for len(p.queue) > 0 {
		m := p.best()
		if m == nil {
			break
		}
		m.inflight++
		p.counted()
		w := p.queue[0]
		p.queue = slices.Delete(p.queue, 0, 1)
		w.got <- grant[H]{m: m}
	}
	if len(p.queue) > 0 && !p.canWait() {
		err := fmt.Errorf("%w: %s", ErrNoInstance, p.whyNone())
		for _, w := range p.queue {
			w.got <- grant[H]{err: err}
		}
		p.queue = nil
	}
}

// best is the ready, usable instance with the fewest tasks, below
// PerInstance; nil if none. p.mu is held.
func (p *Pool[H]) best() *member[H] {
	var best *member[H]
	for _, m := range p.members {
		if m.state != ready || !p.hasRoom(m) || !p.usable(m) {
			continue
		}
		if best == nil || m.inflight < best.inflight || m.inflight == best.inflight && compareIDs(m.id, best.id) < 0 {
			best = m
		}
	}
	return best
}

func (p *Pool[H]) hasRoom(m *member[H]) bool {
	return p.cfg.Sizing == nil || m.inflight < p.cfg.Sizing.PerInstance
}

// canWait reports whether a task that finds no instance free may wait: the
// pool is sized, and an instance is ready (busy, or unusable for now: it
// may come back, or its child may have died a moment ago and be replaced),
// starting or restarting (a dead one being replaced included), or the pool
// may still grow. Other dead instances and draining ones bring nothing;
// nor does a restart while the supervisor backs off, which may be minutes
// away. p.mu is held.
func (p *Pool[H]) canWait() bool {
	if p.cfg.Sizing == nil {
		return false
	}
	for _, m := range p.members {
		switch {
		case m.state == ready, m.state == starting:
			return true
		case p.backingOff != "":
		case m.state == waiting, m.replacing:
			return true
		}
	}
	return p.mayGrow()
}

// mayGrow reports whether the scaler may start instances within a task's
// wait: it runs, the service is not shutting down, a place below Max is
// free, the supervisor does not back off, and growth held back after a
// failed start resumes within QueueTimeout. A task must not wait for
// growth that will not come within its queue timeout, nor be refused for
// a hold that ends before it would have. p.mu is held.
func (p *Pool[H]) mayGrow() bool {
	return p.backingOff == "" && p.holdUntil.Before(p.deps.Now().Add(p.cfg.Sizing.QueueTimeout)) &&
		!p.quiet && p.scaling && p.size() < p.cfg.Sizing.Max
}

// queueRoom is how many tasks may wait: Queue, and what the instances on
// their way will take, those starting or due to restart and those the
// pool may still start. So a burst no larger than Max × PerInstance +
// Queue is never refused while the pool grows toward Max: its tasks wait
// for instances that will serve them. p.mu is held.
func (p *Pool[H]) queueRoom() int {
	coming := 0
	for _, m := range p.members {
		switch {
		case m.state == starting:
			coming++
		case p.backingOff != "":
			// A restart while the supervisor backs off may be minutes away.
		case m.state == waiting, m.replacing:
			coming++
		}
	}
	if p.mayGrow() {
		coming += p.cfg.Sizing.Max - p.size()
	}
	return p.cfg.Sizing.Queue + coming*p.cfg.Sizing.PerInstance
}

// whyNone says why no instance can take a task. p.mu is held.
func (p *Pool[H]) whyNone() string {
	if len(p.members) == 0 {
		if p.backingOff != "" {
			return "template " + p.cfg.Template + " is backing off its restarts: " + p.backingOff
		}
		return "template " + p.cfg.Template + " has no instance"
	}
	var why []string
	for _, id := range p.sortedIDs() {
		m := p.members[id]
		switch {
		case m.state != ready:
			why = append(why, id+" is "+m.state.String())
		case !p.usable(m):
			why = append(why, id+" is unhealthy")
		default:
			why = append(why, fmt.Sprintf("%s is busy (%d tasks)", id, m.inflight))
		}
	}
	if p.backingOff != "" {
		why = append(why, "backing off its restarts: "+p.backingOff+"; next restart at "+p.nextRestart().Format(time.RFC3339))
	}
	return strings.Join(why, "; ")
}

func (p *Pool[H]) sortedIDs() []string {
	ids := make([]string, 0, len(p.members))
	for id := range p.members {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// wakeIfBusy wakes the scaler when an admission may have taken
// utilization to ScaleUpAt, so that the pool grows before tasks queue.
func (p *Pool[H]) wakeIfBusy() {
	if p.cfg.Sizing != nil {
		p.wake()
	}
}

// size counts the instances that hold a place below Max: all but those
// being removed. A dead one holds its place: under the policy never, it
// is not replaced by growth either. p.mu is held.
func (p *Pool[H]) size() int {
	n := 0
	for _, m := range p.members {
		if m.state != draining {
			n++
		}
	}
	return n
}

// usable reports whether m may take tasks now. p.mu is held.
func (p *Pool[H]) usable(m *member[H]) bool {
	return m.provider != nil && p.deps.Usable(m.id, m.provider, m.since)
}
