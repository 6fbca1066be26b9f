package fxapp

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/fxmodule"
)

// service is every provider: it does nothing, so that what is measured is
// the wiring.
type service struct{ id string }

func (s *service) ID() string                       { return s.id }
func (s *service) Initialize(context.Context) error { return nil }
func (s *service) Cleanup(context.Context) error    { return nil }

type lifecycled interface {
	Initialize(context.Context) error
	Cleanup(context.Context) error
}

func hook(lc fx.Lifecycle, s lifecycled) {
	lc.Append(fx.Hook{OnStart: s.Initialize, OnStop: s.Cleanup})
}

// hooked is ctor as the plain-fx twin declares it: appending its
// provider's hooks by hand.
func hooked[T lifecycled](ctor func() T) func(fx.Lifecycle) T {
	return func(lc fx.Lifecycle) T {
		v := ctor()
		hook(lc, v)
		return v
	}
}

// hookedLink is a chain constructor, appending its provider's hooks.
func hookedLink(ctor func(*service) *service) func(*service, fx.Lifecycle) *service {
	return func(prev *service, lc fx.Lifecycle) *service {
		s := ctor(prev)
		hook(lc, s)
		return s
	}
}

// flatCtor is a constructor of the flat shape: as fxmodule.Provide takes
// it, and as fx.Provide does, appending its hooks.
type flatCtor struct{ plain, hooked any }

// The plain-fx twin's constructors, made once as a program would have
// them.
var (
	hookedServiceCtors [len(serviceCtors)]func(fx.Lifecycle) *service
	hookedLinkCtors    [len(linkCtors)]func(*service, fx.Lifecycle) *service
)

func init() {
	for i, c := range serviceCtors {
		hookedServiceCtors[i] = hooked(c)
	}
	for i, c := range linkCtors {
		hookedLinkCtors[i] = hookedLink(c)
	}
}

// MaxProviders is the most providers an app can have.
const MaxProviders = len(flatCtors)

// Sizes are the numbers of providers measured.
var Sizes = []int{200, 800}

// Shape is one app, written two ways.
type Shape struct {
	Name  string
	build func(t twin, n int) []fx.Option
	deps  func(i int) []string
}

// Shapes are the apps measured:
//
//   - flat: n providers, each of a type of its own, built from nothing,
//     and an invoke that takes them all;
//   - group: n *service providers, each a member of the value group
//     "services" (fx.Annotate with fx.ResultTags), which one invoke takes;
//   - chain: n *service providers named p0 … p<n-1> (fx.ResultTags),
//     provider i built from provider i-1 by its name (fx.ParamTags), and
//     an invoke that takes the last.
//
// The twins differ only in fxmodule.Module and in each provider's
// declaration: fxmodule.Provide(ctor) against fx.Provide of a constructor
// that calls ctor and appends its hooks, with the same annotations.
var Shapes = []Shape{
	{Name: "flat", build: flat, deps: noDeps},
	{Name: "group", build: group, deps: noDeps},
	{Name: "chain", build: chain, deps: func(i int) []string {
		if i == 0 {
			return nil
		}
		return []string{"p" + strconv.Itoa(i-1)}
	}},
}

// Plain returns the options of the plain-fx twin of n providers.
func (s Shape) Plain(n int) []fx.Option { return s.app(fxTwin, n) }

// Module returns the options of the fxmodule twin of n providers.
func (s Shape) Module(n int) []fx.Option { return s.app(moduleTwin, n) }

// Annotated returns the options of the plain-fx twin with every
// constructor given through fx.Annotate, as fxmodule gives its wrappers
// (so that errors name the user's function): what fx.Annotate alone costs.
// Only flat's constructors are not annotated already.
func (s Shape) Annotated(n int) []fx.Option { return s.app(annotatedTwin, n) }

// DependsOn is what fxmodule should find that provider "p<i>" depends on.
func (s Shape) DependsOn(i int) []string { return s.deps(i) }

