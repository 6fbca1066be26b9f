package fxmodule

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The value groups through which providers and registry options reach the
// registry.
const (
	providerGroup = "gleitzeit.providers"
	optionGroup   = "gleitzeit.options"
)

// Module provides a *[lifecycle.Registry] and registers with it every
// provider declared with [Provide], with the dependencies found between
// them. The registry starts in an OnStart hook and stops in an OnStop hook,
// with fx's start and stop contexts, so fx.StartTimeout and fx.StopTimeout
// bound them.
//
// The registry's hooks are appended before any component built from a
// provider can append its own, so every such component starts after the
// providers are initialized and stops before they are cleaned up.
//
// If a *zap.Logger is in the graph, the registry logs to it. Module leaves
// fx's own events to the application's choice of logger (fx.WithLogger,
// fxtest's, or fx's default): a module that chose one would override it.
// [EventLogger] sends them to the graph's *zap.Logger.
var Module fx.Option = fx.Module("gleitzeit",
	fx.Provide(newRegistry),
	fx.Invoke(registerProviders),
)

// WithRegistryOptions passes options to the registry that Module builds.
// It may be used more than once; the options add up, and those given here
// override the logger Module takes from the graph.
func WithRegistryOptions(opts ...lifecycle.Option) fx.Option {
	return fx.Provide(fx.Annotate(
		func() []lifecycle.Option { return opts },
		fx.ResultTags(`group:"`+optionGroup+`,flatten"`),
	))
}

// EventLoggerParams is what [EventLogger] takes from the graph: a
// *zap.Logger, if there is one. It is exported so that EventLogger can be
// called, or wrapped, outside fx.WithLogger.
type EventLoggerParams struct {
	fx.In
	Logger *zap.Logger `optional:"true"`
}

// EventLogger sends fx's events to the graph's *zap.Logger through
// [fxevent.ZapLogger], or nowhere if the graph has none. Pass it to
// fx.WithLogger at the root of an application to log all of fx's events
// with the rest of the service's. Routine events (a constructor provided,
// a hook run) are logged at debug level, errors at error level: a service
// logging at info keeps its startup and shutdown readable.
func EventLogger(p EventLoggerParams) fxevent.Logger {
	if p.Logger == nil {
		return fxevent.NopLogger
	}
	l := &fxevent.ZapLogger{Logger: p.Logger.Named("fx")}
	l.UseLogLevel(zapcore.DebugLevel)
	return l
}

type registryParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Logger    *zap.Logger        `optional:"true"`
	Options   []lifecycle.Option `group:"gleitzeit.options"`
}

func newRegistry(p registryParams) *lifecycle.Registry {
	var opts []lifecycle.Option
	if p.Logger != nil {
		opts = append(opts, lifecycle.WithLogger(p.Logger))
	}
	r := lifecycle.NewRegistry(append(opts, p.Options...)...)
	p.Lifecycle.Append(fx.Hook{OnStart: hooks{r}.start, OnStop: hooks{r}.stop})
	return r
}

// hooks are the registry's fx hooks; named methods, so that fx's logs of
// hook execution say whose they are.
type hooks struct{ r *lifecycle.Registry }

// start starts the registry. If that fails, fx will not call stop, so start
// stops the registry itself: Start has rolled back what it initialized, and
// Stop reports the providers it never reached (skipped: never initialized).
// Neither is cut short by a start context that ran out; each cleanup is
// bounded by its provider's timeout.
func (h hooks) start(ctx context.Context) error {
	ctx, cancel := early(ctx)
	defer cancel()
	err := h.r.Start(ctx)
	if err != nil {
		_ = h.r.Stop(context.WithoutCancel(ctx)) // its failures are in the report and the log
	}
	return err
}

// stop stops the registry a little before fx's deadline: see early.
func (h hooks) stop(ctx context.Context) error {
	ctx, cancel := early(ctx)
	defer cancel()
	return h.r.Stop(ctx)
}

