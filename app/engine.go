package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
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
	errPooled           = errors.New("the template is a pool: it starts and stops its own instances")
)

// Engine runs tasks on the instances of the templates that serve their
// protocol, each under a lease from its pool, and records every task in
// the store and the audit log. Every template has a pool (see package
// pool): a sized one for templates with pool:, and one whose instances are
// added by hand for the others.
type Engine struct {
	reg      *lifecycle.Registry
	store    *sqldb.DB
	audit    *file.Writer
	failing  *auditFailing // the audit log's failure, as its writer tells it
	settings *config.Settings
	log      *zap.Logger
	metrics  *Metrics
	// The service's tracing; both nil when it is off (see Tracing).
	tp     trace.TracerProvider
	tracer trace.Tracer

	// Both fixed once newEngine returns.
	pools      map[string]*pool.Pool[endpoint] // by template
	byProtocol map[string][]*pool.Pool[endpoint]
	// later are the instances of the templates that are not critical, by
	// template: their pools start them once the registry has (see launch).
	later map[string][]string

	// tasks is the parent of every task's context: CancelTasks cuts the
	// tasks in flight short when the shutdown's HTTP time runs out.
	tasks       context.Context
	cancelTasks context.CancelCauseFunc
	running     atomic.Int64 // tasks between pick and answer
	flight      inflight     // the tasks this replica runs, by id

	health   atomic.Pointer[healthSnapshot] // the last check's
	recheck  singleflight.Group             // live checks that routing and probes share
	started  atomic.Bool
	draining atomic.Bool // shutdown began: readiness answers 503
	stopped  atomic.Bool // the engine stopped: tasks are refused

	removals removals
	watch    *transitions           // logs changes of health, readiness and the store's availability
	faults   storeFaults            // the store's errors, logged rather than answered
	commits  *taskstore.GroupCommit // the task records' commits
	expiry   *taskstore.Retention   // deletes expired tasks; nil if they are kept for ever
	replica  *replica               // this replica's heartbeat, and the sweep of dead replicas' tasks
	// endpointHook, if set, changes the endpoints of instances built from
	// then on: for the tests' faults, nil otherwise.
	endpointHook func(endpoint) endpoint
	// withTimeout gives a task its deadline: context.WithTimeout, or in
	// the tests one that passes when the test says.
	withTimeout func(context.Context, time.Duration) (context.Context, context.CancelFunc)

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
	Failing   *auditFailing
	Settings  *config.Settings
	Log       *zap.Logger
	Metrics   *Metrics
	Tracer    trace.TracerProvider `optional:"true"`
}

// newEngine makes every template's pool and registers the instances of
// the critical templates, those the configuration names and each pool's
// first min, which the registry then initializes when it starts: one that
// cannot start fails the service's start. The others wait for launch.
func newEngine(p engineParams) (*Engine, error) {
	e := &Engine{reg: p.Registry, store: p.Store, audit: p.Audit, failing: p.Failing, settings: p.Settings, log: p.Log.Named("engine"),
		metrics: p.Metrics, pools: map[string]*pool.Pool[endpoint]{}, byProtocol: map[string][]*pool.Pool[endpoint]{},
		commits: taskstore.NewGroupCommit(p.Settings.StoreBatchSize, p.Settings.StoreBatchDelay, commitLeaders(p.Store)), withTimeout: context.WithTimeout}
	if !absent(p.Tracer) {
		e.tp, e.tracer = p.Tracer, p.Tracer.Tracer("github.com/gleitzeit/gleitzeit/app")
	}
	e.tasks, e.cancelTasks = context.WithCancelCause(context.Background())
	e.watch = newTransitions(e.log)
	e.replica = newReplica(p.Settings.StoreHeartbeat, e.log)
	names := make([]string, 0, len(p.Settings.Templates))
	for name := range p.Settings.Templates {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := p.Settings.Templates[name]
		var opts []lifecycle.RegisterOption
		if t.Timeout != "" {
			d, _ := time.ParseDuration(t.Timeout) // checked by Load
			opts = append(opts, lifecycle.Timeout(d))
		}
		pl := pool.New(pool.Config{Template: name, Protocol: t.Protocol, Sizing: t.Sizing, Restart: t.Supervision, Register: opts},
			pool.Deps[endpoint]{
				Registry: p.Registry,
				Build: func(id string, exited func(pool.Exit)) (lifecycle.Provider, endpoint, error) {
					return e.build(id, t, exited)
				},
				Usable:  e.usable,
				Removed: e.removed,
				Log:     e.log,
			})
		e.pools[name] = pl
		e.byProtocol[t.Protocol] = append(e.byProtocol[t.Protocol], pl)
	}
	e.later = map[string][]string{}
	for _, in := range p.Settings.Providers {
		if !p.Settings.Templates[in.Template].Critical {
			e.later[in.Template] = append(e.later[in.Template], in.ID)
			continue
		}
		if err := e.pools[in.Template].Declare(in.ID); err != nil {
			return nil, fmt.Errorf("provider %q from template %q: %w", in.ID, in.Template, err)
		}
	}
	for _, name := range names {
		if !p.Settings.Templates[name].Critical {
			continue
		}
		if err := e.pools[name].DeclareMin(); err != nil {
			return nil, fmt.Errorf("pool %q: %w", name, err)
		}
	}
	p.Metrics.watch(p.Registry, e.poolStats)
	p.Lifecycle.Append(fx.Hook{OnStart: e.start, OnStop: e.stop})
	return e, nil
}

