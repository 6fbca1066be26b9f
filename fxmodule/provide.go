package fxmodule

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Provide declares a provider constructor. ctor is what [fx.Provide] takes:
// a function returning a type that implements [lifecycle.Provider], and
// optionally an error, with any parameters (fx.In structs included); an
// [fx.Annotated] with a Name or a Group; or the result of [fx.Annotate],
// with fx.ParamTags, fx.ResultTags, fx.As, fx.From, fx.OnStart and
// fx.OnStop. Wrap it in [Private] to provide it only to its fx.Module, as
// fx.Private does.
//
// The provider's value reaches the rest of the graph as fx.Provide would
// give it. It depends on every other provider its constructor receives: as
// a parameter, an fx.In field, a group member, or through other
// constructors in the graph (a repository built from a database provider,
// say). opts add to that: [lifecycle.Timeout], [lifecycle.DependsOn].
func Provide(ctor any, opts ...lifecycle.RegisterOption) fx.Option {
	if t := reflect.TypeOf(ctor); t != nil && t.PkgPath() == "go.uber.org/fx" && t.Name() == "annotationError" {
		return fx.Provide(ctor) // fx.Annotate failed: fx says why
	}
	d, err := declare(ctor, opts)
	if err != nil {
		return fx.Error(fmt.Errorf("fxmodule.Provide(%s): %w", describe(ctor), err))
	}
	return d.options()
}

// Private marks a provider constructor, for [Provide], as fx.Private marks
// one for fx.Provide: its value is visible only inside the fx.Module that
// declares it. The registry still manages it.
func Private(ctor any) any { return private{ctor} }

type private struct{ ctor any }

// decl is one Provide call: the user's constructor and how to wrap it.
type decl struct {
	fn      reflect.Value // the user's function
	fnType  reflect.Type
	private bool
	opts    []lifecycle.RegisterOption

	// How the value is exposed: exactly one of these is used.
	tag        string          // a name or group tag for the value, from fx.Annotated
	paramTags  []string        // fx.Annotate's fx.ParamTags, if any
	paramAnns  []fx.Annotation // its other annotations on parameters
	resultAnns []fx.Annotation // and on results, hooks included
	annotated  bool
	// How consumers ask for the value, where fx.Annotate's result
	// annotations say: the type of the first fx.As, and the first tag of
	// fx.ResultTags.
	exposedType reflect.Type
	exposedTag  string

	provided reflect.Type // the constructor's result: what is registered
	hasErr   bool
	marker   string // the name of the marker result that finds this constructor in fx's graph
}

var (
	providerType  = reflect.TypeFor[lifecycle.Provider]()
	errorType     = reflect.TypeFor[error]()
	lifecycleType = reflect.TypeFor[fx.Lifecycle]()
	sessionType   = reflect.TypeFor[*session]()
	memberType    = reflect.TypeFor[member]()
	markerType    = reflect.TypeFor[marker]()
	outType       = reflect.TypeFor[fx.Out]()
	inType        = reflect.TypeFor[fx.In]()
)

// member is a provider's entry in the value group that Module consumes,
// so that every provider is built, and built before anything that takes
// the registry.
type member struct{}

// marker is a provider constructor's extra result, named uniquely: it
// finds the constructor in fx's graph.
type marker struct{}

func declare(ctor any, opts []lifecycle.RegisterOption) (*decl, error) {
	d := &decl{opts: opts}
	if p, ok := ctor.(private); ok {
		d.private, ctor = true, p.ctor
	}
	switch c := ctor.(type) {
	case fx.Annotated:
		switch {
		case c.Name != "" && c.Group != "":
			return nil, errors.New("fx.Annotated may have a Name or a Group, not both")
		case c.Name != "":
			d.tag = `name:"` + c.Name + `"`
		case c.Group != "":
			d.tag = `group:"` + c.Group + `"`
		}
		ctor = c.Target
	case private:
		return nil, errors.New("Private given twice")
	default:
		if target, anns, ok := annotatedParts(ctor); ok {
			d.annotated = true
			exposedSet := false
			for _, a := range anns {
				switch side, err := annotationSide(a); {
				case err != nil:
					return nil, err
				case side == paramSide:
					if tags, ok := paramTags(a); ok {
						d.paramTags = tags
					} else {
						d.paramAnns = append(d.paramAnns, a)
					}
				default:
					d.resultAnns = append(d.resultAnns, a)
					if tag, ok := firstResultTag(a); ok {
						d.exposedTag = tag
					}
					if t, ok := firstAsType(a); ok && !exposedSet {
						d.exposedType, exposedSet = t, true // nil for fx.Self: the result's own type
					}
				}
			}
			ctor = target
		}
	}
	fn := reflect.ValueOf(ctor)
	if !fn.IsValid() || fn.Kind() != reflect.Func || fn.IsNil() {
		return nil, fmt.Errorf("want a constructor function, got %T", ctor)
	}
	d.fn, d.fnType = fn, fn.Type()
	ft := d.fnType
	switch {
	case ft.NumOut() == 1:
	case ft.NumOut() == 2 && ft.Out(1) == errorType:
		d.hasErr = true
	default:
		return nil, fmt.Errorf("%s: a provider constructor returns the provider, and optionally an error; %v does not", d.where(), ft)
	}
	d.provided = ft.Out(0)
	if d.exposedType == nil {
		d.exposedType = d.provided
	}
	if !d.provided.Implements(providerType) {
		return nil, fmt.Errorf("%s: %v does not implement lifecycle.Provider (it needs an ID() string method)", d.where(), d.provided)
	}
	if ft.IsVariadic() && d.annotated {
		return nil, fmt.Errorf("%s: a variadic provider constructor cannot be annotated", d.where())
	}
	if isOutStruct(d.provided) {
		return nil, fmt.Errorf("%s: a provider constructor returns the provider itself, not an fx.Out struct", d.where())
	}
	// Unique for as long as the option lives, without a counter shared by
	// every app in the process, and telling in fx's logs.
	d.marker = "fxmodule.Provide(" + runtime.FuncForPC(fn.Pointer()).Name() + ")@" + strconv.FormatUint(uint64(reflect.ValueOf(d).Pointer()), 16)
	return d, nil
}

