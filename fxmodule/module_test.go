package fxmodule_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const wait = testkit.Wait

// journal records, in order, what providers and components did.
type journal = testkit.Journal

// base is what every test provider shares: an id, a journal, and counts.
type base struct {
	id       string
	jnl      *journal
	initErr  error
	cleanup  func(context.Context) error
	cleanups int
}

func (b *base) ID() string { return b.id }

func (b *base) Initialize(context.Context) error {
	b.jnl.Add("init " + b.id)
	return b.initErr
}

func (b *base) Cleanup(ctx context.Context) error {
	b.cleanups++
	b.jnl.Add("cleanup " + b.id)
	if b.cleanup != nil {
		return b.cleanup(ctx)
	}
	return nil
}

// The providers of a small service, and a repository between them that is
// not a provider.
type (
	DB      struct{ base }
	Cache   struct{ base }
	API     struct{ base }
	Metrics struct{ base }
	Repo    struct {
		db    *DB
		cache *Cache // set by a caching decorator
	}
)

func NewDB(j *journal) *DB                    { return &DB{base{id: "db", jnl: j}} }
func NewCache(j *journal, _ *DB) *Cache       { return &Cache{base{id: "cache", jnl: j}} }
func NewRepo(db *DB) *Repo                    { return &Repo{db: db} }
func NewAPI(j *journal, _ *Repo) *API         { return &API{base{id: "api", jnl: j}} }
func NewMetrics(j *journal) (*Metrics, error) { return &Metrics{base{id: "metrics", jnl: j}}, nil }

