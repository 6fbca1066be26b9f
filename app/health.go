package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// healthSnapshot is one health check of every provider, and when it ended.
type healthSnapshot struct {
	rep lifecycle.HealthReport
	at  time.Time
}

func (e *Engine) poll(stop, done chan struct{}) {
	defer close(done)
	// A poll in progress ends when stop is closed: a provider whose check
	// hangs for the whole health timeout must not hold up the engine's stop,
	// which comes out of the providers' cleanup reserve.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(e.settings.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			e.pollHealth(ctx)
		case <-stop:
			return
		}
	}
}

func (e *Engine) pollHealth(ctx context.Context) {
	begun := time.Now()
	rep := e.reg.Health(ctx)
	// Stamped with the check's start: an instance that became ready while
	// it ran is not judged by it.
	e.health.Store(&healthSnapshot{rep: rep, at: begun})
	e.metrics.observeHealth(rep)
	e.watch.health(begun, rep)
	e.probeStore(ctx, rep)
	if e.started.Load() && !e.draining.Load() {
		e.watch.ready(e.readyWith(rep))
	}
	sick := unhealthyIn(rep)
	for _, p := range e.pools {
		p.Checked(begun, sick) // a child that hangs is cut off once it has for restart.unhealthy_after
		p.Recheck()            // an instance that came back takes what waits
	}
}

// unhealthyIn says, for the pools, what a check found of an instance, and
// why.
func unhealthyIn(rep lifecycle.HealthReport) func(id string) (pool.Health, string) {
	return func(id string) (pool.Health, string) {
		h, ok := rep.Providers[id]
		switch {
		case !ok, h.Status == lifecycle.StatusHealthy:
			return pool.Healthy, ""
		case h.Status == lifecycle.StatusDegraded:
			return pool.Degraded, h.Message
		}
		return pool.Unhealthy, h.Message
	}
}

// usable reports whether an instance, ready since the given time, may take
// tasks: its child running (a check of its own, without a call: a child
// that died a moment ago must not be handed a task that waited for it),
// and not unhealthy at the last check, if that check was made since. A
// replacement bears its dead predecessor's id, whose last check must not
// keep it out.
func (e *Engine) usable(id string, p lifecycle.Provider, since time.Time) bool {
	if r, ok := p.(interface{ Running() bool }); ok && !r.Running() {
		return false
	}
	snap := e.health.Load()
	if snap == nil || snap.at.Before(since) {
		return true
	}
	h, ok := snap.rep.Providers[id]
	return !ok || h.Status != lifecycle.StatusUnhealthy
}

// unhealthy says which instances of the pools the last check called
// unhealthy, and why.
func (e *Engine) unhealthy(pools []*pool.Pool[endpoint]) []string {
	snap := e.health.Load()
	if snap == nil {
		return nil
	}
	var why []string
	for _, p := range pools {
		for _, id := range p.Members() {
			if h, ok := snap.rep.Providers[id]; ok && h.Status == lifecycle.StatusUnhealthy {
				why = append(why, id+": "+h.Message)
			}
		}
	}
	return why
}

// recentHealth returns the last health check if it is recent (within two
// poll intervals), and checks again otherwise. Probes and the provider
// list read it, so looking at the service does not call every provider
// (and count against an Ollama breaker) once per look.
func (e *Engine) recentHealth(ctx context.Context) healthSnapshot {
	if snap := e.health.Load(); snap != nil && time.Since(snap.at) <= 2*e.settings.HealthInterval {
		return *snap
	}
	return e.liveHealth(ctx)
}