// options are the fx options of one Provide: the wrapped constructor, with
// an identity constructor exposing its value when fx.Annotate's result
// annotations say how, and an invoke that fails the app if Module is
// missing and sees the value consumers receive.
func (d *decl) options() fx.Option {
	var provideOpts []any
	if d.private {
		provideOpts = append(provideOpts, fx.Private)
	}
	var opts []fx.Option
	if d.private {
		// The value stays in its module, but the registry's group, at the
		// root, must still wait for it: see exportMember.
		opts = append(opts, fx.Provide(d.exportMember()))
	}
	if !d.annotated {
		opts = append(opts, fx.Provide(append([]any{d.wrapper(d.tag, true)}, provideOpts...)...))
		opts = append(opts, fx.Invoke(d.check(d.provided, d.tag)))
		return fx.Options(opts...)
	}
	// Annotated: the wrapped constructor, with the user's parameter
	// annotations, gives the value under the marker's name; an identity,
	// with the user's result annotations, exposes it. The invoke asks for
	// it as consumers do, so that the identity, and any hook its
	// annotations add, is built with the provider even if nothing consumes
	// it.
	raw := `name:"` + d.marker + `.value"`
	var w any
	switch {
	case d.paramTags != nil:
		// The user's tags, then the session's, optional, so that a
		// missing Module is reported as such.
		tags := slices.Clone(d.paramTags)
		for len(tags) < d.fnType.NumIn() {
			tags = append(tags, ``)
		}
		tags = append(tags, `optional:"true"`, ``)
		w = fx.Annotate(d.wrapper(raw, false), append([]fx.Annotation{fx.ParamTags(tags...)}, d.paramAnns...)...)
	case len(d.paramAnns) > 0:
		w = fx.Annotate(d.wrapper(raw, false), d.paramAnns...)
	default:
		w = d.wrapper(raw, true)
	}
	expose := reflect.MakeFunc(
		reflect.FuncOf([]reflect.Type{d.provided}, []reflect.Type{d.provided}, false),
		func(args []reflect.Value) []reflect.Value { return args })
	anns := append([]fx.Annotation{fx.ParamTags(raw)}, d.resultAnns...)
	opts = append(opts,
		fx.Provide(append([]any{w}, provideOpts...)...),
		fx.Provide(append([]any{fx.Annotate(expose.Interface(), anns...)}, provideOpts...)...),
		fx.Invoke(d.check(d.exposedType, d.exposedTag)),
	)
	return fx.Options(opts...)
}

// wrapper returns the constructor that fx calls in place of the user's: it
// takes the user's parameters and the session, appends the provider's
// hooks, calls the user's function, and gives its value (tagged with tag),
// the group member and the marker. The session arrives in an fx.In struct
// marked optional, so that a missing Module is reported as such, unless
// fx.Annotate's parameter annotations forbid an fx.In parameter.
func (d *decl) wrapper(tag string, optionalSession bool) any {
	ft := d.fnType
	nIn := ft.NumIn()
	if ft.IsVariadic() {
		nIn-- // fx never fills a variadic parameter of a plain constructor
	}
	in := make([]reflect.Type, 0, nIn+2)
	for i := range nIn {
		in = append(in, ft.In(i))
	}
	sessionIn := optionalSession
	if sessionIn {
		in = append(in, sessionParams)
	} else {
		in = append(in, sessionType, lifecycleType)
	}
	outFields := []reflect.StructField{
		{Name: "Out", Type: outType, Anonymous: true},
		{Name: "Value", Type: d.provided, Tag: reflect.StructTag(tag)},
		{Name: "Member", Type: memberType, Tag: `group:"` + providerGroup + `"`},
		{Name: "Marker", Type: markerType, Tag: reflect.StructTag(`name:"` + d.marker + `"`)},
	}
	out := reflect.StructOf(outFields)
	wt := reflect.FuncOf(in, []reflect.Type{out, errorType}, false)
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		var (
			s  *session
			lc fx.Lifecycle
		)
		if sessionIn {
			p := args[nIn]
			s, _ = p.Field(1).Interface().(*session)
			lc, _ = p.Field(2).Interface().(fx.Lifecycle)
		} else {
			s, _ = args[nIn].Interface().(*session)
			lc, _ = args[nIn+1].Interface().(fx.Lifecycle)
		}
		fail := func(err error) []reflect.Value {
			return []reflect.Value{reflect.Zero(out), reflect.ValueOf(&err).Elem()}
		}
		if s == nil {
			return fail(d.missingModule())
		}
		v, err := s.build(d, lc, args[:nIn], func() (reflect.Value, error) {
			var res []reflect.Value
			if ft.IsVariadic() {
				res = d.fn.CallSlice(append(args[:nIn:nIn], reflect.Zero(ft.In(nIn))))
			} else {
				res = d.fn.Call(args[:nIn])
			}
			if d.hasErr && !res[1].IsNil() {
				return reflect.Value{}, res[1].Interface().(error)
			}
			return res[0], nil
		})
		if err != nil {
			return fail(err)
		}
		o := reflect.New(out).Elem()
		o.Field(1).Set(v)
		return []reflect.Value{o, reflect.Zero(errorType)}
	}).Interface()
}

