package config

import (
	"time"

	"github.com/gleitzeit/gleitzeit/app/pool"
)

// PoolFile is a template's pool: as written. Numbers are pointers so that
// a 0 that was written (min: 0, queue: 0) is told from one left out.
type PoolFile struct {
	Min         *int     `json:"min"`
	Max         *int     `json:"max"`
	PerInstance *int     `json:"per_instance"`
	ScaleUpAt   *float64 `json:"scale_up_at"`
	ScaleDownAt *float64 `json:"scale_down_at"`
	// UtilizationWindow is how long the tasks in flight are averaged over
	// for scale_up_at and scale_down_at; "0s" judges the instant.
	UtilizationWindow string `json:"utilization_window"`
	Cooldown          string `json:"cooldown"`
	Queue             *int   `json:"queue"`
	QueueTimeout      string `json:"queue_timeout"`
}

// RestartFile is a template's restart: as written.
type RestartFile struct {
	Policy      string `json:"policy"`
	Backoff     string `json:"backoff"`
	MaxBackoff  string `json:"max_backoff"`
	MaxRestarts *int   `json:"max_restarts"`
	Window      string `json:"window"`
	// CrashLoopMaxBackoff is the longest wait between restarts past
	// max_restarts within the window.
	CrashLoopMaxBackoff string `json:"crash_loop_max_backoff"`
	// UnhealthyAfter is how long every health check must have found an
	// instance unhealthy for it to be cut off as dead and replaced.
	UnhealthyAfter string `json:"unhealthy_after"`
}

// The defaults of pool: and restart:, and why (the README says the same).
var (
	// One warm instance: the first task never waits for a start. Four at
	// most: a pod of two cores runs four single-threaded children well.
	// One task per instance: a stdio child answers in turn. Grow at 80 %,
	// shrink at 20 % after 30 s: the marks and the cooldown of the system
	// this follows, wide enough apart not to flap. Utilization averaged
	// over 5 s: long enough that one client's task at a time is not full
	// load, short enough that steady load grows the pool in seconds (and
	// tasks that wait grow it at once). A queue of 64 for 5 s:
	// a burst waits instead of failing, but not for long enough to eat
	// the task's own deadline; past that the caller is told to come back.
	defaultSizing = pool.Sizing{Min: 1, Max: 4, PerInstance: 1, ScaleUpAt: 0.8, ScaleDownAt: 0.2,
		Window: 5 * time.Second, Cooldown: 30 * time.Second, Queue: 64, QueueTimeout: 5 * time.Second}
	// A child that crashes is back in about 200 ms; one that keeps
	// crashing backs off to 10 s, and after 5 restarts within a minute the
	// supervisor says so (readiness 503 if critical and nothing serves) and
	// waits longer, doubling up to 5 minutes, Kubernetes' CrashLoopBackOff
	// ceiling, rather than spin; but it keeps trying, so that a fault that
	// passes does not leave the service unready for good.
	// A child that hangs, unhealthy at every health check for 30 s, is
	// taken for dead and replaced: a Kubernetes liveness probe's three
	// failures 10 s apart.
	defaultRestart = pool.Restart{Policy: pool.OnFailure, Backoff: 200 * time.Millisecond,
		MaxBackoff: 10 * time.Second, MaxRestarts: 5, Window: time.Minute, CrashLoopMaxBackoff: 5 * time.Minute,
		UnhealthyAfter: 30 * time.Second}
)

// resolveSizing checks pool: and fills in its defaults.
func resolveSizing(field string, f *PoolFile) (*pool.Sizing, error) {
	if f == nil {
		return nil, nil
	}
	s := defaultSizing
	for _, n := range []struct {
		name string
		in   *int
		out  *int
		low  int
	}{
		{"min", f.Min, &s.Min, 0},
		{"max", f.Max, &s.Max, 1},
		{"per_instance", f.PerInstance, &s.PerInstance, 1},
		{"queue", f.Queue, &s.Queue, 0},
	} {
		if n.in == nil {
			continue
		}
		if *n.in < n.low {
			return nil, bad(field+"."+n.name, "want at least %d, got %d", n.low, *n.in)
		}
		*n.out = *n.in
	}
	if f.Max == nil {
		s.Max = max(s.Max, s.Min)
	}
	if s.Min > s.Max {
		return nil, bad(field+".min", "%d is more than max (%d)", s.Min, s.Max)
	}
	if s.Max > 64 {
		return nil, bad(field+".max", "want at most 64 instances, got %d", s.Max)
	}
	for _, m := range []struct {
		name string
		in   *float64
		out  *float64
	}{{"scale_up_at", f.ScaleUpAt, &s.ScaleUpAt}, {"scale_down_at", f.ScaleDownAt, &s.ScaleDownAt}} {
		if m.in == nil {
			continue
		}
		if *m.in < 0 || *m.in > 1 {
			return nil, bad(field+"."+m.name, "want a utilization from 0 to 1, got %v", *m.in)
		}
		*m.out = *m.in
	}
	if s.ScaleDownAt >= s.ScaleUpAt {
		return nil, bad(field+".scale_down_at", "%v is not below scale_up_at (%v): the pool would flap", s.ScaleDownAt, s.ScaleUpAt)
	}
	if s.ScaleUpAt == 0 {
		return nil, bad(field+".scale_up_at", "must be above 0")
	}
	for _, d := range []struct {
		name   string
		in     string
		out    *time.Duration
		zeroOK bool
	}{{"cooldown", f.Cooldown, &s.Cooldown, false}, {"queue_timeout", f.QueueTimeout, &s.QueueTimeout, false},
		{"utilization_window", f.UtilizationWindow, &s.Window, true}} {
		if d.in == "" {
			continue
		}
		v, err := duration(field+"."+d.name, d.in, d.zeroOK)
		if err != nil {
			return nil, err
		}
		*d.out = v
	}
	return &s, nil
}