func TestDiscoversDependencies(t *testing.T) {
	type svcParams struct {
		fx.In
		J     *journal
		Cache *Cache
	}
	type Handler struct{ db *DB }
	type handlersParams struct {
		fx.In
		J        *journal
		Handlers []Handler `group:"handlers"`
	}
	tests := []struct {
		name string
		opts fx.Option
		// each pair: the first depends on the second
		want [][2]string
	}{
		{"parameter", fxmodule.Provide(NewCache), [][2]string{{"cache", "db"}}},
		{"through another constructor", fx.Options(fx.Provide(NewRepo), fxmodule.Provide(NewAPI)), [][2]string{{"api", "db"}}},
		{"fx.In field", fx.Options(fxmodule.Provide(NewCache), fxmodule.Provide(func(p svcParams) *API {
			return &API{base{id: "api", jnl: p.J}}
		})), [][2]string{{"api", "cache"}, {"cache", "db"}}},
		{"through a value group", fx.Options(
			fx.Provide(fx.Annotate(func(db *DB) Handler { return Handler{db} }, fx.ResultTags(`group:"handlers"`))),
			fxmodule.Provide(func(p handlersParams) *API { return &API{base{id: "api", jnl: p.J}} }),
		), [][2]string{{"api", "db"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jnl := &journal{}
			var reg *lifecycle.Registry
			app := fxtest.New(t,
				fx.Supply(jnl),
				fxmodule.Module,
				tt.opts,
				fxmodule.Provide(NewDB), // declared last: order must not come from declaration
				fxmodule.Provide(NewMetrics),
				fx.Populate(&reg),
			)
			app.RequireStart()
			app.RequireStop()
			for _, e := range tt.want {
				jnl.Before(t, "init "+e[1], "init "+e[0])
				jnl.Before(t, "cleanup "+e[0], "cleanup "+e[1])
			}
			rep := reg.Report()
			assert.Contains(t, rep.Providers, "metrics")
			for id, o := range rep.Providers {
				assert.Equal(t, lifecycle.ResultOK, o.Result, id)
			}
		})
	}
}

// meeting returns a cleanup method that returns only once n cleanups using
// it have begun, or its context ends: cleanups that overlap pass, cleanups
// run one after another time out.
func meeting(n int) func(context.Context) error {
	var all sync.WaitGroup
	all.Add(n)
	return func(ctx context.Context) error {
		all.Done()
		done := make(chan struct{})
		go func() { all.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// The walk does not invent dependencies: independent providers stay
// independent, so their cleanups may overlap.
func TestIndependentProvidersStayIndependent(t *testing.T) {
	jnl := &journal{}
	meet := meeting(2)
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(func(j *journal) *DB { return &DB{base{id: "db", jnl: j, cleanup: meet}} }),
		fxmodule.Provide(func(j *journal) *Metrics { return &Metrics{base{id: "metrics", jnl: j, cleanup: meet}} }),
		fxmodule.WithRegistryOptions(lifecycle.WithDefaultTimeout(wait)),
	)
	app.RequireStart()
	app.RequireStop()
}

// Component is built from a provider and has hooks of its own.
type Component struct{}

func NewComponent(lc fx.Lifecycle, j *journal, _ *Repo) *Component {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { j.Add("start component"); return nil },
		OnStop:  func(context.Context) error { j.Add("stop component"); return nil },
	})
	return &Component{}
}

// A component built from a provider starts after the provider is
// initialized and stops before it is cleaned up, even when its module comes
// first in fx.New.
func TestComponentStopsBeforeItsProviderIsCleanedUp(t *testing.T) {
	jnl := &journal{}
	app := fxtest.New(t,
		fx.Supply(jnl),
		fx.Module("early", fx.Provide(NewComponent, NewRepo), fx.Invoke(func(*Component) {})),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
	)
	app.RequireStart()
	app.RequireStop()
	jnl.Before(t, "init db", "start component")
	jnl.Before(t, "stop component", "cleanup db")
}

// If a hook after the registry's fails to start, fx stops what started,
// and every provider initialized is cleaned up.
func TestFailingStartElsewhereCleansUpProviders(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fx.New(
		fx.NopLogger,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(NewCache),
		fx.Populate(&reg),
		fx.Invoke(func(lc fx.Lifecycle, _ *Cache) {
			lc.Append(fx.Hook{OnStart: func(context.Context) error { return errors.New("port in use") }})
		}),
	)
	require.NoError(t, app.Err())
	err := start(t, app)
	require.ErrorContains(t, err, "port in use")
	jnl.Before(t, "init cache", "cleanup cache")
	jnl.Before(t, "cleanup cache", "cleanup db")
	assert.Len(t, reg.Report().Providers, 2)
}

// If a provider fails to initialize, Start rolls back, and the module stops
// the registry, so nothing is left for an OnStop that fx will not call.
func TestFailingProviderRollsBackTheApp(t *testing.T) {
	jnl := &journal{}
	var reg *lifecycle.Registry
	app := fx.New(
		fx.NopLogger,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(func(j *journal, _ *DB) *Cache {
			return &Cache{base{id: "cache", jnl: j, initErr: errors.New("no memory")}}
		}),
		fxmodule.Provide(NewMetrics),
		fx.Populate(&reg),
	)
	err := start(t, app)
	require.ErrorContains(t, err, "no memory")
	jnl.Before(t, "cleanup cache", "cleanup db")
	assert.Len(t, reg.Report().Providers, 3, "every provider, initialized or not, is cleaned up")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, reg.Stop(ctx), "a second Stop returns the first one's result")
}

