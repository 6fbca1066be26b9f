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

// Provide declares provider constructors, as [fx.Provide] declares
// constructors. Each ctor is what fx.Provide takes: a function with any
// parameters (fx.In structs included) whose results, or the fields of
// whose fx.Out results, include at least one that implements
// [lifecycle.Provider], optionally with an error last; an [fx.Annotated]
// with a Name or a Group; or the result of [fx.Annotate], with
// fx.ParamTags, fx.ResultTags, fx.As, fx.From, fx.OnStart and fx.OnStop.
// [fx.Private], among the arguments, provides them only to their
// fx.Module, as it does for fx.Provide; [lifecycle.RegisterOption]s
// ([lifecycle.Timeout], [lifecycle.DependsOn]) apply to each provider.
//
// Every result reaches the rest of the graph as fx.Provide would give it;
// each that is a provider is managed. It depends on every other provider its constructor receives: as
// a parameter, an fx.In field, a group member, or through other
// constructors in the graph (a repository built from a database provider,
// say).
func Provide(ctors ...any) fx.Option {
	var (
		targets []any
		opts    []lifecycle.RegisterOption
		priv    bool
	)
	for _, c := range ctors {
		switch c := c.(type) {
		case lifecycle.RegisterOption:
			opts = append(opts, c)
		case private:
			targets = append(targets, c)
		default:
			if c == any(fx.Private) {
				priv = true
				continue
			}
			targets = append(targets, c)
		}
	}
	if len(targets) == 0 {
		return fx.Error(errors.New("fxmodule.Provide: no constructor given"))
	}
	all := make([]fx.Option, 0, len(targets))
	for _, ctor := range targets {
		if t := reflect.TypeOf(ctor); t != nil && t.PkgPath() == "go.uber.org/fx" && t.Name() == "annotationError" {
			all = append(all, fx.Provide(ctor)) // fx.Annotate failed: fx says why
			continue
		}
		d, err := declare(ctor, priv, opts)
		if err != nil {
			all = append(all, fx.Error(fmt.Errorf("fxmodule.Provide(%s): %w", describe(ctor), err)))
			continue
		}
		all = append(all, d.options())
	}
	return fx.Options(all...)
}

// Private marks a provider constructor, for [Provide], as fx.Private marks
// the constructors of fx.Provide: its value is visible only inside the
// fx.Module that declares it. The registry still manages it.
// Provide(NewDB, fx.Private) says the same.
func Private(ctor any) any { return private{ctor} }

type private struct{ ctor any }

// decl is one provider constructor given to Provide: the user's function
// and how to wrap it.
type decl struct {
	fn      reflect.Value // the user's function
	fnType  reflect.Type
	private bool
	opts    []lifecycle.RegisterOption

	tag        string          // a name or group tag for the value, from fx.Annotated
	paramTags  []string        // fx.Annotate's fx.ParamTags, if any
	paramAnns  []fx.Annotation // its other annotations on parameters
	resultAnns []fx.Annotation // and on results, hooks included
	// resultHooks: fx.OnStart or fx.OnStop among them, which an identity
	// after the wrapper must carry; fx.As and fx.ResultTags the wrapper
	// applies itself (see exposures).
	resultHooks bool
	exposures   [][]exposure // by result: how fx.Annotate's result annotations expose it
	annotated   bool

	outs       []reflect.Type // the constructor's results, its error aside
	hasErr     bool
	results    []*result       // the providers among them
	name       string          // the constructor's function, as runtime.FuncForPC names it
	raw        string          // for result annotations: the name of the values before they apply
	anns       []fx.Annotation // the wrapper's annotations, as given to fx.Annotate (see anchor)
	exposeAnns []fx.Annotation // the identity's, if any (see exposeAnchor)
}

// anchor tells the declaration apart in fx's tree of modules: the address
// of its wrapper's annotations, which fx.Annotate keeps as given.
func (d *decl) anchor() uintptr { return reflect.ValueOf(d.anns).Pointer() }

// exposeAnchor tells apart, likewise, the identity that exposes the
// wrapper's values with fx.Annotate's result annotations.
func (d *decl) exposeAnchor() uintptr { return reflect.ValueOf(d.exposeAnns).Pointer() }