func (s Shape) app(t twin, n int) []fx.Option {
	if n < 1 || n > MaxProviders {
		panic(fmt.Sprintf("fxapp: %d providers: between 1 and %d", n, MaxProviders))
	}
	return s.build(t, n)
}

func noDeps(int) []string { return nil }

// twin is how the app declares its providers: with fxmodule, or not.
type twin int

const (
	fxTwin        twin = iota
	moduleTwin         // fxmodule.Provide
	annotatedTwin      // fx.Provide, each constructor through fx.Annotate
)

func (t twin) begin(n int) []fx.Option {
	opts := make([]fx.Option, 0, n+3)
	opts = append(opts, fx.NopLogger)
	if t == moduleTwin {
		opts = append(opts, fxmodule.Module)
	}
	return opts
}

// provide declares a provider: fxmodule.Provide(ctor), or fx.Provide(hooked),
// annotated alike.
func (t twin) provide(ctor, hooked any, anns ...fx.Annotation) fx.Option {
	switch {
	case t == moduleTwin:
		return fxmodule.Provide(annotate(ctor, anns))
	case t == annotatedTwin && len(anns) == 0:
		return fx.Provide(fx.Annotate(hooked))
	}
	return fx.Provide(annotate(hooked, anns))
}

func annotate(f any, anns []fx.Annotation) any {
	if len(anns) == 0 {
		return f
	}
	return fx.Annotate(f, anns...)
}

func flat(t twin, n int) []fx.Option {
	opts := t.begin(n)
	for _, c := range flatCtors[:n] {
		opts = append(opts, t.provide(c.plain, c.hooked))
	}
	return append(opts, fx.Invoke(flatConsumer(n)))
}

var (
	flatMu        sync.Mutex
	flatConsumers = map[int]any{}
)

// flatConsumer returns a function taking the first n providers of the
// flat shape, in an fx.In struct: made once for each n.
func flatConsumer(n int) any {
	flatMu.Lock()
	defer flatMu.Unlock()
	if f, ok := flatConsumers[n]; ok {
		return f
	}
	fields := []reflect.StructField{{Name: "In", Type: reflect.TypeFor[fx.In](), Anonymous: true}}
	for i, c := range flatCtors[:n] {
		fields = append(fields, reflect.StructField{Name: "P" + strconv.Itoa(i), Type: reflect.TypeOf(c.plain).Out(0)})
	}
	in := reflect.StructOf(fields)
	f := reflect.MakeFunc(reflect.FuncOf([]reflect.Type{in}, nil, false),
		func([]reflect.Value) []reflect.Value { return nil }).Interface()
	flatConsumers[n] = f
	return f
}

const servicesTag = `group:"services"`

type servicesIn struct {
	fx.In
	Services []*service `group:"services"`
}

func consumeGroup(servicesIn) {}

func group(t twin, n int) []fx.Option {
	opts := t.begin(n)
	for i := range n {
		opts = append(opts, t.provide(serviceCtors[i], hookedServiceCtors[i], fx.ResultTags(servicesTag)))
	}
	return append(opts, fx.Invoke(consumeGroup))
}

func nameTag(i int) string { return `name:"p` + strconv.Itoa(i) + `"` }

func consumeService(*service) {}

func chain(t twin, n int) []fx.Option {
	opts := t.begin(n)
	opts = append(opts, t.provide(serviceCtors[0], hookedServiceCtors[0], fx.ResultTags(nameTag(0))))
	for i := 1; i < n; i++ {
		opts = append(opts, t.provide(linkCtors[i-1], hookedLinkCtors[i-1],
			fx.ParamTags(nameTag(i-1)), fx.ResultTags(nameTag(i))))
	}
	return append(opts, fx.Invoke(fx.Annotate(consumeService, fx.ParamTags(nameTag(n-1)))))
}

// Run builds, starts and stops an app.
func Run(opts []fx.Option) error {
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return err
	}
	if err := app.Start(context.Background()); err != nil {
		return err
	}
	return app.Stop(context.Background())
}
