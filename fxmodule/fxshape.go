package fxmodule

import (
	"fmt"
	"reflect"

	"go.uber.org/fx"
)

// builtWith is the fx release this module was built and tested against.
// TestBuiltWithIsTheFxInGoMod keeps it in step with go.mod.
const builtWith = "go.uber.org/fx v1.24.0"

// funcPtrField is the field of fx.Annotate's result that fx hands to dig
// as the constructor's location (dig.LocationForPC).
const funcPtrField = "FuncPtr"

// checkFx reports whether the fx this program runs with has the shapes
// this module reads of it: Go's version selection may give a program a
// newer fx than builtWith, and a shape gone would otherwise lose locations
// or annotations in silence. annotate is fx.Annotate, or a stand-in in
// tests; shutdowner is the app's fx.Shutdowner, whose way to the app's
// modules readTree reads.
func checkFx(annotate func(any, ...fx.Annotation) any, shutdowner any) error {
	fail := func(what string) error {
		return fmt.Errorf("fxmodule: the go.uber.org/fx this program runs with is not the one fxmodule knows (it was built against %s): %s; "+
			"require %s in go.mod, or a fxmodule built for your fx", builtWith, what, builtWith)
	}
	a := reflect.ValueOf(annotate(func() int { return 0 }, fx.ParamTags(), fx.ResultTags(`name:"n"`), fx.As(fx.Self())))
	if a.Kind() != reflect.Struct || a.Type().PkgPath() != "go.uber.org/fx" || a.Type().Name() != "annotated" {
		return fail(fmt.Sprintf("fx.Annotate returns a %v, not fx.annotated", a.Type()))
	}
	for name, kind := range map[string]reflect.Kind{"Target": reflect.Interface, "Annotations": reflect.Slice, funcPtrField: reflect.Uintptr} {
		if f, ok := a.Type().FieldByName(name); !ok || f.Type.Kind() != kind || !f.IsExported() {
			return fail(fmt.Sprintf("fx.annotated has no exported %s field of kind %v", name, kind))
		}
	}
	if b := reflect.New(a.Type()).MethodByName("Build"); !b.IsValid() || b.Type() != buildType {
		return fail("fx.annotated has no Build method that gives dig its function")
	}
	target, anns, ok := annotatedParts(a.Interface())
	if !ok || target == nil || len(anns) != 3 {
		return fail("fx.annotated's Target and Annotations cannot be read")
	}
	if _, ok := paramTags(anns[0]); !ok {
		return fail(fmt.Sprintf("fx.ParamTags gives a %T whose tags cannot be read", anns[0]))
	}
	if tags, ok := resultTags(anns[1]); !ok || len(tags) != 1 || tags[0] != `name:"n"` {
		return fail(fmt.Sprintf("fx.ResultTags gives a %T whose tags cannot be read", anns[1]))
	}
	if ts, ok := asTypes(anns[2]); !ok || len(ts) != 1 || ts[0] != nil {
		return fail(fmt.Sprintf("fx.As gives a %T whose targets cannot be read", anns[2]))
	}
	for _, a := range anns {
		if _, err := annotationSide(a); err != nil {
			return fail(err.Error())
		}
	}
	if err := checkModuleTree(shutdowner); err != nil {
		return fail(err.Error())
	}
	return nil
}