var (
	providerType  = reflect.TypeFor[lifecycle.Provider]()
	errorType     = reflect.TypeFor[error]()
	lifecycleType = reflect.TypeFor[fx.Lifecycle]()
	sessionType   = reflect.TypeFor[*session]()
	memberType    = reflect.TypeFor[managedProvider]()
	entryOut      = reflect.StructOf([]reflect.StructField{
		{Name: "Out", Type: outType, Anonymous: true},
		{Name: "Entry", Type: memberType, Tag: `group:"` + providerGroup + `"`},
	})
	outType = reflect.TypeFor[fx.Out]()
	inType  = reflect.TypeFor[fx.In]()
)

// managedProvider is a provider's entry in the value group that Module
// consumes, so that every provider is built, and built before anything
// that takes the registry. It is given for the value consumers receive, which
// fx.Replace or a decorator may have changed: a replaced constructor is
// never called.
type managedProvider struct{}

func declare(ctor any, priv bool, opts []lifecycle.RegisterOption) (*decl, error) {
	d := &decl{opts: opts, private: priv}
	// How consumers ask for each result, where fx.Annotate's result
	// annotations say: the types of each fx.As, the tags of fx.ResultTags.
	var (
		exposedTypes [][]reflect.Type
		exposedTags  []string
	)
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
					if tags, ok := resultTags(a); ok {
						exposedTags = tags
					} else if ts, ok := asTypes(a); ok {
						exposedTypes = append(exposedTypes, ts) // a nil type for fx.Self, the result's own
					} else {
						d.resultHooks = true
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
	for i := range ft.NumOut() {
		if t := ft.Out(i); t == errorType && i == ft.NumOut()-1 {
			d.hasErr = true
		} else {
			d.outs = append(d.outs, t)
		}
	}
	if ft.IsVariadic() && d.annotated {
		return nil, fmt.Errorf("%s: a variadic provider constructor cannot be annotated", d.where())
	}
	d.name = runtime.FuncForPC(fn.Pointer()).Name()
	if err := d.findResults(exposedTypes, exposedTags); err != nil {
		return nil, err // Provide names the constructor
	}
	// The same for every declaration of one function with one set of
	// result annotations, which fx would refuse twice in one scope anyway:
	// a name made afresh for each would make reflect types that reflect
	// keeps for good.
	var shown []string
	for _, es := range d.exposures {
		for _, e := range es {
			shown = append(shown, strings.TrimSpace(e.typ.String()+" "+e.tag))
		}
	}
	d.raw = d.name + ", before fx.Annotate's results (" + strings.Join(shown, ", ") + ")"
	return d, nil
}

// options are the fx options of one provider constructor: the wrapped
// constructor, with an identity exposing its values when fx.Annotate's
// result annotations say how; each provider's entry in the registry's
// group, given for the value consumers receive; and an invoke that fails
// the app if Module is missing.
func (d *decl) options() fx.Option {
	var provideOpts []any
	if d.private {
		provideOpts = append(provideOpts, fx.Private)
	}
	provide := func(ctor any) fx.Option { return fx.Provide(append([]any{ctor}, provideOpts...)...) }
	renamed := d.resultHooks
	var (
		w    any
		anns []fx.Annotation
	)
	switch {
	case d.paramTags != nil:
		// The user's tags, then the session's, optional, so that a
		// missing Module is reported as such.
		// Tags past the constructor's parameters are ignored, as fx does.
		tags := slices.Clone(d.paramTags[:min(len(d.paramTags), d.fnType.NumIn())])
		for len(tags) < d.fnType.NumIn() {
			tags = append(tags, ``)
		}
		tags = append(tags, `optional:"true"`, ``)
		w, anns = d.wrapper(false, renamed), append([]fx.Annotation{fx.ParamTags(tags...)}, d.paramAnns...)
	case len(d.paramAnns) > 0:
		w, anns = d.wrapper(false, renamed), d.paramAnns
	default:
		w = d.wrapper(true, renamed)
	}
	// The wrapper's annotations are a slice of their own, whose address
	// finds the declaration in fx's tree of modules (see readTree).
	d.anns = append(make([]fx.Annotation, 0, len(anns)+1), anns...)
	opts := []fx.Option{fx.Invoke(d.requireModule), provide(d.locate(w, d.anns))}
	if renamed {
		// The wrapper gives the values under raw names; an identity, with
		// the user's result annotations, exposes them.
		in := slices.Clone(d.outs)
		tags := make([]string, len(d.outs))
		for i := range d.outs {
			tags[i] = d.rawTag(i)
		}
		// The constructor's parameters too, as fx.ParamTags tags them,
		// so that a hook may take them, as fx lets it take the annotated
		// function's: all but fx.In structs, which fx.ParamTags cannot
		// take, and those fx.From changes.
		if len(d.paramAnns) == 0 {
			for i := range d.fnType.NumIn() {
				t := d.fnType.In(i)
				if d.fnType.IsVariadic() && i == d.fnType.NumIn()-1 || isInStruct(t) {
					continue
				}
				tag := ""
				if i < len(d.paramTags) {
					tag = d.paramTags[i]
				}
				in, tags = append(in, t), append(tags, tag)
			}
		}
		n := len(d.outs)
		expose := reflect.MakeFunc(reflect.FuncOf(in, d.outs, false),
			func(args []reflect.Value) []reflect.Value { return args[:n] })
		d.exposeAnns = append([]fx.Annotation{fx.ParamTags(tags...)}, d.resultAnns...)
		opts = append(opts, provide(d.locate(expose.Interface(), d.exposeAnns)))
	}
	// The group's entries are exported to the root, where the registry
	// reads the group, and read the values in the provider's module.
	for _, r := range d.results {
		switch {
		case !r.grouped():
			opts = append(opts, fx.Provide(r.entry(r.askType, r.askTag)))
		case renamed:
			// A member of a group is not asked for alone: the value
			// under its raw name is the one consumers receive.
			opts = append(opts, fx.Provide(r.entry(r.typ, d.rawTag(r.out))))
		}
		// Otherwise the wrapper gives the entry itself.
	}
	return fx.Options(opts...)
}

// exposedField is one field of the struct in which the wrapper gives its
// results: result out, as typ, tagged.
type exposedField struct {
	out int
	typ reflect.Type
	tag string
}

// exposed returns the fields in which the wrapper gives its results: under
// raw names if renamed, else as fx.Annotated and fx.Annotate's fx.As and
// fx.ResultTags expose them; nil if it gives them as the user's function
// does.
func (d *decl) exposed(renamed bool) []exposedField {
	var fields []exposedField
	plain := true
	for i, t := range d.outs {
		if renamed {
			fields, plain = append(fields, exposedField{i, t, d.rawTag(i)}), false
			continue
		}
		for _, e := range d.exposures[i] {
			fields = append(fields, exposedField{i, e.typ, e.tag})
			plain = plain && e.typ == t && e.tag == "" && len(d.exposures[i]) == 1
		}
	}
	if plain {
		return nil
	}
	return fields
}

// rawTag is the tag of result i under its raw name.
func (d *decl) rawTag(i int) string { return `name:"` + d.raw + "#" + strconv.Itoa(i) + `"` }

// locate returns fn, annotated with anns, located at the user's
// constructor: fx's and dig's errors about it (a missing dependency, a
// type provided twice, a panic) name the user's function and its file and
// line, as they would without this module. fx.Annotate's result carries
// the location in an exported field of an unexported type (see
// checkFx).
func (d *decl) locate(fn any, anns []fx.Annotation) any {
	return locatedAt(d.fn, fx.Annotate(fn, anns...))
}

// locatedAt returns annotated, fx.Annotate's result, located at fn.
func locatedAt(fn reflect.Value, annotated any) any {
	a := reflect.ValueOf(annotated)
	v := reflect.New(a.Type()).Elem()
	v.Set(a)
	if f := v.FieldByName(funcPtrField); f.IsValid() && f.CanSet() && f.Kind() == reflect.Uintptr {
		f.SetUint(uint64(fn.Pointer()))
	}
	return v.Interface()
}

func isGroup(tag string) bool { return reflect.StructTag(tag).Get("group") != "" }

// wrapper returns the constructor that fx calls in place of the user's: it
// takes the user's parameters and the session, appends the providers'
// hooks, calls the user's function, and gives its results as the user's
// function would (under raw names if renamed, tagged as fx.Annotated says),
// with the registry group's entry if a provider is a group member. The
// session arrives in an fx.In struct marked optional, so that a missing
// Module is reported as such, unless fx.Annotate's parameter annotations
// forbid an fx.In parameter.
func (d *decl) wrapper(sessionIn, renamed bool) any {
	ft := d.fnType
	nIn := ft.NumIn()
	if ft.IsVariadic() {
		nIn-- // fx never fills a variadic parameter of a plain constructor
	}
	in := make([]reflect.Type, 0, nIn+2)
	for i := range nIn {
		in = append(in, ft.In(i))
	}
	if sessionIn {
		in = append(in, sessionParams)
	} else {
		in = append(in, sessionType, lifecycleType)
	}
	var (
		out     []reflect.Type
		tagged  reflect.Type // the struct that renames or tags the results, if any
		grouped = slices.ContainsFunc(d.results, (*result).grouped)
	)
	var from []int // by field of tagged: the result it gives
	if fields := d.exposed(renamed); fields != nil {
		sf := []reflect.StructField{{Name: "Out", Type: outType, Anonymous: true}}
		for k, f := range fields {
			sf = append(sf, reflect.StructField{Name: "V" + strconv.Itoa(k), Type: f.typ, Tag: reflect.StructTag(f.tag)})
			from = append(from, f.out)
		}
		tagged = reflect.StructOf(sf)
		out = []reflect.Type{tagged}
	} else {
		out = slices.Clone(d.outs)
	}
	if grouped && !renamed {
		out = append(out, entryOut)
	}
	out = append(out, errorType)
	wt := reflect.FuncOf(in, out, false)
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
		args = args[:nIn]
		res := make([]reflect.Value, len(out))
		fail := func(err error) []reflect.Value {
			for i, t := range out {
				res[i] = reflect.Zero(t)
			}
			res[len(res)-1] = reflect.ValueOf(&err).Elem()
			return res
		}
		if s == nil {
			return fail(d.missingModule())
		}
		vals, err := s.build(d, lc, args, func() ([]reflect.Value, error) {
			var res []reflect.Value
			if ft.IsVariadic() {
				res = d.fn.CallSlice(append(args[:nIn:nIn], reflect.Zero(ft.In(nIn))))
			} else {
				res = d.fn.Call(args)
			}
			if d.hasErr {
				if err := res[len(res)-1]; !err.IsNil() {
					return nil, err.Interface().(error)
				}
				res = res[:len(res)-1]
			}
			return res, nil
		})
		if err != nil {
			return fail(err)
		}
		if tagged != nil {
			o := reflect.New(tagged).Elem()
			for k, i := range from {
				o.Field(k + 1).Set(vals[i])
			}
			res[0] = o
		} else {
			copy(res, vals)
		}
		for i, v := range res {
			if !v.IsValid() { // the entry, and the nil error
				res[i] = reflect.Zero(out[i])
			}
		}
		return res
	}).Interface()
}

