package pool

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// exited is told by an instance's provider that its child exited.
func (p *Pool[H]) exited(m *member[H], x Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exitedLocked(m, x)
}

// exitedLocked takes m for dead: its child exited, or is cut off. p.mu is
// held.
func (p *Pool[H]) exitedLocked(m *member[H], x Exit) {
	if x.Expected || p.closed || p.members[m.id] != m || m.state == draining || m.state == dead || m.state == waiting {
		return // its cleanup, a removal or the shutdown ended it, or it was a failed start's
	}
	was := m.state
	m.state = dead
	m.exit = x
	// Serving: the tasks it ran, and so whoever sent them, may have killed
	// it; see served in backoff.go.
	m.served = was == ready && (m.inflight > 0 || x.Busy)
	switch {
	case x.Session:
		p.log.Warn("remote session ended", zap.String("provider", m.id), zap.String("why", x.Status),
			zap.Stringer("restart", p.cfg.Restart.Policy))
	case x.Cut:
		p.log.Warn("child process cut off", zap.String("provider", m.id), zap.String("why", x.Status),
			zap.String("last_stderr", x.LastLine), zap.Int("tasks_failed", m.inflight), zap.Stringer("restart", p.cfg.Restart.Policy))
	default:
		p.log.Warn("child process exited", zap.String("provider", m.id), zap.Int("pid", x.Pid),
			zap.String("exit", x.Status), zap.String("last_stderr", x.LastLine),
			zap.Int("tasks_failed", m.inflight), zap.Stringer("restart", p.cfg.Restart.Policy))
	}
	if was == starting {
		return // its start settles it
	}
	p.onDeath(m)
}

// onDeath applies the restart policy to a dead instance. p.mu is held.
func (p *Pool[H]) onDeath(m *member[H]) {
	x := m.exit
	switch r := p.cfg.Restart; {
	case p.quiet:
		p.log.Info("not restarted: the service is shutting down", zap.String("provider", m.id))
		p.handoff() // what waited for it may have nothing left to wait for
		return
	case r.Policy == Never, r.Policy == OnFailure && !x.Failed:
		p.log.Warn("not restarted", zap.String("provider", m.id), zap.Stringer("restart", r.Policy), zap.String("exit", x.Status))
		p.handoff()
		return // it stays registered, and unhealthy
	}
	delay := p.failed(m.id, "exited ("+x.Status+")", m.served)
	m.replacing = true
	p.handoff() // past the budget, what waited for it is not kept waiting
	p.removeLocked(func() { p.replace(m, x.Status, delay) })
}

// replace removes a dead instance, and then has a replacement started
// under its id after the delay. The removal is not cut short by Close (see
// bring); the replacement is.
func (p *Pool[H]) replace(dead *member[H], why string, delay time.Duration) {
	o, err := p.deps.Registry.UnregisterOutcome(context.WithoutCancel(p.ctx), dead.id)
	if errors.Is(err, lifecycle.ErrStopped) && o.Result == 0 {
		return // Stop began: it cleans the dead one up
	}
	p.deps.Removed(p.removal(dead.id, "exited: "+why, o, err))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.goLocked(func() { p.restart(dead, delay) })
}

// restart starts replacements under a removed instance's id, each after
// its delay, until one starts or the pool closes: past the restart budget
// it backs off, but it never gives up. The first failure was counted by
// the caller, which gives its delay.
func (p *Pool[H]) restart(dead *member[H], delay time.Duration) {
	for {
		p.mu.Lock()
		if p.members[dead.id] != dead { // removed meanwhile
			p.mu.Unlock()
			return
		}
		if p.closed || p.quiet { // shutting down: it stays removed
			delete(p.members, dead.id)
			p.handoff()
			p.mu.Unlock()
			return
		}
		now := p.deps.Now()
		slot := &member[H]{id: dead.id, state: waiting, since: now, due: now.Add(delay)}
		p.members[dead.id] = slot
		p.mu.Unlock()
		p.log.Info("restarting", zap.String("provider", dead.id), zap.Duration("after", delay))

		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-p.ctx.Done():
			timer.Stop()
			return
		}
		p.mu.Lock()
		if p.closed || p.quiet || p.members[dead.id] != slot { // removed meanwhile, or shutting down
			if p.members[dead.id] == slot {
				delete(p.members, dead.id)
				p.handoff()
			}
			p.mu.Unlock()
			return
		}
		slot.state = starting
		p.mu.Unlock()

		err := p.bring(p.ctx, slot)
		p.mu.Lock()
		switch {
		case err == nil:
			p.settle(slot)
			p.mu.Unlock()
			return
		case p.closed:
			p.mu.Unlock()
			return
		}
		msg := lifecycle.Redact(err.Error())
		p.log.Error("replacement failed to start", zap.String("provider", dead.id), zap.String("error", msg))
		delay = p.failed(dead.id, "failed to start: "+msg, false)
		dead = slot
		p.mu.Unlock()
	}
}
