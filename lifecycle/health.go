package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// healthCheck is one provider's health check in flight. Concurrent Health
// calls share it, so a hung check is never started twice and a provider
// polled by a readiness probe holds at most one goroutine in its check.
type healthCheck struct {
	began time.Time
	done  chan struct{} // closed once h is set
	h     Health
}

// Health checks every provider concurrently, each check bounded by the
// health timeout (and by ctx), and returns when all have answered or the
// timeout has passed, whichever is first. A check that hangs, panics or
// calls runtime.Goexit reads as unhealthy with the reason; a provider
// without HealthCheck reads as healthy once initialized, with a message
// that says it has no check. Messages and string resources are redacted
// with [Redact].
func (r *Registry) Health(ctx context.Context) HealthReport {
	type pending struct {
		n *node
		c *healthCheck
	}
	hctx, cancel := context.WithTimeout(ctx, r.healthTimeout) // from the call: starting the checks counts
	defer cancel()
	rep := HealthReport{Status: StatusHealthy, Providers: make(map[string]Health)}
	var waiting, start []pending
	r.mu.Lock()
	for _, n := range r.order {
		if h, settled := n.settledHealth(); settled {
			rep.Providers[n.id] = h
			continue
		}
		if n.check == nil {
			n.check = &healthCheck{began: time.Now(), done: make(chan struct{})}
			start = append(start, pending{n, n.check})
		}
		waiting = append(waiting, pending{n, n.check})
	}
	r.mu.Unlock()
	for _, p := range start {
		r.runHealth(p.n, p.c)
	}
	for _, p := range waiting {
		select {
		case <-p.c.done:
		case <-hctx.Done():
		}
		select {
		case <-p.c.done: // an answer that came with the deadline still counts
			rep.Providers[p.n.id] = p.c.h
		default:
			rep.Providers[p.n.id] = Health{Status: StatusUnhealthy,
				Message: fmt.Sprintf("health check did not return within %v (running for %v)", r.healthTimeout, time.Since(p.c.began).Round(time.Millisecond))}
		}
	}
	for _, h := range rep.Providers {
		rep.Status = worse(rep.Status, h.Status)
	}
	return rep
}

// settledHealth answers for a provider whose health needs no check: one
// that is not initialized, is being cleaned up, or has no HealthCheck.
// The registry's mu is held.
func (n *node) settledHealth() (Health, bool) {
	switch {
	case n.state == StateFailed:
		return Health{Status: StatusUnhealthy, Message: Redact(n.initErr.Error())}, true
	case n.cleanup != nil:
		return Health{Status: StatusUnhealthy, Message: "cleaned up or being cleaned up"}, true
	case n.state == StateRegistered:
		return Health{Status: StatusUnknown, Message: "not initialized"}, true
	case n.state == StateInitializing:
		return Health{Status: StatusUnknown, Message: "initializing"}, true
	case n.health == nil:
		return Health{Status: StatusHealthy, Message: "initialized; the provider has no health check"}, true
	}
	return Health{}, false
}

// runHealth runs one health check on a goroutine of its own, bounded by
// the health timeout. Its context is not any caller's: callers share the
// check and may go away before it ends. Once it ends, the next Health
// call starts a new one, so a check that hung and returns is no longer
// held against the provider.
func (r *Registry) runHealth(n *node, c *healthCheck) {
	ctx, cancel := context.WithTimeout(context.Background(), r.healthTimeout)
	var h Health
	check := func(ctx context.Context) error {
		h = n.health(ctx)
		return nil
	}
	goCall(ctx, check, func(err error) {
		late := ctx.Err() != nil
		cancel()
		var pe *PanicError
		switch {
		case errors.As(err, &pe):
			h = Health{Status: StatusUnhealthy, Message: fmt.Sprintf("health check panicked: %v", pe.Value)}
		case errors.Is(err, errGoexit):
			h = Health{Status: StatusUnhealthy, Message: "health check " + errGoexit.Error()}
		}
		c.h = sanitize(h)
		r.mu.Lock()
		n.check = nil
		r.mu.Unlock()
		close(c.done)
		if late {
			r.emit(ProviderReturnedLate{ID: n.id, Op: "health", Duration: time.Since(c.began)})
		}
	})
}

// sanitize returns a copy of h with secrets redacted from its message and
// its string, error and URL resources. Other values are kept as they are.
func sanitize(h Health) Health {
	h.Message = Redact(h.Message)
	if h.Resources == nil {
		return h
	}
	res := make(map[string]any, len(h.Resources))
	for k, v := range h.Resources {
		switch v := v.(type) {
		case string:
			res[k] = Redact(v)
		case error:
			res[k] = Redact(v.Error())
		case *url.URL:
			res[k] = Redact(v.Redacted())
		case url.URL:
			res[k] = Redact(v.Redacted())
		default:
			res[k] = v
		}
	}
	h.Resources = res
	return h
}
