package fxmodule

import (
	"reflect"
	"runtime"
	"strings"

	"go.uber.org/fx"
)

// What a constructor or a decorator given to fx consumes and produces, read
// from its function's type as dig reads it: parameters, and the fields of
// fx.In structs; results, and the fields of fx.Out structs.

// target is a constructor or decorator as fx holds it: the function dig is
// given, and what fx gives dig besides.
type target struct {
	fn     reflect.Value
	name   string  // the function fx names, as runtime.FuncForPC names it
	tag    key     // fx.Annotated's Name or Group, on every plain result
	flat   bool    // fx.Annotated's Group is flattened
	anchor uintptr // fx.Annotate's result's (see anchorOf)
	// paramTags: fx.ParamTags's tags on fn's parameters, when they are
	// fx.Annotate's one annotation (see buildAnnotated).
	paramTags []string
}

// targetOf reads what fx.Provide, fx.Supply, fx.Decorate or fx.Replace
// gave fx: a function, an fx.Annotated, or fx.Annotate's result, whose
// function with fx.In and fx.Out structs fx builds as it does itself.
func targetOf(t any) (target, bool) {
	var out target
	if a, ok := t.(fx.Annotated); ok {
		g, opts, _ := strings.Cut(a.Group, ",")
		out.tag = key{name: a.Name, group: g}
		out.flat = opts == "flatten"
		t = a.Target
	}
	v := reflect.ValueOf(t)
	if at, ok := anchorOf(v); ok {
		out.anchor = at
		out.name = funcName(uintptr(v.FieldByName(funcPtrField).Uint()))
		built, tags, ok := buildAnnotated(v)
		if !ok {
			return out, false
		}
		v, out.paramTags = built, tags
	}
	if !v.IsValid() || v.Kind() != reflect.Func || v.IsNil() {
		return out, false
	}
	if out.name == "" {
		out.name = funcName(v.Pointer())
	}
	out.fn = v
	return out, true
}

// anchorOf returns the anchor of a constructor given to fx.Provide, if it
// is the result of fx.Annotate.
func anchorOf(target reflect.Value) (uintptr, bool) {
	if target.Kind() == reflect.Interface {
		target = target.Elem()
	}
	if target.Kind() != reflect.Struct || target.Type().PkgPath() != "go.uber.org/fx" || target.Type().Name() != "annotated" {
		return 0, false
	}
	anns := target.FieldByName("Annotations")
	if anns.Kind() != reflect.Slice || anns.Cap() == 0 {
		return 0, false
	}
	return anns.Pointer(), true
}

// buildAnnotated returns the function fx gives dig for fx.Annotate's
// result: fx.annotated's Build, called on a copy, as fx calls it. Build
// makes a dig container each time: a function annotated with fx.ParamTags
// alone (a provider's wrapper, most often) is read as it is, with the
// tags that Build would put on its parameters.
func buildAnnotated(a reflect.Value) (fn reflect.Value, tags []string, ok bool) {
	target := a.FieldByName("Target").Elem()
	anns := a.FieldByName("Annotations")
	if anns.Len() == 0 {
		return target, nil, true
	}
	if anns.Len() == 1 && target.Kind() == reflect.Func && !target.Type().IsVariadic() {
		if ann, ok := anns.Index(0).Interface().(fx.Annotation); ok {
			if tags, ok := paramTags(ann); ok {
				return target, tags, true
			}
		}
	}
	c := reflect.New(a.Type())
	c.Elem().Set(a)
	build := c.MethodByName("Build")
	if !build.IsValid() || build.Type() != buildType {
		return reflect.Value{}, nil, false
	}
	res := build.Call(nil)
	if !res[1].IsNil() {
		return reflect.Value{}, nil, false // fx.New failed already, saying why
	}
	return res[0].Elem(), nil, true
}

// buildType is the type of fx.annotated's Build method.
var buildType = reflect.TypeFor[func() (any, error)]()

func funcName(pc uintptr) string {
	if f := runtime.FuncForPC(pc); f != nil {
		return f.Name()
	}
	return ""
}

// params returns the keys a function consumes, and the soft value groups
// among them. fx leaves a variadic parameter empty.
func (t target) params() ([]key, map[key]bool) {
	ft := t.fn.Type()
	n := ft.NumIn()
	if ft.IsVariadic() {
		n--
	}
	types := make([]reflect.Type, n)
	for i := range n {
		types[i] = ft.In(i)
	}
	return paramKeys(types, t.paramTags)
}

// paramKeys returns the keys that parameters of types consume, each
// tagged as fx.ParamTags would tag it (tags may be shorter than types), and
// the soft value groups among them.
func paramKeys(types []reflect.Type, tags []string) ([]key, map[key]bool) {
	var (
		keys []key
		soft map[key]bool
	)
	tagged := func(typ reflect.Type, tag reflect.StructTag) {
		g, opts, _ := strings.Cut(tag.Get("group"), ",")
		if g == "" {
			keys = append(keys, key{t: typ, name: tag.Get("name")})
			return
		}
		k := key{t: typ.Elem(), group: g}
		keys = append(keys, k)
		if opts == "soft" {
			if soft == nil {
				soft = map[key]bool{}
			}
			soft[k] = true
		}
	}
	var in func(typ reflect.Type)
	in = func(typ reflect.Type) {
		for f := range typ.Fields() {
			switch {
			case f.Type == inType:
			case isInStruct(f.Type):
				in(f.Type)
			case !f.IsExported():
			default:
				tagged(f.Type, f.Tag)
			}
		}
	}
	for i, typ := range types {
		switch {
		case isInStruct(typ):
			in(typ)
		case i < len(tags):
			tagged(typ, reflect.StructTag(tags[i]))
		default:
			keys = append(keys, key{t: typ})
		}
	}
	return keys, soft
}

// results returns the keys a function produces. A decorator's group field
// is the whole group, decorated.
func (t target) results(decorator bool) []key {
	var keys []key
	var out func(typ reflect.Type)
	out = func(typ reflect.Type) {
		for f := range typ.Fields() {
			switch {
			case f.Type == outType:
			case isOutStruct(f.Type):
				out(f.Type)
			case !f.IsExported():
			default:
				g, opts, _ := strings.Cut(f.Tag.Get("group"), ",")
				if g == "" {
					keys = append(keys, key{t: f.Type, name: f.Tag.Get("name")})
					continue
				}
				typ := f.Type
				if decorator || strings.Contains(opts, "flatten") {
					typ = typ.Elem()
				}
				keys = append(keys, key{t: typ, group: g})
			}
		}
	}
	ft := t.fn.Type()
	for i := range ft.NumOut() {
		typ := ft.Out(i)
		switch {
		case typ == errorType:
		case isOutStruct(typ):
			out(typ)
		default:
			k := t.tag
			k.t = typ
			if t.flat && typ.Kind() == reflect.Slice {
				k.t = typ.Elem()
			}
			keys = append(keys, k)
		}
	}
	return keys
}

func isInStruct(t reflect.Type) bool { return t.Kind() == reflect.Struct && embedsIn(t) }
