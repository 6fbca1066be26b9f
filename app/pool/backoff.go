package pool

import (
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// The supervisor's budget and its crash loop. Within MaxRestarts restarts
// per Window, a failed instance (its child exited, or its replacement did
// not start) is replaced after Backoff, doubled per earlier restart within
// the window up to MaxBackoff. Past the budget the supervisor does not give
// up, as Kubernetes does not with a pod in CrashLoopBackOff: it backs off,
// each further failure doubling the wait from MaxBackoff up to
// CrashLoopMaxBackoff, and keeps trying, so that a fault that passes (a
// bad request that killed the child, a dependency that was down) costs
// minutes, not the service. The backing-off state ends as soon as an
// instance starts again; the long waits end only once an instance has run
// for a whole Window: a child that starts and crashes at once must not be
// retried at the quick pace again.
//
// A death the child suffered while it served (it had become ready, and
// had tasks in flight when it died or was cut off) is the requests' doing,
// not a crash loop: a client that sends what kills the child must not be
// able to hold the template in the long waits by sending it again each
// time the pool comes back. Such a death is restarted at the ordinary
// pace, Backoff doubled per such restart within the Window up to
// MaxBackoff, whatever the budget says; it is not counted against the
// budget, does not lengthen the crash loop, and does not end the stable
// run that forgets it. The crash-loop backoff is for children that fail to
// start, or die (or hang) while idle.

// failed counts a failure of the instance id that a restart follows: its
// child exited, or its replacement did not start; why says which, and
// served whether it died while it ran tasks. It returns the delay before
// that restart. p.mu is held.
func (p *Pool[H]) failed(id, why string, served bool) time.Duration {
	now := p.deps.Now()
	p.forgetIfStable(now)
	p.failures++
	p.counts.Restarts++
	if served {
		return jitter(restartDelay(p.cfg.Restart, p.servedWithin(now)))
	}
	p.stableFrom = time.Time{}
	if p.crashLoop == 0 && p.withinBudget(now) {
		return jitter(restartDelay(p.cfg.Restart, len(p.restarts)))
	}
	p.crashLoop++
	d := jitter(crashLoopDelay(p.cfg.Restart, p.crashLoop))
	r := p.cfg.Restart
	was := p.backingOff
	p.backingOff = fmt.Sprintf("more than %d restarts within %v; the last: %s %s", r.MaxRestarts, r.Window, id, why)
	if was == "" {
		p.log.Warn("restart budget exhausted: backing off", zap.String("provider", id), zap.String("reason", p.backingOff),
			zap.Duration("next_restart_after", d), zap.Int("consecutive_failures", p.failures))
	}
	return d
}

// withinBudget counts a restart at now, unless MaxRestarts were made
// within the window already. p.mu is held.
func (p *Pool[H]) withinBudget(now time.Time) bool {
	r := p.cfg.Restart
	i := 0
	for i < len(p.restarts) && now.Sub(p.restarts[i]) >= r.Window {
		i++
	}
	p.restarts = p.restarts[i:]
	if len(p.restarts) >= r.MaxRestarts {
		return false
	}
	p.restarts = append(p.restarts, now)
	return true
}

// servedWithin counts a restart at now of an instance that died while it
// served, and returns how many there were within the window. p.mu is
// held.
func (p *Pool[H]) servedWithin(now time.Time) int {
	i := 0
	for i < len(p.served) && now.Sub(p.served[i]) >= p.cfg.Restart.Window {
		i++
	}
	// Past the ceiling more of them change nothing: the list stays short
	// however many come.
	if n := len(p.served) - i; n >= maxServedKept {
		i += n - maxServedKept + 1
	}
	p.served = append(p.served[i:], now)
	return len(p.served)
}

// maxServedKept bounds the restarts servedWithin remembers: Backoff
// doubled this many times reaches any MaxBackoff.
const maxServedKept = 64

// recovered notes an instance that started after failures: the backing-off
// state ends, and its stable run begins. p.mu is held.
func (p *Pool[H]) recovered(id string) {
	if p.failures == 0 {
		return
	}
	if p.stableFrom.IsZero() {
		p.stableFrom = p.deps.Now()
	}
	if p.backingOff != "" {
		p.log.Info("template healthy again", zap.String("provider", id), zap.Int("consecutive_failures", p.failures),
			zap.String("was", p.backingOff))
		p.backingOff = ""
	}
}

// forgetIfStable forgets the failures once an instance has run for a
// whole window since the last of them: the next failure is a first one
// again, restarted at the quick pace. p.mu is held.
func (p *Pool[H]) forgetIfStable(now time.Time) {
	if p.failures > 0 && !p.stableFrom.IsZero() && now.Sub(p.stableFrom) >= p.cfg.Restart.Window {
		p.failures, p.crashLoop, p.stableFrom = 0, 0, time.Time{}
	}
}

// restartDelay is the delay before the n-th restart within the window:
// Backoff doubled for each earlier one, at most MaxBackoff.
func restartDelay(r Restart, n int) time.Duration {
	ceiling := max(r.MaxBackoff, r.Backoff)
	d := r.Backoff
	for range max(n-1, 0) {
		if d >= ceiling {
			break
		}
		d *= 2
	}
	return min(d, ceiling)
}

// crashLoopDelay is the delay before the k-th restart past the budget:
// MaxBackoff doubled k times, at most CrashLoopMaxBackoff.
func crashLoopDelay(r Restart, k int) time.Duration {
	d := max(r.MaxBackoff, r.Backoff)
	ceiling := max(r.CrashLoopMaxBackoff, d)
	if d <= 0 {
		return ceiling
	}
	for range k {
		if d >= ceiling {
			break
		}
		d *= 2
	}
	return min(d, ceiling)
}

// jitter takes up to half of d off at random, so that instances that died
// together do not restart in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
