package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// ProviderView is one provider as GET /v1/providers shows it.
type ProviderView struct {
	ID        string             `json:"id"`
	Kind      string             `json:"kind"`
	Template  string             `json:"template,omitempty"`
	Protocol  string             `json:"protocol,omitempty"`
	Critical  bool               `json:"critical"`
	State     string             `json:"state"`
	Instance  string             `json:"instance,omitempty"` // its pool's word: starting, ready, draining, dead or restarting
	DependsOn []string           `json:"depends_on"`
	Leases    int                `json:"leases"`
	Health    lifecycle.Health   `json:"health"`
	Cleanup   *lifecycle.Outcome `json:"last_cleanup,omitempty"`
	Removed   *RemovalView       `json:"removed,omitempty"`
	// Previous is the last instance that bore this id and was removed: a
	// replaced child, or one scaled down whose id was given again.
	Previous *RemovalView `json:"previous,omitempty"`
}

// RemovalView says why and when an instance was removed at run time, and
// how its cleanup ended.
type RemovalView struct {
	Reason  string             `json:"reason"`
	At      time.Time          `json:"at"`
	Error   string             `json:"error,omitempty"`
	Cleanup *lifecycle.Outcome `json:"cleanup,omitempty"`
}

func removalView(r pool.Removal) *RemovalView {
	o := r.Outcome
	v := &RemovalView{Reason: r.Reason, At: r.At, Cleanup: &o}
	if r.Err != nil {
		v.Error = lifecycle.Redact(r.Err.Error())
	}
	return v
}

// Providers describes every provider, and the last instances removed at
// run time whose ids no provider bears now.
func (e *Engine) Providers(ctx context.Context) []ProviderView {
	snap := e.recentHealth(ctx)
	var out []ProviderView
	seen := map[string]bool{}
	removed := e.removals.latest()
	last := map[string]pool.Removal{}
	for _, r := range removed {
		if _, ok := last[r.ID]; !ok {
			last[r.ID] = r
		}
	}
	for _, info := range e.reg.Providers() {
		v := ProviderView{ID: info.ID, State: info.State.String(), DependsOn: info.DependsOn, Leases: info.Leases,
			Health: snap.rep.Providers[info.ID], Cleanup: info.Outcome}
		if v.DependsOn == nil {
			v.DependsOn = []string{}
		}
		switch name, p := e.poolOf(info.ID); {
		case p != nil:
			t := e.settings.Templates[name]
			m, _ := p.Member(info.ID)
			v.Kind, v.Template, v.Protocol, v.Critical, v.Instance = t.Kind, name, t.Protocol, t.Critical, m.State
			v.Health = instanceHealth(v.Health, m, snap.at)
		case info.ID == config.StoreID:
			v.Kind, v.Critical = "sqldb", true
		case info.ID == config.AuditID:
			v.Kind, v.Critical = "file", true
		}
		if r, ok := last[info.ID]; ok {
			v.Previous = removalView(r)
		}
		seen[info.ID] = true
		out = append(out, v)
	}
	for _, r := range removed {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		t := e.settings.Templates[r.Template]
		rv := removalView(r)
		out = append(out, ProviderView{ID: r.ID, Kind: t.Kind, Template: r.Template, Protocol: t.Protocol, Critical: t.Critical,
			State: "removed", DependsOn: []string{}, Cleanup: rv.Cleanup, Removed: rv,
			Health: lifecycle.Health{Status: lifecycle.StatusUnknown, Message: "removed"}})
	}
	slices.SortFunc(out, func(a, b ProviderView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// instanceHealth is the health the provider list shows for a pool's
// instance: the last check's, unless the pool knows it is out of date. A
// child that exited since is unhealthy from the moment it was reaped, and a
// check begun before the instance's provider was built was of its
// predecessor under the same id (a replaced child: healthy, with the dead
// one's pid); until the next check, the list says so rather than show the
// predecessor's.
func instanceHealth(h lifecycle.Health, m pool.Member, checked time.Time) lifecycle.Health {
	switch {
	case m.State == "dead":
		res := map[string]any{"running": false, "exit": m.Exit.Status}
		if m.Exit.Pid != 0 {
			res["pid"] = m.Exit.Pid
		}
		msg := "exited (" + m.Exit.Status + ")"
		if m.Exit.Cut {
			msg = "cut off (" + m.Exit.Status + ")" // alive, but useless: its removal ends it
		}
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: msg, Resources: res}
	case m.State == "restarting":
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "restarting: its predecessor was removed, its replacement is due"}
	case m.Gone:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "exited", Resources: map[string]any{"running": false}}
	case m.Born.IsZero() || checked.Before(m.Born):
		return lifecycle.Health{Status: lifecycle.StatusUnknown, Message: "not checked since it was started (" + m.State + ")"}
	}
	return h
}

