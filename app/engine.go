package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Errors of the engine, each with its HTTP status in the admin server.
var (
	errShuttingDown = errors.New("the service is shutting down")
	// errStoreUnavailable: the task store cannot record a task, so the
	// service refuses it (before it runs) or cannot vouch for its outcome.
	errStoreUnavailable = errors.New("the task store is unavailable")
	errNoProtocol       = errors.New("no provider serves this protocol")
	errNoProvider       = errors.New("no healthy provider is available for this protocol")
	errUnknownID        = errors.New("no such provider")
	errNotRemovable     = errors.New("this provider is not a template instance and cannot be removed")
)

// Task is a unit of work: a method of a protocol, with its params.
type Task struct {
	Protocol string          `json:"protocol"`
	Method   string          `json:"method"`
	Params   json.RawMessage `json:"params,omitempty"`
	// Timeout, if set, shortens the task's deadline below task_timeout.
	Timeout string `json:"timeout,omitempty"`
}

// instance is a provider made from a template.
type instance struct {
	id       string
	template string
	tmpl     Template
	provider lifecycle.Provider
	handle   handler
	draining atomic.Bool // being removed: no new task reaches it
	inflight atomic.Int64
}

// Engine runs tasks on the providers that serve their protocol, each under
// a lease from the registry, and records every task in the store and the
// audit log.
type Engine struct {
	reg      *lifecycle.Registry
	store    *sqldb.DB
	audit    *file.Writer
	settings *Settings
	log      *zap.Logger
	metrics  *Metrics

	mu        sync.RWMutex // guards instances
	instances map[string]*instance

	// tasks is the parent of every task's context: CancelTasks cuts the
	// tasks in flight short when the shutdown's HTTP time runs out.
	tasks       context.Context
	cancelTasks context.CancelCauseFunc
	running     atomic.Int64 // tasks between pick and answer

	health   atomic.Pointer[healthSnapshot] // the last check's
	recheck  singleflight.Group             // live checks that routing and probes share
	started  atomic.Bool
	draining atomic.Bool // shutdown began: readiness answers 503
	stopped  atomic.Bool // the engine stopped: tasks are refused

	pollStop chan struct{}
	stopPoll sync.Once
	pollDone chan struct{}
}

type engineParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Registry  *lifecycle.Registry
	Store     *sqldb.DB
	Audit     *file.Writer
	Settings  *Settings
	Log       *zap.Logger
	Metrics   *Metrics
}

// newEngine registers the configured providers, which the registry then
// initializes when it starts.
func newEngine(p engineParams) (*Engine, error) {
	e := &Engine{reg: p.Registry, store: p.Store, audit: p.Audit, settings: p.Settings, log: p.Log.Named("engine"),
		metrics: p.Metrics, instances: map[string]*instance{}}
	e.tasks, e.cancelTasks = context.WithCancelCause(context.Background())
	for _, in := range p.Settings.Providers {
		if err := e.add(in.ID, in.Template); err != nil {
			return nil, err
		}
	}
	p.Metrics.watch(p.Registry)
	p.Lifecycle.Append(fx.Hook{OnStart: e.start, OnStop: e.stop})
	return e, nil
}

// start prepares the store and begins polling health.
func (e *Engine) start(ctx context.Context) error {
	db, err := e.store.DB()
	if err != nil {
		return err
	}
	if err := migrate(ctx, db); err != nil {
		return err
	}
	e.pollHealth(ctx)
	e.pollStop, e.pollDone = make(chan struct{}), make(chan struct{})
	go e.poll(e.pollStop, e.pollDone)
	e.started.Store(true)
	return nil
}

// stop refuses further tasks and stops polling. It runs after the admin
// server has finished its requests, and before the providers are cleaned up.
func (e *Engine) stop(context.Context) error {
	e.draining.Store(true)
	e.stopped.Store(true)
	e.cancelTasks(errCutShort) // none is left: the admin server has answered every request
	e.stopPoll.Do(func() {     // fx calls stop once; a test may call it first
		if e.pollStop != nil {
			close(e.pollStop)
			<-e.pollDone
		}
	})
	return nil
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
	rep := e.reg.Health(ctx)
	e.health.Store(&healthSnapshot{rep: rep, at: time.Now()})
	e.metrics.observeHealth(rep)
}