// fx.StopTimeout bounds the whole stop, even for a provider that ignores
// its context.
//
// The registry returns a little before fx's deadline, so that app.Stop's
// error names the provider, not only the deadline. On a real clock that
// holds only if the machine runs the registry's goroutines within that
// margin; on synctest's it holds however slowly the machine runs them,
// since no time passes while a goroutine runs.
func TestStopTimeoutBoundsTheStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jnl := &journal{}
		release, _ := testkit.Gate(t)
		var reg *lifecycle.Registry
		app := fx.New(
			fx.NopLogger,
			fx.Populate(&reg),
			fx.StopTimeout(300*time.Millisecond),
			fx.Supply(jnl),
			fxmodule.Module,
			fxmodule.Provide(func(j *journal) *DB {
				return &DB{base{id: "db", jnl: j, cleanup: func(context.Context) error { <-release; return nil }}}
			}, lifecycle.Timeout(time.Hour)),
		)
		require.NoError(t, start(t, app))
		began := time.Now()
		err := stop(t, app)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, `provider "db"`)
		assert.Less(t, time.Since(began), app.StopTimeout(), "app.Stop returned before fx's deadline")
		// The registry's Stop goes on to fx's deadline itself.
		time.Sleep(app.StopTimeout())
		o := reg.Report().Providers["db"]
		assert.Equal(t, lifecycle.ResultAbandoned, o.Result)
		assert.ErrorContains(t, o.Err, `provider "db"`)
	})
}

// fx's events reach zap, and so do the registry's.
func TestEventsReachZap(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	app := fx.New(
		fx.Supply(zap.New(core)),
		fx.WithLogger(fxmodule.EventLogger),
		fx.Supply(&journal{}),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
	)
	require.NoError(t, start(t, app))
	require.NoError(t, stop(t, app))
	assert.NotEmpty(t, logs.FilterMessage("provided").All(), "fx's own events")
	assert.NotEmpty(t, logs.FilterMessage("OnStop hook executed").All())
	assert.NotEmpty(t, logs.FilterMessage("providers cleaned up").All(), "the registry's")
}

// The registry is injectable, and holds every provider declared.
func TestRegistryIsInjectable(t *testing.T) {
	var reg *lifecycle.Registry
	app := fxtest.New(t,
		fx.Supply(&journal{}),
		fxmodule.Module,
		fxmodule.Provide(NewDB, lifecycle.DependsOn("metrics")),
		fxmodule.Provide(NewMetrics),
		fx.Populate(&reg),
	)
	app.RequireStart()
	assert.ElementsMatch(t, []string{"db", "metrics"}, reg.IDs())
	p, release, err := reg.Acquire(context.Background(), "db")
	require.NoError(t, err)
	assert.Equal(t, "db", p.ID())
	release()
	app.RequireStop()
	_, _, err = reg.Acquire(context.Background(), "db")
	require.ErrorIs(t, err, lifecycle.ErrStopped)
}

// Several providers of one type are told apart by name.
func TestNamedProviders(t *testing.T) {
	jnl := &journal{}
	type users struct {
		fx.In
		J       *journal
		Primary *DB `name:"primary"`
	}
	app := fxtest.New(t,
		fx.Supply(jnl),
		fxmodule.Module,
		fxmodule.Provide(fx.Annotated{Name: "primary", Target: func(j *journal) *DB { return &DB{base{id: "primary", jnl: j}} }}),
		fxmodule.Provide(fx.Annotated{Name: "replica", Target: func(j *journal) *DB { return &DB{base{id: "replica", jnl: j}} }}),
		fxmodule.Provide(func(u users) *API { return &API{base{id: "api", jnl: u.J}} }),
	)
	app.RequireStart()
	app.RequireStop()
	jnl.Before(t, "cleanup api", "cleanup primary")
}

func TestProvideRejectsWhatIsNotAProviderConstructor(t *testing.T) {
	tests := []struct {
		name string
		give any
		want string
	}{
		{"not a function", 42, "want a constructor function"},
		{"not a provider", func() *Repo { return nil }, "no result of func() *fxmodule_test.Repo implements lifecycle.Provider"},
		{"a nil provider", func() (*DB, int) { return nil, 0 }, "returned a nil provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, fxmodule.Module, fxmodule.Provide(tt.give))
			require.ErrorContains(t, app.Err(), tt.want)
		})
	}
}