// early returns ctx with a deadline a little before its own. fx answers a
// hook that returns after its deadline with the bare context error; the
// registry, given the earlier deadline, returns first, and app.Start's or
// app.Stop's error names the providers that failed or hung.
func early(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	// A tenth of what is left, at least 20ms (the registry's return must be
	// scheduled, under load, before fx's deadline) and at most 250ms.
	margin := min(max(time.Until(deadline)/10, 20*time.Millisecond), 250*time.Millisecond)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// member is one provider on its way to the registry, through the value
// group.
type member struct {
	seq  uint64 // the order of the Provide calls: value groups have none
	key  string // the dig key of the provider's value, as the graph names it
	raw  string // the dig key of its constructor's own result
	p    lifecycle.Provider
	opts []lifecycle.RegisterOption
}

var (
	providerType = reflect.TypeFor[lifecycle.Provider]()
	errorType    = reflect.TypeFor[error]()
	registryType = reflect.TypeFor[*lifecycle.Registry]()
	memberType   = reflect.TypeFor[member]()
	provideSeq   atomic.Uint64
)

// Provide declares a provider constructor. ctor is a function returning a
// type that implements [lifecycle.Provider], and optionally an error; it may
// take any parameters, fx.In structs included. An [fx.Annotated] with a Name
// declares a named provider, for several of one type.
//
// The provider's value is available to the rest of the graph as usual, and
// it joins the registry through a value group. It depends on every other
// provider that its constructor receives: as a parameter, as an fx.In field,
// or through other constructors in the graph (a repository built from a
// database provider, say). opts add to that: [lifecycle.Timeout],
// [lifecycle.DependsOn].
func Provide(ctor any, opts ...lifecycle.RegisterOption) fx.Option {
	name, target := "", ctor
	if a, ok := ctor.(fx.Annotated); ok {
		if a.Group != "" {
			return fx.Error(fmt.Errorf("fxmodule.Provide: a provider cannot be in a group of its own (%q)", a.Group))
		}
		name, target = a.Name, a.Target
	}
	t, err := providedType(target)
	if err != nil {
		return fx.Error(fmt.Errorf("fxmodule.Provide(%T): %w", target, err))
	}

	seq := provideSeq.Add(1)
	rawName := fmt.Sprintf("gleitzeit.provider.%d", seq)
	m := member{seq: seq, key: t.String(), raw: t.String() + "[name=" + rawName + "]", opts: opts}
	publicTag := ``
	if name != "" {
		m.key = t.String() + "[name=" + name + "]"
		publicTag = `name:"` + name + `"`
	}

	// The constructor's own result is named privately; an adapter exposes it
	// to the graph and adds it to the group. The adapter takes the registry
	// first, so the registry, and its hooks, exist before any component can
	// be built from the provider.
	adapter := reflect.MakeFunc(
		reflect.FuncOf([]reflect.Type{registryType, t}, []reflect.Type{t, memberType}, false),
		func(args []reflect.Value) []reflect.Value {
			mm := m
			mm.p, _ = args[1].Interface().(lifecycle.Provider) // nil is refused by Register
			return []reflect.Value{args[1], reflect.ValueOf(mm)}
		})
	return fx.Options(
		fx.Provide(fx.Annotate(target, fx.ResultTags(`name:"`+rawName+`"`))),
		fx.Provide(fx.Annotate(adapter.Interface(),
			fx.ParamTags(``, `name:"`+rawName+`"`),
			fx.ResultTags(publicTag, `group:"`+providerGroup+`"`))),
		fx.Invoke(requireModule(t)),
	)
}

type moduleParams struct {
	fx.In
	Registry *lifecycle.Registry `optional:"true"`
}

// requireModule fails the app if Module is missing: without it, a provider
// that nothing else consumes would never be built, initialized or cleaned
// up, silently, and one that something consumes would fail with a bare
// "missing type: *lifecycle.Registry".
func requireModule(t reflect.Type) func(moduleParams) error {
	return func(p moduleParams) error {
		if p.Registry == nil {
			return fmt.Errorf("fxmodule.Provide(%v) needs fxmodule.Module in the same app: add it to fx.New", t)
		}
		return nil
	}
}

// providedType checks ctor's shape and returns the provider type it builds.
func providedType(ctor any) (reflect.Type, error) {
	ft := reflect.TypeOf(ctor)
	if ft == nil || ft.Kind() != reflect.Func {
		return nil, fmt.Errorf("want a constructor function, got %T", ctor)
	}
	switch {
	case ft.NumOut() == 1:
	case ft.NumOut() == 2 && ft.Out(1) == errorType:
	default:
		return nil, fmt.Errorf("a provider constructor returns the provider, and optionally an error; %v does not", ft)
	}
	t := ft.Out(0)
	if !t.Implements(providerType) {
		return nil, fmt.Errorf("%v does not implement lifecycle.Provider (it needs an ID() string method)", t)
	}
	return t, nil
}

type registerParams struct {
	fx.In
	Registry *lifecycle.Registry
	Graph    fx.DotGraph
	Members  []member `group:"gleitzeit.providers"`
}

// registerProviders registers every provider with the dependencies found
// in the graph, in the order of the Provide calls.
func registerProviders(p registerParams) error {
	deps, err := discover(string(p.Graph), p.Members)
	if err != nil {
		return err
	}
	members := slices.Clone(p.Members)
	slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.seq, b.seq) })
	for _, m := range members {
		opts := slices.Clone(m.opts)
		if ids := deps[m.seq]; len(ids) > 0 {
			opts = append(opts, lifecycle.DependsOn(ids...))
		}
		if err := p.Registry.Register(m.p, opts...); err != nil {
			return err
		}
	}
	return nil
}

// discover finds, for each provider, the providers its constructor
// receives, directly or through other constructors, by walking the
// application's constructor graph. It returns their ids by member.
func discover(dot string, members []member) (map[uint64][]string, error) {
	g, err := parseGraph(dot)
	if err != nil {
		return nil, fmt.Errorf("read the fx graph: %w", err)
	}
	// Each provider has two constructors in the graph: its own, producing
	// the raw key, and the adapter, which consumes it. The adapters are
	// where a walk stops: reaching one means reaching that provider.
	adapterOf := make(map[int]member)
	stop := make(map[int]bool)
	for _, m := range members {
		for c, params := range g.params {
			if slices.Contains(params, m.raw) {
				adapterOf[c] = m
				stop[c] = true
			}
		}
	}
	deps := make(map[uint64][]string, len(members))
	for _, m := range members {
		own := g.producers[m.raw]
		if len(own) == 0 {
			return nil, fmt.Errorf("provider %q: its constructor is not in the fx graph", m.p.ID())
		}
		for _, c := range own {
			g.reaches(c, stop, func(a int) {
				if d := adapterOf[a]; d.seq != m.seq && !slices.Contains(deps[m.seq], d.p.ID()) {
					deps[m.seq] = append(deps[m.seq], d.p.ID())
				}
			})
		}
	}
	return deps, nil
}