// start prepares the store, registers this replica in it (its heartbeat,
// and the sweep of dead replicas' tasks: replicas.go), begins deleting
// expired tasks and polling health, and lets the pools scale.
func (e *Engine) start(ctx context.Context) error {
	db, err := e.store.DB()
	if err != nil {
		return err
	}
	// An empty store gets the schema; an older one is -migrate's to
	// upgrade (see taskstore.SchemaError).
	if _, err := taskstore.Migrate(ctx, db, e.store.Driver(), false); err != nil {
		return err
	}
	if err := e.launch(ctx); err != nil {
		return err
	}
	if err := e.replica.open(ctx, db, e.store.Driver()); err != nil {
		return err
	}
	e.replica.start()
	if keep := e.settings.StoreRetention; keep > 0 {
		e.expiry = taskstore.NewRetention(db, e.store.Driver(), keep, e.log, func(n int64) { e.metrics.expired.Add(float64(n)) })
		e.expiry.Start()
	}
	e.pollHealth(ctx)
	e.pollStop, e.pollDone = make(chan struct{}), make(chan struct{})
	go e.poll(e.pollStop, e.pollDone)
	for _, p := range e.pools {
		p.Run()
	}
	e.started.Store(true)
	return nil
}

// stop refuses further tasks, closes the pools (no instance starts,
// restarts or scales any more), and stops polling and deleting expired
// tasks. It runs after the admin server has finished its requests, and
// before the providers are cleaned up, which the registry does for every
// instance the pools leave.
func (e *Engine) stop(ctx context.Context) error {
	e.BeginShutdown() // a test may stop without a signal
	e.stopped.Store(true)
	e.cancelTasks(errCutShort) // none is left: the admin server has answered every request
	var errs []error
	for name, p := range e.pools {
		// Prompt: Close cancels what its goroutines wait for; the
		// registry finishes a start or removal they leave.
		if err := p.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", name, err))
		}
	}
	e.stopPoll.Do(func() { // fx calls stop once; a test may call it first
		if e.pollStop != nil {
			close(e.pollStop)
			<-e.pollDone
		}
	})
	if e.expiry != nil {
		e.expiry.Stop()
	}
	e.replica.close(ctx)
	if err := errors.Join(errs...); err != nil {
		e.log.Warn("pools did not close in time", zap.Error(err))
	}
	return nil
}

// commitLeaders is how many batches of task records may commit at once:
// one on SQLite, whose writers take turns on its one connection anyway;
// on PostgreSQL, half of the pool, which commits them side by side and
// keeps the rest for reads.
func commitLeaders(store *sqldb.DB) int {
	if store.Driver() == sqldb.SQLite {
		return 1
	}
	return max(1, store.MaxOpenConns()/2)
}

