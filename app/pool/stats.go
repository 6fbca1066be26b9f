package pool

import (
	"time"

	"go.uber.org/zap"
)

// Stats is a pool at one moment, for the admin API and the metrics.
type Stats struct {
	Template string
	Protocol string
	Sized    bool // the template has pool:
	Min, Max int  // 0 for a template without pool:
	// Size counts the instances that take tasks or are starting (a
	// restart due included); draining and dead ones are not counted.
	Size       int
	Starting   int
	Busy       int // tasks in flight
	QueueDepth int
	Counts
	// BackingOff says why the supervisor backs off the template's
	// restarts; "" while it does not. NextRestart is when the next
	// replacement starts (zero if none is due), and ConsecutiveFailures
	// counts the exits and failed starts since an instance last ran for a
	// whole window.
	BackingOff          string
	NextRestart         time.Time
	ConsecutiveFailures int
	// StartFailed is why the last instance the scaler started did not
	// start; "" once one has. A pool of min 0 with none is empty not by
	// its own choice, and tries again after each wait.
	StartFailed string
	LastScale   *ScaleEvent
}

// Stats reads the pool.
func (p *Pool[H]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Template: p.cfg.Template, Protocol: p.cfg.Protocol, Sized: p.cfg.Sizing != nil,
		QueueDepth: len(p.queue), Counts: p.counts, BackingOff: p.backingOff, NextRestart: p.nextRestart(), StartFailed: p.startFailed}
	p.forgetIfStable(p.deps.Now())
	s.ConsecutiveFailures = p.failures
	if p.cfg.Sizing != nil {
		s.Min, s.Max = p.cfg.Sizing.Min, p.cfg.Sizing.Max
	}
	for _, m := range p.members {
		switch m.state {
		case ready:
			s.Size++
		case starting, waiting:
			s.Size++
			s.Starting++
		}
		s.Busy += m.inflight
	}
	if p.last != nil {
		e := *p.last
		s.LastScale = &e
	}
	return s
}

// nextRestart is when the first replacement due starts, or, with none
// due after a failed start, when the scaler may start one again; zero if
// neither is. p.mu is held.
func (p *Pool[H]) nextRestart() time.Time {
	var next time.Time
	for _, m := range p.members {
		if m.state == waiting && (next.IsZero() || m.due.Before(next)) {
			next = m.due
		}
	}
	if next.IsZero() && p.startFailed != "" && p.deps.Now().Before(p.holdUntil) {
		next = p.holdUntil
	}
	return next
}

func zapScale(e *ScaleEvent) []zap.Field {
	return []zap.Field{zap.Int("from", e.From), zap.Int("to", e.To), zap.String("reason", e.Reason)}
}