// usable returns the candidates that rep does not call unhealthy, and why
// the others are not.
func usable(candidates []*instance, rep *lifecycle.HealthReport) (healthy []*instance, why []string) {
	for _, in := range candidates {
		if rep != nil {
			if h, ok := rep.Providers[in.id]; ok && h.Status == lifecycle.StatusUnhealthy {
				why = append(why, in.id+": "+h.Message)
				continue
			}
		}
		healthy = append(healthy, in)
	}
	return healthy, why
}

// count adds the task to the metrics. A protocol no provider serves is
// counted as "unknown": the label is the client's to choose, and a label
// per made-up protocol would grow the metrics without bound.
func (e *Engine) count(rec TaskRecord, served bool) {
	if !served {
		rec.Protocol = "unknown"
	}
	e.metrics.observeTask(rec)
}

// healthSnapshot is one health check of every provider, and when it ended.
type healthSnapshot struct {
	rep lifecycle.HealthReport
	at  time.Time
}

// recentHealth returns the last health check if it is recent (within two
// poll intervals), and checks again otherwise. Probes and the provider
// list read it, so looking at the service does not call every provider
// (and count against an Ollama breaker) once per look.
func (e *Engine) recentHealth(ctx context.Context) lifecycle.HealthReport {
	if snap := e.health.Load(); snap != nil && time.Since(snap.at) <= 2*e.settings.HealthInterval {
		return snap.rep
	}
	return e.liveHealth(ctx)
}