// resolveRestart checks restart: and fills in its defaults. A template
// whose provider has no child (ollama) takes none.
func resolveRestart(field, kind string, f *RestartFile) (pool.Restart, error) {
	r := defaultRestart
	if kind == "ollama" {
		if f != nil {
			return r, bad(field, "set for an ollama template: it has no child process to restart")
		}
		r.Policy = pool.Never
		r.UnhealthyAfter = 0 // its server is not ours to replace
		return r, nil
	}
	if f == nil {
		return r, nil
	}
	if f.Policy != "" {
		p, err := pool.ParsePolicy(f.Policy)
		if err != nil {
			return r, bad(field+".policy", "%v", err)
		}
		r.Policy = p
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"backoff", f.Backoff, &r.Backoff}, {"max_backoff", f.MaxBackoff, &r.MaxBackoff}, {"window", f.Window, &r.Window},
		{"crash_loop_max_backoff", f.CrashLoopMaxBackoff, &r.CrashLoopMaxBackoff}, {"unhealthy_after", f.UnhealthyAfter, &r.UnhealthyAfter}} {
		if d.in == "" {
			continue
		}
		v, err := duration(field+"."+d.name, d.in, false)
		if err != nil {
			return r, err
		}
		*d.out = v
	}
	if f.MaxRestarts != nil {
		if *f.MaxRestarts < 0 {
			return r, bad(field+".max_restarts", "want 0 or more, got %d", *f.MaxRestarts)
		}
		r.MaxRestarts = *f.MaxRestarts
	}
	if r.MaxBackoff < r.Backoff {
		return r, bad(field+".max_backoff", "%v is less than backoff (%v)", r.MaxBackoff, r.Backoff)
	}
	if r.CrashLoopMaxBackoff < r.MaxBackoff {
		if f.CrashLoopMaxBackoff != "" {
			return r, bad(field+".crash_loop_max_backoff", "%v is less than max_backoff (%v)", r.CrashLoopMaxBackoff, r.MaxBackoff)
		}
		r.CrashLoopMaxBackoff = r.MaxBackoff // a max_backoff above the default ceiling is the ceiling
	}
	// A crash loop must be able to reach max_restarts within the window:
	// its restarts are at most their backoffs apart.
	if spread := restartSpread(r); r.MaxRestarts > 0 && r.Window <= spread {
		return r, bad(field+".window", "%v is not longer than the backoffs of %d restarts (%v, from backoff doubling up to max_backoff): a crash loop would never add up to max_restarts within it, and never be backed off",
			r.Window, r.MaxRestarts, spread)
	}
	return r, nil
}

// restartSpread is the longest time max_restarts restarts can take: the
// sum of their backoffs before jitter, each double the last, up to
// max_backoff.
func restartSpread(r pool.Restart) time.Duration {
	var sum time.Duration
	d := r.Backoff
	for range r.MaxRestarts {
		sum += d
		d = min(2*d, r.MaxBackoff)
	}
	return sum
}

// checkUnhealthyAfter holds a template's restart.unhealthy_after to at
// least the health interval: it is judged by the checks, which a shorter
// bound could not tell from the first unhealthy one and the next. Left
// out, the default is raised to the interval.
func checkUnhealthyAfter(field string, t *Template, interval time.Duration) error {
	r := &t.Supervision
	if r.UnhealthyAfter == 0 || r.UnhealthyAfter >= interval {
		return nil
	}
	if t.Restart != nil && t.Restart.UnhealthyAfter != "" {
		return bad(field+".restart.unhealthy_after", "%v is shorter than health_interval (%v): the health checks judge it", r.UnhealthyAfter, interval)
	}
	r.UnhealthyAfter = interval
	return nil
}