func TestDuplicateProviderIDFailsTheApp(t *testing.T) {
	app := fx.New(fx.NopLogger,
		fx.Supply(&journal{}),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
		fxmodule.Provide(func(j *journal) *Cache { return &Cache{base{id: "db", jnl: j}} }),
	)
	require.ErrorIs(t, app.Err(), lifecycle.ErrDuplicateID)
}

// flusher is a provider whose cleanup takes a little time and ignores its
// context, as a buffer's flush does.
type flusher struct {
	id       string
	cleanups atomic.Int32
}

func (f *flusher) ID() string                       { return f.id }
func (f *flusher) Initialize(context.Context) error { return nil }
func (f *flusher) Cleanup(context.Context) error {
	f.cleanups.Add(1)
	time.Sleep(2 * time.Millisecond)
	return nil
}

// An fx app whose other hooks used up nearly all of StopTimeout: the
// registry's Stop gets a context that runs out within a millisecond.
// Nothing crashes, app.Stop returns, every provider is in the report and is
// cleaned up once, and the cleanups the registry stopped waiting for have
// their real results in the report once they return.
//
// fx runs no further OnStop hook once its context is done. If the earlier
// hook took all of it, the registry's hook never ran; the test then calls
// Stop with the done context itself, as a backstop after app.Stop would.
func TestRegistryStopsWhenEarlierHooksUsedUpTheStopTimeout(t *testing.T) {
	const stopTimeout = 20 * time.Millisecond
	for i := range 20 {
		settled := testkit.Settle(t)
		var reg *lifecycle.Registry
		var fs []*flusher
		opts := []fx.Option{fx.NopLogger, fx.Populate(&reg), fx.StopTimeout(stopTimeout), fxmodule.Module}
		for j := range 6 {
			f := &flusher{id: fmt.Sprintf("flusher-%d", j)}
			fs = append(fs, f)
			opts = append(opts, fxmodule.Provide(fx.Annotated{Name: f.id, Target: func() *flusher { return f }}))
		}
		// Appended after the registry's hooks, so fx stops it first.
		slow := stopTimeout - time.Millisecond + time.Duration(i)*50*time.Microsecond
		opts = append(opts, fx.Invoke(func(lc fx.Lifecycle, _ *lifecycle.Registry) {
			lc.Append(fx.Hook{OnStop: func(context.Context) error { time.Sleep(slow); return nil }})
		}))
		app := fx.New(opts...)
		require.NoError(t, start(t, app))
		testkit.Within(t, "app.Stop", func() {
			ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
			defer cancel()
			if err := app.Stop(ctx); err != nil && len(reg.Report().Providers) == 0 {
				_ = reg.Stop(ctx) // fx skipped the registry's hook
			}
		})
		for _, f := range fs {
			require.Eventually(t, func() bool { return f.cleanups.Load() == 1 }, wait, time.Millisecond, "%s cleaned up once", f.id)
		}
		// app.Stop returns at its deadline; the registry's Stop, on fx's
		// goroutine, returns promptly after.
		require.Eventually(t, func() bool { return len(reg.Report().Providers) == len(fs) }, wait, time.Millisecond)
		require.Eventually(t, func() bool {
			return reg.Report().Count(lifecycle.ResultOK) == len(fs)
		}, wait, time.Millisecond, "late results replace abandoned: %v", reg.Report().Providers)
		settled() // no goroutine is left to run a cleanup twice
		for _, f := range fs {
			require.EqualValues(t, 1, f.cleanups.Load(), f.id)
		}
	}
}

// eventRecorder is an fx logger that keeps every event.
type eventRecorder struct {
	mu     sync.Mutex
	events []fxevent.Event
}

