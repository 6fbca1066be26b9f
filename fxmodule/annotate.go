package fxmodule

import (
	"fmt"
	"reflect"
	"strings"

	"go.uber.org/fx"
)

// fx.Annotate returns a value of an unexported type whose exported fields
// hold the function and its annotations. Provide splits them: annotations
// of parameters go on the wrapper that calls the function, annotations of
// results on the identity that exposes its value. The fields are read by
// reflection; TestProvideTakesFxAnnotate fails if fx changes them.

const (
	paramSide = iota
	resultSide
)

// annotatedParts returns the function and the annotations of a value made
// by fx.Annotate.
func annotatedParts(v any) (target any, anns []fx.Annotation, ok bool) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Struct || rv.Type().PkgPath() != "go.uber.org/fx" || rv.Type().Name() != "annotated" {
		return nil, nil, false
	}
	t, a := rv.FieldByName("Target"), rv.FieldByName("Annotations")
	if !t.IsValid() || !a.IsValid() || !t.CanInterface() || !a.CanInterface() {
		return nil, nil, false
	}
	anns, ok = a.Interface().([]fx.Annotation)
	return t.Interface(), anns, ok
}

// annotationSide tells which of the two an annotation belongs on.
func annotationSide(a fx.Annotation) (int, error) {
	name := strings.TrimPrefix(reflect.TypeOf(a).String(), "*")
	switch name {
	case "fx.paramTagsAnnotation", "fx.fromAnnotation":
		return paramSide, nil
	case "fx.resultTagsAnnotation", "fx.asAnnotation", "fx.lifecycleHookAnnotation":
		return resultSide, nil
	}
	return 0, fmt.Errorf("fx.Annotate with %s is not supported on a provider", name)
}

// paramTags returns the tags of an fx.ParamTags annotation, so that Provide
// can add its own for the session after the user's.
func paramTags(a fx.Annotation) ([]string, bool) { return tagsOf(a, "fx.paramTagsAnnotation") }

// resultTags returns the tags an fx.ResultTags annotation gives the
// results, in order.
func resultTags(a fx.Annotation) ([]string, bool) { return tagsOf(a, "fx.resultTagsAnnotation") }

// tagsOf returns the tags field of a, an annotation of the named type.
func tagsOf(a fx.Annotation, typeName string) ([]string, bool) {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Struct || v.Type().String() != typeName {
		return nil, false
	}
	f := v.FieldByName("tags")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.String {
		return nil, false
	}
	tags := make([]string, f.Len())
	for i := range tags {
		tags[i] = f.Index(i).String()
	}
	return tags, true
}

// asTypes returns the types an fx.As annotation exposes the results as,
// in order; nil for fx.Self, which keeps a result's own type.
func asTypes(a fx.Annotation) ([]reflect.Type, bool) {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.Type().String() != "*fx.asAnnotation" || v.IsNil() {
		return nil, false
	}
	f := v.Elem().FieldByName("targets")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil, false
	}
	types := make([]reflect.Type, f.Len())
	for i := range types {
		t := f.Index(i)
		if t.Kind() == reflect.Interface {
			t = t.Elem()
		}
		if !t.IsValid() || t.Kind() != reflect.Pointer {
			return nil, false
		}
		if t.Type().String() != "*fx.self" {
			types[i] = t.Type().Elem()
		}
	}
	return types, true
}