// poolOf finds the pool an instance is in.
func (e *Engine) poolOf(id string) (string, *pool.Pool[endpoint]) {
	for name, p := range e.pools {
		if p.Has(id) {
			return name, p
		}
	}
	return "", nil
}

// PoolView is one pool as GET /v1/pools shows it.
type PoolView struct {
	Template   string           `json:"template"`
	Protocol   string           `json:"protocol"`
	Size       int              `json:"size"`
	Starting   int              `json:"starting"`
	Min        int              `json:"min"`
	Max        int              `json:"max"`
	Busy       int              `json:"busy"`
	QueueDepth int              `json:"queue_depth"`
	Restarts   int              `json:"restarts"`
	ScaleUps   int              `json:"scale_ups"`
	ScaleDowns int              `json:"scale_downs"`
	GaveUp     string           `json:"gave_up,omitempty"`
	LastScale  *pool.ScaleEvent `json:"last_scale_event"`

	// BackingOff: more than max_restarts within the window, and no
	// instance has started since; BackoffReason says which failures,
	// NextRestart when the supervisor tries again. ConsecutiveFailures
	// counts the exits and failed starts since an instance last ran for a
	// whole window. GaveUp is BackoffReason under its earlier name: the
	// supervisor no longer gives up, but a client may look for it.
	BackingOff          bool       `json:"backing_off"`
	BackoffReason       string     `json:"backoff_reason,omitempty"`
	NextRestart         *time.Time `json:"next_restart,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	// StartFailed is why the last instance the pool started to grow did
	// not start, until one does.
	StartFailed string `json:"start_failed,omitempty"`
}

// Pools describes the templates with pool:, sorted by template.
func (e *Engine) Pools() []PoolView {
	out := []PoolView{}
	for _, s := range e.poolStats() {
		if !s.Sized {
			continue
		}
		v := PoolView{Template: s.Template, Protocol: s.Protocol, Size: s.Size, Starting: s.Starting,
			Min: s.Min, Max: s.Max, Busy: s.Busy, QueueDepth: s.QueueDepth, Restarts: s.Restarts,
			ScaleUps: s.ScaleUps, ScaleDowns: s.ScaleDowns, BackingOff: s.BackingOff != "", BackoffReason: s.BackingOff,
			ConsecutiveFailures: s.ConsecutiveFailures, GaveUp: s.BackingOff, LastScale: s.LastScale, StartFailed: s.StartFailed}
		if !s.NextRestart.IsZero() {
			v.NextRestart = &s.NextRestart
		}
		out = append(out, v)
	}
	return out
}

// lookupTimeout bounds a task's lookup: a store that does not answer is
// unavailable, not a request held open.
const lookupTimeout = 5 * time.Second

// Task returns a recorded task. An id the service could not have made is
// no task, without a query; a store that fails is unavailable, its own
// error logged rather than answered.
func (e *Engine) Task(ctx context.Context, id string) (taskstore.Record, error) {
	if !validTaskID(id) {
		return taskstore.Record{}, taskstore.ErrNoTask
	}
	db, err := e.store.DB()
	if err != nil {
		return taskstore.Record{}, e.storeFault("the task could not be looked up", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	rec, err := taskstore.Load(ctx, db, id)
	if err != nil && !errors.Is(err, taskstore.ErrNoTask) {
		return taskstore.Record{}, e.storeFault("the task could not be looked up", err)
	}
	return rec, err
}

// keptRemovals bounds the removals kept for the provider list: pools
// remove instances all day long.
const keptRemovals = 256

// removals are the last instances removed at run time, oldest first.
type removals struct {
	mu   sync.Mutex // guards list
	list []pool.Removal
}

func (r *removals) add(x pool.Removal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == keptRemovals {
		r.list = slices.Delete(r.list, 0, 1)
	}
	r.list = append(r.list, x)
}

// latest returns the removals, newest first.
func (r *removals) latest() []pool.Removal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.list)
	slices.Reverse(out)
	return out
}

// all returns the removals, oldest first.
func (r *removals) all() []pool.Removal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}