func (r *eventRecorder) LogEvent(e fxevent.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Module leaves fx's events to the application's logger: the module's own
// provides reach a logger the application chose (they did not while Module
// set one of its own), and EventLogger can be called directly.
func TestModuleLeavesTheLoggerToTheApplication(t *testing.T) {
	rec := &eventRecorder{}
	app := fx.New(
		fx.WithLogger(func() fxevent.Logger { return rec }),
		fx.Supply(&journal{}),
		fxmodule.Module,
		fxmodule.Provide(NewDB),
	)
	require.NoError(t, app.Err())
	rec.mu.Lock()
	var fromModule []string
	for _, e := range rec.events {
		if p, ok := e.(*fxevent.Provided); ok && p.ModuleName == "gleitzeit" {
			fromModule = append(fromModule, p.OutputTypeNames...)
		}
	}
	rec.mu.Unlock()
	assert.Contains(t, fromModule, "*lifecycle.Registry", "the module's events reached the application's logger")

	assert.Equal(t, fxevent.NopLogger, fxmodule.EventLogger(fxmodule.EventLoggerParams{}))
	assert.NotNil(t, fxmodule.EventLogger(fxmodule.EventLoggerParams{Logger: zap.NewNop()}))
}

// slowStart's Initialize takes until its context ends.
type slowStart struct{ base }

func (s *slowStart) Initialize(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// A StartTimeout that cuts a slow Initialize: app.Start's error names the
// provider, not only fx's deadline, and the provider is rolled back. As in
// TestStopTimeoutBoundsTheStop, synctest's clock lets the registry return
// before fx's deadline however slowly the machine runs it.
func TestStartTimeoutErrorNamesTheProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reg *lifecycle.Registry
		app := fx.New(
			fx.NopLogger,
			fx.Populate(&reg),
			fx.StartTimeout(time.Second),
			fx.Supply(&journal{}),
			fxmodule.Module,
			fxmodule.Provide(func(j *journal) *slowStart { return &slowStart{base{id: "slow", jnl: j}} }, lifecycle.Timeout(time.Hour)),
		)
		err := start(t, app)
		require.Error(t, err)
		assert.ErrorContains(t, err, `provider "slow"`)
		testkit.Within(t, "the rollback", func() { _ = reg.Stop(context.Background()) }) // returns the rollback's result once it has ended
		o, ok := reg.Report().Providers["slow"]
		assert.True(t, ok && o.Result == lifecycle.ResultOK, "the slow provider is cleaned up: %v", reg.Report().Providers)
	})
}

// A start that a provider's Initialize fails is logged once, by the
// registry at warn level naming the provider; fx's own events of it are at
// debug level, and app.Start returns the error.
func TestAFailedInitializeIsLoggedOnce(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	jnl := &journal{}
	app := fx.New(fx.Supply(jnl, zap.New(core)), fx.WithLogger(fxmodule.EventLogger), fxmodule.Module,
		fxmodule.Provide(func(j *journal) *DB { return &DB{base{id: "db", jnl: j, initErr: errors.New("refused")}} }),
		fx.Invoke(func(*DB) {}))
	require.NoError(t, app.Err())
	err := start(t, app)
	require.ErrorContains(t, err, `provider "db": initialize`)
	warned := logs.FilterMessage("provider initialize failed").All()
	require.Len(t, warned, 1)
	assert.Equal(t, zapcore.WarnLevel, warned[0].Level)
	assert.Equal(t, "db", warned[0].ContextMap()["provider"])
	assert.Empty(t, logs.FilterLevelExact(zapcore.ErrorLevel).All(), "fx's events repeat it at error level")
	assert.NotEmpty(t, logs.FilterMessage("start failed").All(), "fx's events are logged, at debug level")

	// A plain hook's failure, which no registry logs, is still fx's error.
	core, logs = observer.New(zapcore.DebugLevel)
	app = fx.New(fx.Supply(jnl, zap.New(core)), fx.WithLogger(fxmodule.EventLogger), fxmodule.Module,
		fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStart: func(context.Context) error { return errors.New("refused") }})
		}))
	require.Error(t, start(t, app))
	assert.NotEmpty(t, logs.FilterLevelExact(zapcore.ErrorLevel).All())
}
