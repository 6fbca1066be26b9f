package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// bring builds m's provider, registers it and initializes it, within ctx
// and its own timeout. An instance that fails to initialize is removed
// again at once (it may hold half of its resources), and the removal
// reported; unless the pool is closing, when the registry's Stop cleans it
// up instead.
func (p *Pool[H]) bring(ctx context.Context, m *member[H]) error {
	p.mu.Lock()
	m.born = p.deps.Now()
	p.mu.Unlock()
	prov, h, err := p.deps.Build(m.id, func(x Exit) { p.exited(m, x) })
	if err != nil {
		return err
	}
	p.mu.Lock()
	m.provider, m.handle = prov, h
	p.mu.Unlock()
	reg := p.deps.Registry
	// Staged: so that it is initialized with ctx, which Close cancels.
	// Allowed at once: nothing of the pool's holds its cleanup back, and
	// Stop may claim it whenever it comes.
	if err := reg.Register(prov, append(slices.Clone(p.cfg.Register), lifecycle.Staged())...); err != nil {
		return err
	}
	reg.AllowCleanup(m.id)
	err = reg.StartProvider(ctx, m.id)
	if err == nil || p.ctx.Err() != nil {
		return err
	}
	// Not cut short by Close: the registry's Stop waits for a removal in
	// progress, and this one should end as its cleanup does.
	o, rerr := reg.UnregisterOutcome(context.WithoutCancel(p.ctx), m.id)
	if !errors.Is(rerr, lifecycle.ErrStopped) {
		p.deps.Removed(p.removal(m.id, "failed to start", o, errors.Join(err, rerr)))
	}
	return err
}

// start starts an instance the scaler added. One that fails counts as a
// failure of the template, as a replacement's does: growth waits for the
// restart delay, and past the restart budget the supervisor backs off, so
// that a template that cannot start refuses its tasks at once, says why,
// and makes a critical pool unready, rather than have every task wait its
// queue timeout for a start that fails again.
func (p *Pool[H]) start(m *member[H]) {
	err := p.bring(p.ctx, m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.settle(m)
		return
	}
	if p.members[m.id] == m {
		delete(p.members, m.id)
	}
	if p.closed {
		return
	}
	defer p.handoff() // the waiters it was started for may have nothing else coming
	msg := lifecycle.Redact(err.Error())
	delay := p.failed(m.id, "failed to start: "+msg, false)
	p.holdUntil = p.deps.Now().Add(delay)
	p.startFailed = msg
	p.log.Error("pool instance failed to start", zap.String("provider", m.id),
		zap.String("error", msg), zap.Duration("next_growth_after", delay))
}

// settle makes an instance that has started take tasks, unless it died
// meanwhile. p.mu is held.
func (p *Pool[H]) settle(m *member[H]) {
	switch {
	case p.closed:
	case m.state == dead: // exited while it started, or since Declare
		p.onDeath(m)
	case m.state == starting:
		m.state = ready
		m.since = p.deps.Now()
		p.startFailed = "" // the template can start
		p.log.Info("pool instance ready", zap.String("provider", m.id))
		p.recovered(m.id)
		p.handoff()
	}
}

// drain removes an instance no task can reach any more, and reports it.
func (p *Pool[H]) drain(m *member[H], reason string) {
	// Not cut short by Close: see bring.
	o, err := p.deps.Registry.UnregisterOutcome(context.WithoutCancel(p.ctx), m.id)
	p.mu.Lock()
	if p.members[m.id] == m {
		delete(p.members, m.id)
	}
	p.mu.Unlock()
	if errors.Is(err, lifecycle.ErrStopped) && o.Result == 0 {
		return // Stop began first: its report has it
	}
	p.deps.Removed(p.removal(m.id, reason, o, err))
}

func (p *Pool[H]) removal(id, reason string, o lifecycle.Outcome, err error) Removal {
	return Removal{ID: id, Template: p.cfg.Template, Reason: reason, Outcome: o, Err: err, At: p.deps.Now()}
}

// startNamed starts an instance under id, which no member may have, within
// ctx and its timeout, cut short if the pool closes. It returns nil if it
// started nothing (the pool closed, or the id is taken), with why; else the
// member and bring's error, with p.mu held for the caller to settle it.
func (p *Pool[H]) startNamed(ctx context.Context, id string) (*member[H], error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := p.members[id]; ok {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrExists, id)
	}
	m := &member[H]{id: id, state: starting, since: p.deps.Now()}
	p.members[id] = m
	p.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()
	err := p.bring(ctx, m)
	p.mu.Lock()
	return m, err
}

// Add starts an instance of a template without pool: at run time, within
// ctx and its timeout. A sized pool chooses its own instances.
func (p *Pool[H]) Add(ctx context.Context, id string) error {
	if p.cfg.Sizing != nil {
		return fmt.Errorf("template %q is a pool: it starts and stops its own instances", p.cfg.Template)
	}
	m, err := p.startNamed(ctx, id)
	if m == nil {
		return err
	}
	defer p.mu.Unlock()
	if err != nil {
		if p.members[m.id] == m {
			delete(p.members, m.id)
		}
		return err
	}
	p.settle(m)
	return nil
}

// Remove takes an instance out of a template without pool: no new task
// reaches it, its tasks finish (within its timeout), and it is cleaned up.
// The Outcome says how; it is zero if no cleanup ran.
func (p *Pool[H]) Remove(ctx context.Context, id string) (lifecycle.Outcome, error) {
	if p.cfg.Sizing != nil {
		return lifecycle.Outcome{}, fmt.Errorf("template %q is a pool: it starts and stops its own instances", p.cfg.Template)
	}
	p.mu.Lock()
	m := p.members[id]
	switch {
	case m == nil:
		p.mu.Unlock()
		return lifecycle.Outcome{}, fmt.Errorf("%w: %q", ErrUnknown, id)
	case m.state == draining:
		p.mu.Unlock()
		return lifecycle.Outcome{}, fmt.Errorf("%w: %q is being removed already", ErrUnknown, id)
	case m.state == waiting: // dead and removed; its replacement is not due yet
		delete(p.members, id)
		p.mu.Unlock()
		return lifecycle.Outcome{Result: lifecycle.ResultSkipped, Reason: "removed while restarting"}, nil
	}
	was := m.state
	m.state = draining
	p.mu.Unlock()

	o, err := p.deps.Registry.UnregisterOutcome(ctx, id)
	p.mu.Lock()
	if errors.Is(err, lifecycle.ErrHasDependents) {
		m.state = was
		p.handoff()
		p.mu.Unlock()
		return o, err
	}
	if p.members[id] == m {
		delete(p.members, id)
	}
	p.mu.Unlock()
	if !errors.Is(err, lifecycle.ErrStopped) || o.Result != 0 {
		p.deps.Removed(p.removal(id, "removed", o, err))
	}
	return o, err
}
