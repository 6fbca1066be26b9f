package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// exited is told by an instance's provider that its child exited.
func (p *Pool[H]) exited(m *member[H], x Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if x.Expected || p.closed || p.members[m.id] != m || m.state == draining || m.state == dead {
		return // its cleanup, a removal or the shutdown ended it
	}
	was := m.state
	m.state = dead
	m.exit = x
	if x.Cut {
		p.log.Warn("child process cut off", zap.String("provider", m.id), zap.String("why", x.Status),
			zap.String("last_stderr", x.LastLine), zap.Int("tasks_failed", m.inflight), zap.Stringer("restart", p.cfg.Restart.Policy))
	} else {
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
	case !p.allowRestart():
		p.giveUp(m.id, x.Status)
		p.handoff()
		return // it stays registered, and unhealthy: Stop cleans it up
	}
	m.replacing = true
	p.removeLocked(func() { p.replace(m, x.Status) })
}

// allowRestart counts a restart, unless MaxRestarts were made within the
// window already. p.mu is held.
func (p *Pool[H]) allowRestart() bool {
	r := p.cfg.Restart
	now := p.deps.Now()
	i := 0
	for i < len(p.restarts) && now.Sub(p.restarts[i]) >= r.Window {
		i++
	}
	p.restarts = p.restarts[i:]
	if len(p.restarts) >= r.MaxRestarts {
		return false
	}
	p.restarts = append(p.restarts, now)
	p.counts.Restarts++
	return true
}

// giveUp stops restarting the template. p.mu is held.
func (p *Pool[H]) giveUp(id, lastExit string) {
	r := p.cfg.Restart
	p.gaveUp = fmt.Sprintf("more than %d restarts within %v; the last: %s exited (%s)", r.MaxRestarts, r.Window, id, lastExit)
	p.log.Error("giving up restarting the template", zap.String("provider", id), zap.String("reason", p.gaveUp))
}

// backoff is the delay before the latest restart: Backoff doubled for each
// earlier restart within the window, at most MaxBackoff, less up to half
// of it at random. p.mu is held.
func (p *Pool[H]) backoff() time.Duration {
	r := p.cfg.Restart
	d := r.Backoff
	for range max(len(p.restarts)-1, 0) {
		if d >= r.MaxBackoff {
			break
		}
		d *= 2
	}
	d = min(d, max(r.MaxBackoff, r.Backoff))
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// replace removes a dead instance, and then has a replacement started
// under its id. The removal is not cut short by Close (see bring); the
// replacement is.
func (p *Pool[H]) replace(dead *member[H], why string) {
	o, err := p.deps.Registry.Remove(context.WithoutCancel(p.ctx), dead.id)
	if errors.Is(err, lifecycle.ErrStopped) && o.Result == 0 {
		return // Stop began: it cleans the dead one up
	}
	p.deps.Removed(p.removal(dead.id, "exited: "+why, o, err))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.goLocked(func() { p.restart(dead) })
}

// restart starts replacements under a removed instance's id, each after
// its backoff, until one starts, the restarts run out, or the pool closes.
// The first restart was counted by the caller.
func (p *Pool[H]) restart(dead *member[H]) {
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
		delay := p.backoff()
		slot := &member[H]{id: dead.id, state: waiting, since: p.deps.Now()}
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
		p.log.Error("replacement failed to start", zap.String("provider", dead.id), zap.String("error", lifecycle.Redact(err.Error())))
		if !p.allowRestart() {
			if p.members[dead.id] == slot {
				delete(p.members, dead.id)
			}
			p.giveUp(dead.id, "its replacement failed to start: "+lifecycle.Redact(err.Error()))
			p.handoff()
			p.mu.Unlock()
			return
		}
		dead = slot
		p.mu.Unlock()
	}
}