// liveHealth checks every provider now. Concurrent callers share one
// check, which is not cut short by any one caller's context: a caller that
// goes away gets the last result.
func (e *Engine) liveHealth(ctx context.Context) lifecycle.HealthReport {
	ch := e.recheck.DoChan("health", func() (any, error) {
		e.pollHealth(context.Background())
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
	if snap := e.health.Load(); snap != nil {
		return snap.rep
	}
	return lifecycle.HealthReport{Status: lifecycle.StatusUnknown}
}

// BeginShutdown turns readiness to 503 at once; tasks are still served
// until the admin server stops taking requests.
func (e *Engine) BeginShutdown() { e.draining.Store(true) }

// errCutShort is the cause of a task's context that CancelTasks ended.
var errCutShort = errors.New("the service is shutting down: the task was cut short")

// CancelTasks cancels every task in flight and refuses new ones. Their
// handlers answer 503 and record them. It returns how many were running.
func (e *Engine) CancelTasks() int {
	e.stopped.Store(true)
	e.cancelTasks(errCutShort)
	return int(e.running.Load())
}

// build makes a provider from a template.
func (e *Engine) build(id string, t Template) (lifecycle.Provider, handler, error) {
	switch t.Kind {
	case "ollama":
		p, err := ollama.New(ollama.Config{ID: id, URL: t.Ollama.URL, Protocol: t.Protocol})
		if err != nil {
			return nil, nil, err
		}
		return p, llmHandler(p), nil
	case "process":
		grace, _ := time.ParseDuration(t.Process.Grace) // checked by Load
		log := e.log.With(zap.String("provider", id))
		p, err := process.New(process.Config{ID: id, Command: t.Process.Command, Dir: t.Process.Dir,
			Env: t.Process.Env, InheritEnv: t.Process.InheritEnv, Protocol: t.Protocol,
			Stderr: newChildStderr(e.log, id),
			OnOutputError: func(err error) {
				log.Error("child process output is not JSON-RPC: it cannot be used", zap.String("error", lifecycle.Redact(err.Error())))
			}, Grace: grace, ReadyMethod: t.Process.ReadyMethod, HealthMethod: t.Process.HealthMethod})
		if err != nil {
			return nil, nil, err
		}
		return p, rpcHandler(p), nil
	}
	return nil, nil, fmt.Errorf("template kind %q", t.Kind)
}

// add instantiates a template and registers the provider: before the
// registry starts, Start initializes it; after, Register does.
func (e *Engine) add(id, template string) error {
	t, ok := e.settings.Templates[template]
	if !ok {
		return fmt.Errorf("%w: no template %q", errBadRequest, template)
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: provider id %q: want lowercase letters, digits, '.', '_' or '-'", errBadRequest, id)
	}
	p, h, err := e.build(id, t)
	if err != nil {
		return fmt.Errorf("provider %q from template %q: %w", id, template, err)
	}
	var opts []lifecycle.RegisterOption
	if t.Timeout != "" {
		d, _ := time.ParseDuration(t.Timeout) // checked by Load
		opts = append(opts, lifecycle.Timeout(d))
	}
	if err := e.reg.Register(p, opts...); err != nil {
		return err
	}
	e.mu.Lock()
	e.instances[id] = &instance{id: id, template: template, tmpl: t, provider: p, handle: h}
	e.mu.Unlock()
	e.log.Info("provider added", zap.String("provider", id), zap.String("template", template), zap.String("protocol", t.Protocol))
	return nil
}

// Add instantiates a template at run time.
func (e *Engine) Add(id, template string) error {
	if e.draining.Load() {
		return errShuttingDown
	}
	return e.add(id, template)
}

// Remove stops new tasks from reaching a provider, waits for its leases
// (the tasks running on it), and cleans it up.
func (e *Engine) Remove(ctx context.Context, id string) (lifecycle.Outcome, error) {
	e.mu.RLock()
	in := e.instances[id]
	e.mu.RUnlock()
	if in == nil {
		if id == storeID || id == auditID {
			return lifecycle.Outcome{}, errNotRemovable
		}
		return lifecycle.Outcome{}, fmt.Errorf("%w: %q", errUnknownID, id)
	}
	in.draining.Store(true)
	err := e.reg.Unregister(ctx, id)
	if errors.Is(err, lifecycle.ErrHasDependents) {
		in.draining.Store(false)
		return lifecycle.Outcome{}, err
	}
	e.mu.Lock()
	if e.instances[id] == in {
		delete(e.instances, id)
	}
	e.mu.Unlock()
	out := e.metrics.lastOutcome(id)
	e.log.Info("provider removed", zap.String("provider", id), zap.Stringer("result", out.Result))
	return out, err
}

// Run runs a task on a provider of its protocol and records it.
func (e *Engine) Run(ctx context.Context, t Task) (TaskRecord, error) {
	// A request refused before it is recorded gets no id: every id the
	// service answers with can be looked up.
	if e.stopped.Load() || !e.started.Load() {
		return TaskRecord{}, errShuttingDown
	}
	timeout := e.settings.TaskTimeout
	if t.Timeout != "" {
		d, err := time.ParseDuration(t.Timeout)
		if err != nil || d <= 0 {
			return TaskRecord{}, fmt.Errorf("%w: timeout: want a positive duration such as 5s, got %q", errBadRequest, t.Timeout)
		}
		timeout = min(timeout, d)
	}
	if t.Protocol == "" || t.Method == "" {
		return TaskRecord{}, fmt.Errorf("%w: protocol and method are required", errBadRequest)
	}
	rec := TaskRecord{ID: newTaskID(), Protocol: t.Protocol, Method: t.Method, Status: "running", Started: time.Now()}
	// Recorded before it reaches a provider: a task the store cannot take
	// does not run, so nothing runs unrecorded and a retry runs nothing
	// twice.
	if err := e.record(rec, beginTask); err != nil {
		return TaskRecord{}, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	defer context.AfterFunc(e.tasks, func() { cut(context.Cause(e.tasks)) })()
	e.running.Add(1)
	defer e.running.Add(-1)

	in, release, err := e.pick(ctx, t.Protocol)
	served := !errors.Is(err, errNoProtocol)
	if err == nil {
		rec.Provider = in.id
		rec.Output, err = e.runOn(ctx, in, release, t)
	}
	rec.DurationMS = float64(time.Since(rec.Started).Microseconds()) / 1000
	switch {
	case err == nil:
		rec.Status = "ok"
	case errors.Is(context.Cause(ctx), errCutShort):
		rec.Status = "cancelled"
		err = fmt.Errorf("%w: %w", errShuttingDown, errCutShort)
	case errors.Is(ctx.Err(), context.DeadlineExceeded): // the task's deadline, wherever it caught the task
		rec.Status = "timeout"
		err = fmt.Errorf("task timed out after %v: %w", timeout, context.DeadlineExceeded)
	case errors.Is(err, errNoProvider), errors.Is(err, errNoProtocol), errors.Is(err, errShuttingDown):
		rec.Status = "rejected"
	default:
		rec.Status = "error"
	}
	if err != nil {
		rec.Error = lifecycle.Redact(err.Error())
		rec.Output = nil
	}
	if serr := e.record(rec, finishTask); serr != nil {
		// The task ran, but its outcome is not in the store, which still
		// says "running": the answer must not claim more.
		rec.Status, rec.Output = "unrecorded", nil
		rec.Error = lifecycle.Redact(serr.Error())
		e.count(rec, served)
		return rec, fmt.Errorf("%w: the task ran, but its outcome could not be recorded: %w", errStoreUnavailable, serr)
	}
	e.count(rec, served)
	return rec, err
}

// runOn runs the task on in, holding the lease pick took. The lease and the
// count of tasks in flight are given back however the handler returns: a
// handler that panicked would otherwise hold the provider's cleanup for its
// whole timeout. The panic becomes the task's error, so the task is
// answered and recorded like any other failure.
func (e *Engine) runOn(ctx context.Context, in *instance, release func(), t Task) (out json.RawMessage, err error) {
	defer release()
	defer in.inflight.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("task handler panicked", zap.String("provider", in.id), zap.String("method", t.Method),
				zap.String("panic", lifecycle.Redact(fmt.Sprint(v))), zap.ByteString("stack", debug.Stack()))
			out, err = nil, fmt.Errorf("the provider's handler panicked: %v", v)
		}
	}()
	return in.handle(ctx, t.Method, t.Params)
}

// record saves the task and appends its audit line, under leases of the
// store and the audit log, with a context of its own: a task that ran out
// of time is recorded all the same.
func (e *Engine) record(rec TaskRecord, save func(context.Context, *sql.DB, TaskRecord) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, releaseStore, err := e.reg.Acquire(ctx, storeID)
	if err != nil {
		return fmt.Errorf("record task %s: %w", rec.ID, err)
	}
	defer releaseStore()
	db, err := e.store.DB()
	if err != nil {
		return err
	}
	if err := save(ctx, db, rec); err != nil {
		return err
	}
	_, releaseAudit, err := e.reg.Acquire(ctx, auditID)
	if err != nil {
		return fmt.Errorf("audit task %s: %w", rec.ID, err)
	}
	defer releaseAudit()
	return e.audit.Write(map[string]any{
		"time": rec.Started.UTC(), "task": rec.ID, "protocol": rec.Protocol, "method": rec.Method,
		"provider": rec.Provider, "status": rec.Status, "duration_ms": rec.DurationMS,
	})
}

// pick leases the best provider of the protocol: not being removed, not
// unhealthy at the last poll, the fewest tasks in flight.
func (e *Engine) pick(ctx context.Context, protocol string) (*instance, func(), error) {
	e.mu.RLock()
	var candidates []*instance
	known := false
	for _, in := range e.instances {
		if in.tmpl.Protocol == protocol {
			known = true
			if !in.draining.Load() {
				candidates = append(candidates, in)
			}
		}
	}
	e.mu.RUnlock()
	if !known {
		return nil, nil, fmt.Errorf("%w: %q", errNoProtocol, protocol)
	}
	var rep *lifecycle.HealthReport
	if snap := e.health.Load(); snap != nil {
		rep = &snap.rep
	}
	healthy, why := usable(candidates, rep)
	if len(healthy) == 0 && len(candidates) > 0 {
		// Every one was unhealthy at the last poll: one may have recovered
		// since. Look again, live, rather than refuse for a whole poll
		// interval while readiness may already say 200.
		live := e.liveHealth(ctx)
		healthy, why = usable(candidates, &live)
	}
	slices.SortFunc(healthy, func(a, b *instance) int { return int(a.inflight.Load() - b.inflight.Load()) })
	for _, in := range healthy {
		_, release, err := e.reg.Acquire(ctx, in.id)
		if err != nil {
			why = append(why, in.id+": "+err.Error())
			continue
		}
		in.inflight.Add(1)
		return in, release, nil
	}
	if len(why) == 0 {
		why = append(why, "every provider is being removed")
	}
	return nil, nil, fmt.Errorf("%w: %q (%s)", errNoProvider, protocol, strings.Join(why, "; "))
}

// Ready reports whether the service should receive traffic: started, not
// shutting down, and every critical provider healthy (degraded counts:
// it still serves). The store and the audit log are always critical.
func (e *Engine) Ready(ctx context.Context) (bool, []string) {
	switch {
	case e.draining.Load():
		return false, []string{"shutting down"}
	case !e.started.Load():
		return false, []string{"starting"}
	}
	critical := map[string]bool{storeID: true, auditID: true}
	e.mu.RLock()
	for id, in := range e.instances {
		if in.tmpl.Critical && !in.draining.Load() {
			critical[id] = true
		}
	}
	e.mu.RUnlock()
	rep := e.recentHealth(ctx)
	why := []string{}
	for id := range critical {
		h, ok := rep.Providers[id]
		if !ok {
			continue // removed meanwhile
		}
		if h.Status != lifecycle.StatusHealthy && h.Status != lifecycle.StatusDegraded {
			why = append(why, fmt.Sprintf("%s is %s: %s", id, h.Status, h.Message))
		}
	}
	slices.Sort(why)
	return len(why) == 0, why
}

// ProviderView is one provider as GET /v1/providers shows it.
type ProviderView struct {
	ID        string             `json:"id"`
	Kind      string             `json:"kind"`
	Template  string             `json:"template,omitempty"`
	Protocol  string             `json:"protocol,omitempty"`
	Critical  bool               `json:"critical"`
	State     string             `json:"state"`
	DependsOn []string           `json:"depends_on"`
	Leases    int                `json:"leases"`
	Health    lifecycle.Health   `json:"health"`
	Cleanup   *lifecycle.Outcome `json:"last_cleanup,omitempty"`
}

// Providers describes every provider, and those removed at run time.
func (e *Engine) Providers(ctx context.Context) []ProviderView {
	rep := e.recentHealth(ctx)
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []ProviderView
	seen := map[string]bool{}
	for _, info := range e.reg.Providers() {
		v := ProviderView{ID: info.ID, State: info.State, DependsOn: info.DependsOn, Leases: info.Leases,
			Health: rep.Providers[info.ID], Cleanup: info.Outcome}
		if v.DependsOn == nil {
			v.DependsOn = []string{}
		}
		switch in := e.instances[info.ID]; {
		case in != nil:
			v.Kind, v.Template, v.Protocol, v.Critical = in.tmpl.Kind, in.template, in.tmpl.Protocol, in.tmpl.Critical
		case info.ID == storeID:
			v.Kind, v.Critical = "sqldb", true
		case info.ID == auditID:
			v.Kind, v.Critical = "file", true
		}
		if v.Cleanup == nil {
			if o, ok := e.metrics.outcome(info.ID); ok {
				v.Cleanup = &o
			}
		}
		seen[info.ID] = true
		out = append(out, v)
	}
	for id, o := range e.metrics.outcomes() { // removed at run time
		if !seen[id] {
			out = append(out, ProviderView{ID: id, State: "removed", DependsOn: []string{}, Cleanup: &o,
				Health: lifecycle.Health{Status: lifecycle.StatusUnknown, Message: "removed"}})
		}
	}
	slices.SortFunc(out, func(a, b ProviderView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Task returns a recorded task.
func (e *Engine) Task(ctx context.Context, id string) (TaskRecord, error) {
	db, err := e.store.DB()
	if err != nil {
		return TaskRecord{}, err
	}
	return loadTask(ctx, db, id)
}

func newTaskID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