// liveHealth checks every provider now. Concurrent callers share one
// check, which is not cut short by any one caller's context: a caller that
// goes away gets the last result.
func (e *Engine) liveHealth(ctx context.Context) healthSnapshot {
	ch := e.recheck.DoChan("health", func() (any, error) {
		e.pollHealth(context.Background())
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
	if snap := e.health.Load(); snap != nil {
		return *snap
	}
	return healthSnapshot{rep: lifecycle.HealthReport{Status: lifecycle.StatusUnknown}}
}

// Ready reports whether the service should receive traffic: started, not
// shutting down, the store and the audit log healthy, and every critical
// template serving. A critical template without pool: needs each of its
// instances healthy (degraded counts: it still serves); a critical pool
// needs one healthy instance. A template that does not serve while its
// supervisor backs off says so, and when it tries again: it becomes ready
// again on its own once an instance serves. A store whose health check
// passes is not ready either while it cannot record tasks (see probeStore),
// nor an audit log whose writes fail, from the moment its writer tells it
// rather than the next poll's check (see auditFailing): tasks are refused
// from then.
func (e *Engine) Ready(ctx context.Context) (bool, []string) {
	switch {
	case e.draining.Load():
		return false, []string{"shutting down"}
	case !e.started.Load():
		return false, []string{"starting"}
	}
	return e.readyWith(e.recentHealth(ctx).rep)
}

// readyWith is Ready judged by the health report given: the pools' states
// are read now.
func (e *Engine) readyWith(rep lifecycle.HealthReport) (bool, []string) {
	serving := func(id string) (bool, string) {
		h, ok := rep.Providers[id]
		if !ok {
			return true, "" // removed, or registered since the check
		}
		if h.Status != lifecycle.StatusHealthy && h.Status != lifecycle.StatusDegraded {
			if id == config.StoreID {
				// The database's own words (its host, user, database) are
				// for the log, where the store's transition puts them:
				// /readyz answers anyone who can reach the port.
				return false, fmt.Sprintf("%s is %s: the task store is unavailable (its error is in the log)", id, h.Status)
			}
			return false, fmt.Sprintf("%s is %s: %s", id, h.Status, h.Message)
		}
		return true, ""
	}
	why := []string{}
	for _, id := range []string{config.StoreID, config.AuditID} {
		if ok, reason := serving(id); !ok {
			why = append(why, reason)
		}
	}
	if ok, _ := serving(config.AuditID); ok {
		// The check may predate the audit log's failure, which refuses
		// tasks from the moment it begins: its writer told it at once.
		if reason := e.failing.reason(); reason != "" {
			why = append(why, fmt.Sprintf("%s is %s: %s", config.AuditID, lifecycle.StatusUnhealthy, reason))
		}
	}
	if ok, _ := serving(config.StoreID); ok && e.watch.storeFailing() {
		// Its health check passes, but it failed to record a task, and
		// neither a record nor the poll's probe has committed since.
		why = append(why, config.StoreID+": the task store cannot record tasks (its error is in the log)")
	}
	for name, p := range e.pools {
		if !e.settings.Templates[name].Critical {
			continue
		}
		before := len(why)
		var down, starting []string
		up := 0
		for _, id := range p.Members() {
			m, _ := p.Member(id)
			switch m.State {
			case "ready":
				if ok, reason := serving(id); ok {
					up++
				} else {
					down = append(down, reason)
				}
			case "dead":
				if m.Exit.Cut {
					down = append(down, id+" was cut off ("+m.Exit.Status+")") // alive, but useless
				} else {
					down = append(down, id+" exited ("+m.Exit.Status+")")
				}
			case "restarting":
				down = append(down, id+" is restarting")
			case "starting":
				starting = append(starting, id+" is starting")
			}
		}
		switch st := p.Stats(); {
		case p.Config().Sizing == nil:
			why = append(why, down...)
		case up == 0 && st.Min == 0 && len(down) == 0 && st.StartFailed == "" && st.BackingOff == "":
			// Empty by its own choice, or starting what a task asked for:
			// a pool of min 0 serves on demand.
		case up == 0:
			// Each instance and what it is doing: an operator reads which
			// is dead, which is coming back.
			what := slices.Concat(down, starting)
			if st.StartFailed != "" {
				what = append(what, "its last start failed: "+st.StartFailed)
			}
			if len(what) == 0 {
				what = []string{"it has none"}
			}
			why = append(why, fmt.Sprintf("pool %s has no healthy instance: %s", name, strings.Join(what, "; ")))
		}
		if len(why) > before {
			why = append(why, backoffReason(name, p.Stats())...)
		}
	}
	slices.Sort(why)
	return len(why) == 0, why
}

// backoffReason says, for readiness, that a template's supervisor backs
// off its restarts, and when it tries again; nothing if it does not.
func backoffReason(name string, s pool.Stats) []string {
	if s.BackingOff == "" {
		return nil
	}
	next := ""
	if !s.NextRestart.IsZero() {
		next = "; next restart at " + s.NextRestart.UTC().Format(time.RFC3339)
	}
	return []string{fmt.Sprintf("template %s is backing off its restarts: %s%s", name, s.BackingOff, next)}
}