// sessionParams is the wrapper's last parameter when it may be an fx.In
// struct: the session, optional so that its absence can be explained.
var sessionParams = reflect.TypeFor[struct {
	fx.In
	Session   *session `optional:"true"`
	Lifecycle fx.Lifecycle
}]()

// entry returns the constructor of the provider's entry in the registry's
// group: it asks for the value as consumers do (typ, tag), so that fx
// builds it with any decorator, or takes fx.Replace's value instead, and
// tells the session what that value is. Only the registry, which Module
// builds, asks for the group: the session is always there. The value comes
// as a plain parameter where it has no tag, which dig reads faster than
// an fx.In struct.
func (r *result) entry(typ reflect.Type, tag string) any {
	if tag == "" {
		ft := reflect.FuncOf([]reflect.Type{typ, sessionType}, []reflect.Type{memberType, errorType}, false)
		return fx.Annotated{Group: providerGroup, Target: reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
			return r.enter(args[1], args[0])
		}).Interface()}
	}
	in := reflect.StructOf([]reflect.StructField{
		{Name: "In", Type: inType, Anonymous: true},
		{Name: "Value", Type: typ, Tag: reflect.StructTag(tag)},
		{Name: "Session", Type: sessionType},
	})
	ft := reflect.FuncOf([]reflect.Type{in}, []reflect.Type{memberType, errorType}, false)
	return fx.Annotated{Group: providerGroup, Target: reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		return r.enter(args[0].Field(2), args[0].Field(1))
	}).Interface()}
}

// enter is an entry's body: the session learns what value consumers
// receive.
func (r *result) enter(s, v reflect.Value) []reflect.Value {
	err := s.Interface().(*session).received(r, v)
	return []reflect.Value{reflect.Zero(memberType), reflect.ValueOf(&err).Elem()}
}

type requireModuleParams struct {
	fx.In
	Session *session `optional:"true"`
}

// requireModule fails the app if Module is missing: the providers would
// otherwise go unmanaged, in silence.
func (d *decl) requireModule(p requireModuleParams) error {
	if p.Session == nil {
		return d.missingModule()
	}
	return nil
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
	if p, ok := ctor.(private); ok {
		ctor = p.ctor
	}
	if a, ok := ctor.(fx.Annotated); ok {
		ctor = a.Target
	}
	if target, _, ok := annotatedParts(ctor); ok {
		ctor = target
	}
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