// exportMember returns, for a Private provider, a constructor that fx
// exports to the root while calling it in the provider's module: it takes
// the provider's marker, visible only there, and gives a member of the
// providers group, which the registry waits for. So the registry, and
// every component built from it, come after a Private provider as after
// any other.
func (d *decl) exportMember() any {
	in := reflect.StructOf([]reflect.StructField{
		{Name: "In", Type: inType, Anonymous: true},
		{Name: "Marker", Type: markerType, Tag: reflect.StructTag(`name:"` + d.marker + `"`)},
	})
	out := reflect.StructOf([]reflect.StructField{
		{Name: "Out", Type: outType, Anonymous: true},
		{Name: "Member", Type: memberType, Tag: `group:"` + providerGroup + `"`},
	})
	return reflect.MakeFunc(reflect.FuncOf([]reflect.Type{in}, []reflect.Type{out}, false),
		func([]reflect.Value) []reflect.Value { return []reflect.Value{reflect.Zero(out)} }).Interface()
}

// sessionParams is the wrapper's last parameter when it may be an fx.In
// struct: the session, optional so that its absence can be explained.
var sessionParams = reflect.TypeFor[struct {
	fx.In
	Session   *session `optional:"true"`
	Lifecycle fx.Lifecycle
}]()

// check returns the invoke of one Provide: it fails the app if Module is
// missing (a provider nothing consumes would otherwise never be built, in
// silence), asks for the value as consumers do (typ, tag), so that it is
// built, with any hook fx.Annotate adds, and tells the session what value
// consumers receive, which a decorator or fx.Replace may have changed.
func (d *decl) check(typ reflect.Type, tag string) any {
	group := strings.Contains(tag, "group:")
	field := reflect.StructField{Name: "Value", Type: typ, Tag: reflect.StructTag(strings.TrimSpace(tag + ` optional:"true"`))}
	if group { // a member is not asked for alone: the whole group is
		name := reflect.StructTag(tag).Get("group")
		name, _, _ = strings.Cut(name, ",")
		field = reflect.StructField{Name: "Value", Type: reflect.SliceOf(typ), Tag: reflect.StructTag(`group:"` + name + `"`)}
	}
	in := reflect.StructOf([]reflect.StructField{
		{Name: "In", Type: inType, Anonymous: true},
		{Name: "Session", Type: sessionType, Tag: `optional:"true"`},
		field,
	})
	ft := reflect.FuncOf([]reflect.Type{in}, []reflect.Type{errorType}, false)
	return reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		p := args[0]
		s, _ := p.Field(1).Interface().(*session)
		var err error
		if s == nil {
			err = d.missingModule()
		} else if !group {
			err = s.received(d, p.Field(2))
		}
		return []reflect.Value{reflect.ValueOf(&err).Elem()}
	}).Interface()
}

// where names the user's function, with its file and line, for errors.
func (d *decl) where() string { return funcLocation(d.fn) }

func (d *decl) missingModule() error {
	return fmt.Errorf("fxmodule.Provide(%s) needs fxmodule.Module in the same app: add it to fx.New", d.where())
}

// funcLocation names a function as fx does, with its file and line.
func funcLocation(fn reflect.Value) string {
	f := runtime.FuncForPC(fn.Pointer())
	if f == nil {
		return fn.Type().String()
	}
	file, line := f.FileLine(f.Entry())
	return fmt.Sprintf("%s (%s:%d)", f.Name(), file, line)
}

// describe names what Provide was given, for an error about it.
func describe(ctor any) string {
	if v := reflect.ValueOf(ctor); v.IsValid() && v.Kind() == reflect.Func && !v.IsNil() {
		return funcLocation(v)
	}
	return fmt.Sprintf("%T", ctor)
}

func isOutStruct(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for f := range t.Fields() {
		if f.Anonymous && f.Type == outType {
			return true
		}
	}
	return false
}