// awaitRemovals waits, within ctx, for the pools' removals in progress to
// be reported: after the registry's Stop, which finishes them, and before
// the final report, which lists them.
func (e *Engine) awaitRemovals(ctx context.Context) {
	for name, p := range e.pools {
		if err := p.AwaitRemovals(ctx); err != nil {
			e.log.Warn("a removal was not reported in time", zap.String("template", name), zap.Error(err))
		}
	}
}

// BeginShutdown turns readiness to 503 at once, and stops the pools
// growing and restarting children; tasks are still served until the admin
// server stops taking requests.
func (e *Engine) BeginShutdown() {
	e.draining.Store(true)
	for _, p := range e.pools {
		p.Quiesce()
	}
}

// errCutShort is the cause of a task's context that CancelTasks ended.
var errCutShort = errors.New("the task was cut short")

// CancelTasks cancels every task in flight and refuses new ones. Their
// handlers answer 503 and record them. It returns how many were running.
func (e *Engine) CancelTasks() int {
	e.stopped.Store(true)
	e.cancelTasks(errCutShort)
	return int(e.running.Load())
}

// Add starts an instance of a template without pool: at run time.
func (e *Engine) Add(ctx context.Context, id, template string) error {
	if e.draining.Load() {
		return errShuttingDown
	}
	p, ok := e.pools[template]
	if !ok {
		return fmt.Errorf("%w: no template %s", errBadRequest, quote(template))
	}
	if !config.ValidID(id) {
		return fmt.Errorf("%w: provider id %s: want lowercase letters, digits, '.', '_' or '-'", errBadRequest, quote(id))
	}
	if p.Config().Sizing != nil {
		return fmt.Errorf("%w: %q", errPooled, template)
	}
	if name, ok := e.settings.PoolOf(id); ok {
		return fmt.Errorf("%w: %q is named like an instance of the pool %q", errPooled, id, name)
	}
	for _, other := range e.pools {
		if other.Has(id) {
			return fmt.Errorf("%w: %q", pool.ErrExists, id)
		}
	}
	if err := p.Add(ctx, id); err != nil {
		return fmt.Errorf("provider %q from template %q: %w", id, template, err)
	}
	e.log.Info("provider added", zap.String("provider", id), zap.String("template", template))
	return nil
}

// Remove takes an instance of a template without pool: out: no new task
// reaches it, the tasks running on it finish, and it is cleaned up.
func (e *Engine) Remove(ctx context.Context, id string) (lifecycle.Outcome, error) {
	for name, p := range e.pools {
		if !p.Has(id) {
			continue
		}
		if p.Config().Sizing != nil {
			return lifecycle.Outcome{}, fmt.Errorf("%w: %q is an instance of %q", errPooled, id, name)
		}
		return p.Remove(ctx, id)
	}
	if id == config.StoreID || id == config.AuditID {
		return lifecycle.Outcome{}, errNotRemovable
	}
	return lifecycle.Outcome{}, fmt.Errorf("%w: %s", errUnknownID, quote(id))
}

// removed logs an instance's removal and keeps it for the provider list.
func (e *Engine) removed(r pool.Removal) {
	e.removals.add(r)
	fields := []zap.Field{zap.String("provider", r.ID), zap.String("template", r.Template), zap.String("reason", r.Reason),
		zap.Stringer("result", r.Outcome.Result), zap.Duration("duration", r.Outcome.Duration)}
	if r.Err != nil {
		e.log.Warn("provider removed", append(fields, zap.String("error", lifecycle.Redact(r.Err.Error())))...)
		return
	}
	e.log.Info("provider removed", fields...)
}

// poolStats reads every pool, sorted by template.
func (e *Engine) poolStats() []pool.Stats {
	out := make([]pool.Stats, 0, len(e.pools))
	for _, p := range e.pools {
		out = append(out, p.Stats())
	}
	slices.SortFunc(out, func(a, b pool.Stats) int { return strings.Compare(a.Template, b.Template) })
	return out
}
