package pool

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// ScaleEvent is one change of a pool's size and why it was made.
type ScaleEvent struct {
	Direction string    `json:"direction"` // "up" or "down"
	From      int       `json:"from"`
	To        int       `json:"to"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// load is what a scaling decision looks at.
type load struct {
	ready      int     // instances that take tasks
	starting   int     // instances starting or due to restart: capacity on its way
	dead       int     // instances whose child exited, kept, or ready but unusable (unhealthy): they hold their place below Max
	inflight   int     // tasks on the ready instances now
	averaged   float64 // the same, averaged over Sizing.Window: what utilization is judged by
	queued     int
	now        time.Time
	lowSince   time.Time // zero while utilization is above ScaleDownAt
	held       bool      // growth is held back after a failed start
	backingOff bool      // the supervisor backs off
	pending    bool      // a restart is due: while it backs off, growth would only crash too
	// startFailed: the scaler's last start failed, and none has succeeded
	// since.
	startFailed bool
}

// decision is what to do about a load.
type decision struct {
	grow, shrink int
	lowSince     time.Time
	reason       string
}

// utilization is the tasks in flight over what the ready instances take.
// With no instance ready, any task, running or waiting, is full load.
func utilization(l load, per int) float64 {
	if l.ready == 0 {
		if l.averaged > 0 || l.queued > 0 {
			return 1
		}
		return 0
	}
	return l.averaged / float64(l.ready*per)
}

// growthHeld reports whether the pool may not grow now: a start failed a
// moment ago, or the supervisor backs off and a restart is due, which
// growth would only duplicate.
func (l load) growthHeld() bool { return l.held || l.backingOff && l.pending }

// decide is the scaling policy, a pure function of the load and the
// sizing: see the package doc.
func decide(s Sizing, l load) decision {
	u := utilization(l, s.PerInstance)
	d := decision{lowSince: l.lowSince}
	if l.startFailed && !l.growthHeld() && l.ready+l.starting == 0 {
		// Its starts failed and none is left to serve or restart (a pool
		// of min 0): one start once the wait is over, load or not, or it
		// would not come back until a task came, and none comes to a
		// service that is not ready.
		d.grow, d.reason = 1, "trying a start again after the last failed"
		return d
	}
	if u >= s.ScaleUpAt || l.queued > 0 {
		d.lowSince = time.Time{}
		if l.growthHeld() {
			return d
		}
		// Enough instances for what runs now and what waits, at once,
		// whatever the window says; and when full without a queue, one
		// more, so the next task finds room.
		want := instancesFor(float64(l.inflight+l.queued), float64(s.PerInstance))
		if u >= s.ScaleUpAt {
			want = max(want, l.ready+1)
		}
		want = min(want, s.Max-l.dead)
		if grow := want - (l.ready + l.starting); grow > 0 {
			d.grow = grow
			d.reason = fmt.Sprintf("utilization %.2f ≥ %.2f, %d tasks waiting", u, s.ScaleUpAt, l.queued)
			if u < s.ScaleUpAt {
				d.reason = fmt.Sprintf("%d tasks waiting", l.queued)
			}
		}
		return d
	}
	if u > s.ScaleDownAt || l.starting > 0 {
		d.lowSince = time.Time{}
		return d
	}
	if l.lowSince.IsZero() {
		d.lowSince = l.now
		return d
	}
	if l.now.Sub(l.lowSince) < s.Cooldown || l.ready <= s.Min {
		return d
	}
	// What the tasks in flight need to stay below ScaleUpAt, at least Min.
	target := max(s.Min, instancesFor(max(l.averaged, float64(l.inflight)), float64(s.PerInstance)*s.ScaleUpAt))
	if shrink := l.ready - target; shrink > 0 {
		d.shrink = shrink
		d.lowSince = l.now // another whole cooldown before the next
		d.reason = fmt.Sprintf("utilization %.2f ≤ %.2f for %v", u, s.ScaleDownAt, s.Cooldown)
	}
	return d
}

// instancesFor is how many instances tasks need at per each. An average
// that sums to a whole number plus a rounding error needs no extra one.
func instancesFor(tasks, per float64) int { return int(math.Ceil(tasks/per - 1e-9)) }

// scaler looks at the load when woken (a task admitted or queued) and
// every tick (for the cooldown), until the pool closes.
func (p *Pool[H]) scaler() {
	tick := time.NewTicker(tickEvery(p.cfg.Sizing.Cooldown))
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-tick.C:
		}
		p.scale()
	}
}

// tickEvery is how often the scaler looks without being woken: a tenth of
// the cooldown, within 20 ms to 500 ms.
func tickEvery(cooldown time.Duration) time.Duration {
	return min(max(cooldown/10, 20*time.Millisecond), 500*time.Millisecond)
}

func (p *Pool[H]) scale() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.quiet {
		return
	}
	l := p.loadLocked()
	d := decide(*p.cfg.Sizing, l)
	p.lowSince = d.lowSince
	from := l.ready + l.starting
	if d.grow > 0 {
		for range d.grow {
			m := &member[H]{id: p.freeID(), state: starting, since: l.now}
			p.members[m.id] = m
			p.goLocked(func() { p.start(m) })
		}
		p.record("up", from, from+d.grow, d.reason, l.now)
	}
	if d.shrink > 0 {
		var idle []*member[H]
		for _, m := range p.members {
			if m.state == ready && m.inflight == 0 {
				idle = append(idle, m)
			}
		}
		// The newest go first: the oldest have warm caches and low numbers.
		slices.SortFunc(idle, func(a, b *member[H]) int { return compareIDs(b.id, a.id) })
		idle = idle[:min(d.shrink, len(idle))]
		for _, m := range idle {
			m.state = draining // under the lock that admits tasks: none reaches it now
			p.removeLocked(func() { p.drain(m, "scaled down") })
		}
		if len(idle) > 0 {
			p.record("down", from, from-len(idle), d.reason, l.now)
		}
	}
}

// loadLocked reads the pool's load. p.mu is held.
func (p *Pool[H]) loadLocked() load {
	l := load{now: p.deps.Now(), lowSince: p.lowSince, queued: len(p.queue), backingOff: p.backingOff != "", startFailed: p.startFailed != ""}
	l.held = l.now.Before(p.holdUntil)
	l.inflight, l.averaged = p.measureLocked(l.now)
	for _, m := range p.members {
		l.pending = l.pending || m.state == waiting || m.replacing
		switch {
		case m.state == ready && p.usable(m):
			l.ready++
		case m.state == ready:
			// Unhealthy: no capacity now, but a place below Max. What it
			// runs still counts, so that an unusable pool grows.
			l.dead++
		case m.state == starting, m.state == waiting:
			l.starting++
		case m.state == dead:
			l.dead++
		}
	}
	return l
}

// measureLocked tells the meter how many tasks are in flight now, and
// returns that count and its average over the window (without one, the
// count again). p.mu is held; every change of the count calls it.
func (p *Pool[H]) measureLocked(now time.Time) (int, float64) {
	n := 0
	for _, m := range p.members {
		if m.state == ready {
			n += m.inflight
		}
	}
	if p.meter == nil {
		return n, float64(n)
	}
	p.meter.set(now, n)
	return n, p.meter.average(now)
}

// counted tells the meter that the tasks in flight changed. p.mu is held.
func (p *Pool[H]) counted() {
	if p.meter != nil {
		p.measureLocked(p.deps.Now())
	}
}

// freeID is the lowest-numbered id no instance bears. p.mu is held.
func (p *Pool[H]) freeID() string {
	for n := 1; ; n++ {
		if id := InstanceID(p.cfg.Template, n); p.members[id] == nil {
			return id
		}
	}
}

func (p *Pool[H]) record(direction string, from, to int, reason string, at time.Time) {
	p.last = &ScaleEvent{Direction: direction, From: from, To: to, Reason: reason, At: at}
	if direction == "up" {
		p.counts.ScaleUps++
	} else {
		p.counts.ScaleDowns++
	}
	p.log.Info("pool scaled "+direction, zapScale(p.last)...)
}
