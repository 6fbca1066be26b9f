package fxmodule

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// exposure is one way fx gives a constructor's result to consumers: as a
// type (its own, or fx.As's), with a name or group tag.
type exposure struct {
	typ reflect.Type
	tag string
}

// result is one provider among a constructor's results: where the
// wrapper finds it, and how consumers ask for it.
type result struct {
	d     *decl
	out   int          // which of the constructor's results
	field []int        // the field of an fx.Out result (reflect's index path), or nil
	typ   reflect.Type // its type, as the constructor gives it
	// maybe: typ is an interface that does not name ID(); the value
	// fx gives may still be a provider, which is managed.
	maybe bool
	// How consumers ask for it: a type and a name or group tag.
	askType reflect.Type
	askTag  string
}

// findResults finds the providers among d's results, as fx.Provide would
// expose them: a result, or a field of an fx.Out result, whose type
// implements lifecycle.Provider, or is an interface whose value may (see
// result.maybe). It notes how fx.Annotate's results expose each result:
// exposedTypes (one list per fx.As) and exposedTags (fx.ResultTags), by
// result.
func (d *decl) findResults(exposedTypes [][]reflect.Type, exposedTags []string) error {
	if d.tag != "" && len(d.outs) != 1 {
		return errors.New("fx.Annotated with a Name or a Group takes a constructor with one result")
	}
	d.exposures = make([][]exposure, len(d.outs))
	for i, t := range d.outs {
		tag := d.tag
		if i < len(exposedTags) {
			tag = exposedTags[i]
		}
		if len(exposedTypes) == 0 {
			d.exposures[i] = []exposure{{t, tag}}
		}
		for _, as := range exposedTypes {
			e := exposure{t, tag}
			if i < len(as) && as[i] != nil {
				if !t.AssignableTo(as[i]) {
					return fmt.Errorf("invalid fx.As: %v does not implement %v", t, as[i])
				}
				e.typ = as[i]
			}
			d.exposures[i] = append(d.exposures[i], e)
		}
		if isOutStruct(t) {
			if len(d.resultAnns) > 0 {
				return fmt.Errorf("fx.Annotate's result annotations apply to results, not to the fields of %v: tag the fields", t)
			}
			d.outFields(i, t, nil)
			continue
		}
		maybe := t.Kind() == reflect.Interface && !t.Implements(providerType)
		if !t.Implements(providerType) && !maybe {
			continue
		}
		// Consumers ask for it as its first exposure gives it.
		e := d.exposures[i][0]
		d.results = append(d.results, &result{d: d, out: i, typ: t, askType: e.typ, askTag: askable(e.tag), maybe: maybe})
	}
	if len(d.results) == 0 {
		return fmt.Errorf("no result of %v implements lifecycle.Provider (it needs an ID() string method)", d.fnType)
	}
	return nil
}

// outFields adds the providers among the fields of t, an fx.Out struct
// that is result i, and of the fx.Out structs it embeds.
func (d *decl) outFields(i int, t reflect.Type, at []int) {
	for f := range t.Fields() {
		if !f.IsExported() || f.Type == outType {
			continue
		}
		index := append(append([]int(nil), at...), f.Index...)
		if f.Anonymous && isOutStruct(f.Type) {
			d.outFields(i, f.Type, index)
			continue
		}
		maybe := f.Type.Kind() == reflect.Interface && !f.Type.Implements(providerType)
		if f.Type.Implements(providerType) || maybe {
			d.results = append(d.results, &result{d: d, out: i, field: index, typ: f.Type, askType: f.Type, askTag: askable(string(f.Tag)), maybe: maybe})
		}
	}
}

// askable keeps, of a result's tag, what a consumer asks with: its name or
// its group, without a group's options.
func askable(tag string) string {
	st := reflect.StructTag(tag)
	if g := st.Get("group"); g != "" {
		g, _, _ = strings.Cut(g, ",")
		return `group:"` + g + `"`
	}
	if n := st.Get("name"); n != "" {
		return `name:"` + n + `"`
	}
	return ""
}

// value returns r's value among the constructor's results.
func (r *result) value(outs []reflect.Value) reflect.Value {
	v := outs[r.out]
	if r.field != nil {
		v = v.FieldByIndex(r.field)
	}
	return v
}

// grouped reports whether consumers receive r as a member of a group:
// no one asks for it alone.
func (r *result) grouped() bool { return isGroup(r.askTag) }

// keys are the keys in fx's graph under which consumers receive r: one
// for each exposure of its result, or its field's own.
func (r *result) keys() []key {
	if r.field != nil {
		return []key{tagged(r.typ, r.askTag)}
	}
	var out []key
	for _, e := range r.d.exposures[r.out] {
		out = append(out, tagged(e.typ, askable(e.tag)))
	}
	return out
}

// tagged is the key of a value of type t with a name or group tag.
func tagged(t reflect.Type, tag string) key {
	st := reflect.StructTag(tag)
	return key{t: t, name: st.Get("name"), group: st.Get("group")}
}
