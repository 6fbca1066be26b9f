package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Defaults for a registry built without options.
const (
	// DefaultTimeout bounds each provider's Initialize and cleanup unless
	// [Timeout] says otherwise. It is well below the 30 seconds Kubernetes
	// allows a pod to stop, so that a stop context of that size leaves room
	// for the providers that depend on a slow one.
	DefaultTimeout = 10 * time.Second
	// DefaultHealthTimeout bounds each health check. Readiness probes poll
	// every few seconds; a check slower than this is reported unhealthy.
	DefaultHealthTimeout = 2 * time.Second
	// NoTimeout, given to [WithDefaultTimeout] or [Timeout], leaves a
	// provider without a bound of its own: the caller's context (Start's,
	// StartProvider's, Stop's) alone bounds its Initialize and its cleanup.
	// fxmodule uses it so that fx's StartTimeout and StopTimeout are the
	// only bounds, as they are for a hook.
	NoTimeout time.Duration = -1
)

// An Option configures a [Registry].
type Option interface {
	apply(*config)
	String() string
}

type config struct {
	logger        *zap.Logger
	timeout       time.Duration
	healthTimeout time.Duration
	observers     []Observer
	tracer        trace.Tracer
}

// WithLogger sends the registry's logs to the given logger. A nil logger, or
// none, logs nowhere.
func WithLogger(l *zap.Logger) Option { return loggerOption{l} }

type loggerOption struct{ l *zap.Logger }

func (o loggerOption) apply(c *config) { c.logger = o.l }
func (o loggerOption) String() string  { return "WithLogger(...)" }

// WithDefaultTimeout sets the timeout of every provider registered without
// its own [Timeout]. Zero keeps [DefaultTimeout]; [NoTimeout] (any
// negative value) leaves them bounded by the caller's context alone.
func WithDefaultTimeout(d time.Duration) Option { return defaultTimeoutOption(d) }

type defaultTimeoutOption time.Duration

func (o defaultTimeoutOption) apply(c *config) {
	switch {
	case o > 0:
		c.timeout = time.Duration(o)
	case o < 0:
		c.timeout = NoTimeout
	}
}
func (o defaultTimeoutOption) String() string {
	return fmt.Sprintf("WithDefaultTimeout(%v)", time.Duration(o))
}

// WithHealthTimeout bounds each provider's health check. A value of zero or
// less keeps [DefaultHealthTimeout].
func WithHealthTimeout(d time.Duration) Option { return healthTimeoutOption(d) }

type healthTimeoutOption time.Duration

func (o healthTimeoutOption) apply(c *config) {
	if o > 0 {
		c.healthTimeout = time.Duration(o)
	}
}
func (o healthTimeoutOption) String() string {
	return fmt.Sprintf("WithHealthTimeout(%v)", time.Duration(o))
}

// WithObserver adds an observer that receives every [Event]. It may be given
// more than once; observers are called in the order given.
func WithObserver(o Observer) Option { return observerOption{o} }

type observerOption struct{ o Observer }

func (o observerOption) apply(c *config) {
	if o.o != nil {
		c.observers = append(c.observers, o.o)
	}
}
func (o observerOption) String() string { return "WithObserver(...)" }

var (
	_ Option = loggerOption{}
	_ Option = defaultTimeoutOption(0)
	_ Option = healthTimeoutOption(0)
	_ Option = observerOption{}
	_ Option = tracerOption{}
)

// A RegisterOption configures one provider's registration.
type RegisterOption interface {
	applyRegister(*registration)
	String() string
}

type registration struct {
	id      string        // "": the provider's own ID()
	timeout time.Duration // 0: the registry's default; NoTimeout: none
	deps    []string
	staged  bool
}

// Timeout bounds the provider's Initialize and its cleanup, replacing the
// registry's default for this provider. Zero keeps the default;
// [NoTimeout] (any negative value) leaves the provider bounded by the
// caller's context alone.
func Timeout(d time.Duration) RegisterOption { return timeoutOption(d) }

type timeoutOption time.Duration

func (o timeoutOption) applyRegister(r *registration) {
	switch {
	case o > 0:
		r.timeout = time.Duration(o)
	case o < 0:
		r.timeout = NoTimeout
	}
}
func (o timeoutOption) String() string { return fmt.Sprintf("Timeout(%v)", time.Duration(o)) }

// DependsOn declares that the provider uses the providers with these ids:
// they are initialized before it and cleaned up only after its cleanup has
// ended. It may be given more than once; the ids add up.
func DependsOn(ids ...string) RegisterOption { return dependsOnOption(ids) }

// DependsOnOf returns the ids that the DependsOn options among opts name,
// in order: for a library that registers providers on its callers' behalf
// and must know the dependencies they declared (fxmodule keeps the ones it
// infers from forming a cycle with them).
func DependsOnOf(opts ...RegisterOption) []string {
	var r registration
	for _, o := range opts {
		if d, ok := o.(dependsOnOption); ok {
			d.applyRegister(&r)
		}
	}
	return r.deps
}

type dependsOnOption []string

func (o dependsOnOption) applyRegister(r *registration) { r.deps = append(r.deps, o...) }
func (o dependsOnOption) String() string {
	return "DependsOn(" + strings.Join(o, ", ") + ")"
}

// Staged registers a provider whose start and stop an outer framework
// steps through itself, one provider at a time, in its own order: package
// fxmodule does, so that each provider takes its place among fx's hooks.
// Start leaves a staged provider to [Registry.StartProvider], and Stop
// begins its cleanup only once [Registry.AllowCleanup] has been called for it
// (as well as, as always, once its dependents' cleanups have ended), or
// once Stop's context is done, whoever called Stop. A rollback or an
// Unregister does not wait for AllowCleanup.
func Staged() RegisterOption { return stagedOption{} }

type stagedOption struct{}

func (stagedOption) applyRegister(r *registration) { r.staged = true }
func (stagedOption) String() string                { return "Staged()" }

// RegisteredAs registers the provider under id rather than its own ID():
// the id the registry's methods, events and report use for it. Package
// fxmodule uses it for two fx.Private providers, in two fx.Modules, whose
// IDs are the same. An empty id keeps the provider's own.
func RegisteredAs(id string) RegisterOption { return registeredAsOption(id) }

type registeredAsOption string

func (o registeredAsOption) applyRegister(r *registration) { r.id = string(o) }
func (o registeredAsOption) String() string                { return fmt.Sprintf("RegisteredAs(%q)", string(o)) }

var (
	_ RegisterOption = registeredAsOption("")
	_ RegisterOption = timeoutOption(0)
	_ RegisterOption = dependsOnOption(nil)
	_ RegisterOption = stagedOption{}
)
