package fxmodule

import (
	"reflect"
	"unsafe"
)

// readTree reads the constructor graph of an app from its tree of modules,
// reached from its fx.Shutdowner (see moduleFields, which checkFx checks):
// each module's constructors (fx.Provide, fx.Supply) with fx.Private, and
// its decorators (fx.Decorate, fx.Replace). fx tells a module no more of
// the constructors it did not declare itself; the types they consume and
// produce are read from their functions, as dig reads them.
func readTree(shutdowner any) *graph {
	g := &graph{producers: map[key][]int{}, decors: map[key][]int{}}
	var walk func(m reflect.Value, parent int)
	walk = func(m reflect.Value, parent int) {
		if m.IsNil() {
			return
		}
		m = m.Elem()
		id := len(g.parent)
		g.parent = append(g.parent, parent)
		g.modName = append(g.modName, m.FieldByName("name").String())
		provides := m.FieldByName("provides")
		for i := range provides.Len() {
			p := provides.Index(i)
			g.addTarget(p.FieldByName("Target"), id, p.FieldByName("Private").Bool(), false)
		}
		decorators := m.FieldByName("decorators")
		for i := range decorators.Len() {
			g.addTarget(decorators.Index(i).FieldByName("Target"), id, false, true)
		}
		children := m.FieldByName("modules")
		for i := range children.Len() {
			walk(children.Index(i), id)
		}
	}
	walk(appOf(shutdowner).FieldByName("root"), -1)
	return g
}

// appOf returns the fx.App that an app's fx.Shutdowner holds.
func appOf(shutdowner any) reflect.Value {
	v := reflect.ValueOf(shutdowner)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	return v.FieldByName("app").Elem()
}

// addTarget adds a constructor or decorator of module m, as fx holds it
// (a field of type any, read without its unexported mark).
func (g *graph) addTarget(field reflect.Value, m int, private, decorator bool) {
	t, ok := targetOf(exposed(field).Interface())
	if !ok {
		return // fx.New failed already, saying why
	}
	params, soft := t.params()
	g.add(t.name, t.anchor, m, private, decorator, params, soft, t.results(decorator))
}

// exposed returns v, a field of an unexported fx type, as a value whose
// contents can be read by interface and whose methods can be called:
// reflect allows neither on a value reached through unexported fields.
// It is only read (see buildAnnotated, which builds a copy).
func exposed(v reflect.Value) reflect.Value {
	if v.CanInterface() {
		return v
	}
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}
