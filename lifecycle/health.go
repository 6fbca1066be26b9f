package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"
)

// healthCall is one provider's health check in flight. Concurrent Health
// calls share it, so a hung check is never started twice and a provider
// polled by a readiness probe holds at most one goroutine in its check.
type healthCall struct {
	began time.Time

	mu   sync.Mutex // guards the fields below
	done bool
	h    Health
	subs []chan<- healthResult
}

type healthResult struct {
	id string
	h  Health
}

// Health checks every provider concurrently, each check bounded by the
// health timeout (and by ctx), and returns when all have answered or the
// timeout has passed, whichever is first. A check that hangs or panics
// reads as unhealthy with the reason; a provider without HealthCheck reads
// as healthy once initialized, with a message that says it has no check.
// Messages and string resources are redacted with [Redact].
func (r *Registry) Health(ctx context.Context) HealthReport {
	r.mu.RLock()
	nodes := r.sortedNodes()
	r.mu.RUnlock()

	rep := HealthReport{Status: StatusHealthy, Providers: make(map[string]Health, len(nodes))}
	results := make(chan healthResult, len(nodes))
	waiting := make(map[string]*healthCall)
	for _, n := range nodes {
		if h, settled := n.settledHealth(); settled {
			rep.Providers[n.id] = h
			continue
		}
		waiting[n.id] = r.checkHealth(n, results)
	}

	if len(waiting) > 0 {
		hctx, cancel := context.WithTimeout(ctx, r.healthTimeout)
		defer cancel()
	wait:
		for len(waiting) > 0 {
			select {
			case res := <-results:
				if _, ok := waiting[res.id]; ok {
					delete(waiting, res.id)
					rep.Providers[res.id] = res.h
				}
			case <-hctx.Done():
				break wait
			}
		}
		for id, c := range waiting {
			c.unsubscribe(results)
			rep.Providers[id] = Health{Status: StatusUnhealthy,
				Message: fmt.Sprintf("health check did not return within %v (running for %v)", r.healthTimeout, time.Since(c.began).Round(time.Millisecond))}
		}
	}
	for _, h := range rep.Providers {
		rep.Status = worse(rep.Status, h.Status)
	}
	return rep
}

// settledHealth answers for a provider whose health needs no check: one
// that is not initialized, is being cleaned up, or has no HealthCheck.
func (n *node) settledHealth() (Health, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.state == initFailed:
		return Health{Status: StatusUnhealthy, Message: Redact(n.initErr.Error())}, true
	case n.job != nil:
		return Health{Status: StatusUnhealthy, Message: "cleaned up or being cleaned up"}, true
	case n.state == initPending:
		return Health{Status: StatusUnknown, Message: "not initialized"}, true
	case n.state == initStarted:
		return Health{Status: StatusUnknown, Message: "initializing"}, true
	case n.health == nil:
		return Health{Status: StatusHealthy, Message: "initialized; the provider has no health check"}, true
	}
	return Health{}, false
}

// checkHealth subscribes results to n's check in flight, starting one if
// none is.
func (r *Registry) checkHealth(n *node, results chan<- healthResult) *healthCall {
	n.mu.Lock()
	c := n.check
	if c == nil {
		c = &healthCall{began: time.Now()}
		n.check = c
		go r.runHealth(n, c)
	}
	n.mu.Unlock()

	c.mu.Lock()
	if c.done {
		results <- healthResult{n.id, c.h} // buffered for every provider: never blocks
	} else {
		c.subs = append(c.subs, results)
	}
	c.mu.Unlock()
	return c
}

// unsubscribe forgets a caller that stopped waiting, so that a check that
// hangs for good does not collect every later caller's channel.
func (c *healthCall) unsubscribe(results chan<- healthResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.subs {
		if s == results {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			return
		}
	}
}

// runHealth runs one health check, bounded by the health timeout, and hands
// its answer to every subscriber. Its context is not any caller's: callers
// share the check and may go away before it ends.
func (r *Registry) runHealth(n *node, c *healthCall) {
	ctx, cancel := context.WithTimeout(context.Background(), r.healthTimeout)
	defer cancel()
	var h Health
	err := protect(ctx, func(ctx context.Context) error {
		h = n.health(ctx)
		return nil
	})
	if pe := (*PanicError)(nil); errors.As(err, &pe) {
		h = Health{Status: StatusUnhealthy, Message: fmt.Sprintf("health check panicked: %v", pe.Value)}
	}
	h = sanitize(h)
	took := time.Since(c.began)
	if ctx.Err() != nil {
		r.emit(ProviderReturnedLate{ID: n.id, Op: "health", Duration: took})
	}

	n.mu.Lock()
	n.check = nil
	n.mu.Unlock()
	c.mu.Lock()
	c.done, c.h = true, h
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, s := range subs {
		s <- healthResult{n.id, h}
	}
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
