package pool

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Launch starts instances once the registry has started, one at a time,
// each within ctx and its own timeout: those of a template that is not
// critical, whose failure to start must not fail the service's. One that
// cannot start (its child exits at once, its handshake fails) is logged at
// error and left to the supervisor, which retries it after its backoff,
// for ever, whatever the restart policy: the policy is about children
// that ran, and a start that failed is a fault that may pass. If ctx ends,
// Launch returns its error, leaving the instance it was starting to the
// registry's Stop and starting no other.
func (p *Pool[H]) Launch(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := p.launch(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// LaunchMin launches a sized pool's first Min instances.
func (p *Pool[H]) LaunchMin(ctx context.Context) error {
	if p.cfg.Sizing == nil {
		return nil
	}
	ids := make([]string, 0, p.cfg.Sizing.Min)
	for n := 1; n <= p.cfg.Sizing.Min; n++ {
		ids = append(ids, InstanceID(p.cfg.Template, n))
	}
	return p.Launch(ctx, ids)
}

func (p *Pool[H]) launch(ctx context.Context, id string) error {
	m, err := p.startNamed(ctx, id)
	if m == nil {
		return err
	}
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.settle(m)
		return nil
	case ctx.Err() != nil || p.closed:
		if p.members[id] == m {
			delete(p.members, id)
		}
		if p.closed {
			return ErrClosed
		}
		return fmt.Errorf("starting %q: %w", id, context.Cause(ctx))
	}
	msg := lifecycle.Redact(err.Error())
	delay := p.failed(id, "failed to start: "+msg, false)
	p.log.Error("instance failed to start: the supervisor retries it", zap.String("provider", id),
		zap.String("error", msg), zap.Duration("after", delay))
	// Removed already (see bring), and its exit handed over: it waits for
	// its replacement, which Run must not take for an instance to settle.
	m.state = waiting
	p.goLocked(func() { p.restart(m, delay) })
	return nil
}
