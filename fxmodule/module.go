package fxmodule

import (
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// The value groups through which providers and registry options reach the
// module.
const (
	providerGroup = "gleitzeit.providers"
	optionGroup   = "gleitzeit.options"
)

// Module provides a *[lifecycle.Registry] and gives every provider
// declared with [Provide] its place among the app's hooks: each provider
// is initialized when fx starts the hooks appended before it, and cleaned
// up, concurrently with the others, when fx has stopped every hook
// appended after it. See the package documentation.
//
// If a *zap.Logger is in the graph, the registry logs to it; if a
// trace.TracerProvider is, the registry traces its start and stop with it
// (see [lifecycle.WithTracerProvider]). Module leaves
// fx's own events to the application's choice of logger (fx.WithLogger,
// fxtest's, or fx's default): a module that chose one would override it.
// [EventLogger] sends them to the graph's *zap.Logger. In fx's events the
// module is named "gleitzeit", as the registry's logger is.
var Module fx.Option = fx.Module("gleitzeit",
	fx.Provide(newSession, registryOf),
	fx.Invoke(readGraph),
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

type sessionIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Logger    *zap.Logger          `optional:"true"`
	Tracer    trace.TracerProvider `optional:"true"`
	Options   []lifecycle.Option   `group:"gleitzeit.options"`
}

// newSession builds the app's registry. Its hooks are appended before any
// provider's: it registers the providers when fx starts, and ends the
// registry's Stop when fx stops.
func newSession(p sessionIn) *session {
	// No timeout fx would not have: fx's StartTimeout and StopTimeout bound
	// each provider, as they bound a hook, unless an option asks for less.
	opts := []lifecycle.Option{lifecycle.WithDefaultTimeout(lifecycle.NoTimeout)}
	if p.Logger != nil {
		opts = append(opts, lifecycle.WithLogger(p.Logger))
	}
	if p.Tracer != nil {
		opts = append(opts, lifecycle.WithTracerProvider(p.Tracer))
	}
	opts = append(opts, p.Options...)
	s := newSessionState(alarmLogger(p.Logger), func(o lifecycle.Observer) *lifecycle.Registry {
		return lifecycle.NewRegistry(append(opts, lifecycle.WithObserver(o))...)
	})
	p.Lifecycle.Append(fx.Hook{OnStart: s.start, OnStop: s.stop})
	return s
}

type registryIn struct {
	fx.In
	Session *session
	Members []managedProvider `group:"gleitzeit.providers"`
}

// registryOf gives the registry to the graph once every provider is built,
// so that a component built from the registry (an engine that leases
// providers, an admin server) has its hooks after every provider's: it
// starts once they are initialized and stops before they are cleaned up.
func registryOf(p registryIn) *lifecycle.Registry { return p.Session.reg }

type graphIn struct {
	fx.In
	Session  *session
	Registry *lifecycle.Registry // every provider built
	// Shutdowner leads to the app's tree of modules (see readTree).
	Shutdowner fx.Shutdowner
}

// readGraph checks that the fx this program runs with has the shapes the
// module reads (see checkFx), and keeps the way to the app's tree of
// modules for the session's start, where dependencies are found.
func readGraph(p graphIn) error {
	if err := checkFx(fx.Annotate, p.Shutdowner); err != nil {
		return err
	}
	p.Session.mu.Lock()
	p.Session.shutdowner = p.Shutdowner
	p.Session.mu.Unlock()
	return nil
}
