package pool

import (
	"fmt"
	"time"
)

// Health is what a health check found of an instance, as Checked needs
// it.
type Health int

const (
	Healthy   Health = iota // or not checked: the count begins anew
	Degraded                // busy: its health call ran out of time while calls were in flight
	Unhealthy               // anything else that is not healthy
)

// Checked tells the pool what the health check begun at the time given
// found of its instances: found says, for an instance's id, what the check
// found and, if not healthy, why; it is called with the pool's lock held,
// so it must not call the pool. An instance that every check has found
// unhealthy, from one begun Restart.UnhealthyAfter or longer before this
// one, is cut off as dead: a child that hangs but stays alive (a stdio
// server stuck in a loop, a stopped process) never exits by itself, and
// would keep the template unhealthy for good. Only a ready instance
// counts, and only checks begun since it became ready. A check that found
// it healthy begins the count anew; so does one that found it degraded (a
// child busy with a long call is not broken), unless a task ran out of
// time on it since it was last healthy (Lease.TimedOut): then degraded
// counts as unhealthy, or a hung child that tasks keep busy would never be
// cut off.
func (p *Pool[H]) Checked(at time.Time, found func(id string) (Health, string)) {
	after := p.cfg.Restart.UnhealthyAfter
	if after <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.members {
		if m.state != ready || at.Before(m.since) {
			continue
		}
		h, why := found(m.id)
		if h == Healthy {
			m.stalled = false
		}
		switch sick := h == Unhealthy || h == Degraded && m.stalled; {
		case !sick:
			m.sickSince, m.sickWhy = time.Time{}, ""
		case m.sickSince.IsZero():
			m.sickSince, m.sickWhy = at, why
		default:
			m.sickWhy = why
			if at.Sub(m.sickSince) >= after {
				p.cutUnhealthy(m, at.Sub(m.sickSince))
			}
		}
	}
}

// cutUnhealthy takes an instance that has been unhealthy for too long for
// dead: its tasks fail, and the restart policy follows, as for a child
// whose output broke; its removal ends the child. exitedLocked logs it,
// once, at warn. p.mu is held.
func (p *Pool[H]) cutUnhealthy(m *member[H], sick time.Duration) {
	why := fmt.Sprintf("unhealthy at every health check for %v (at least %v): %s",
		sick.Round(time.Millisecond), p.cfg.Restart.UnhealthyAfter, m.sickWhy)
	p.exitedLocked(m, Exit{Status: why, Failed: true, Cut: true})
}
