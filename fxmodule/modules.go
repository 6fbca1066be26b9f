package fxmodule

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// fx tells a constructor nothing of the fx.Module it was declared in, yet
// two fx.Private providers of one id (one module factory used twice, say)
// need names in the registry that tell them apart. fx.Shutdowner, which
// every app's graph has, holds the app, whose tree of modules lists each
// module's constructors. The tree is read, by reflection, only when such
// ids meet; checkFx checks its shape on every app, so that a newer fx
// fails fx.New rather than losing the names in silence.

// moduleFields are the fields read on the way from fx.Shutdowner to each
// module's constructors, by the type that has them.
var moduleFields = []struct{ typ, field string }{
	{"shutdowner", "app"}, {"App", "root"},
	{"module", "name"}, {"module", "modules"}, {"module", "provides"},
	{"provide", "Target"},
}

// checkModuleTree reports what fx's app lacks of the shape modulesOf
// reads, given the app's fx.Shutdowner.
func checkModuleTree(shutdowner any) error {
	seen := map[string]reflect.Type{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != "go.uber.org/fx" || seen[t.Name()] != nil {
			return
		}
		seen[t.Name()] = t
		for _, f := range moduleFields {
			if f.typ == t.Name() {
				if sf, ok := t.FieldByName(f.field); ok {
					visit(sf.Type)
				}
			}
		}
	}
	visit(reflect.TypeOf(shutdowner))
	for _, f := range moduleFields {
		t := seen[f.typ]
		if t == nil {
			return fmt.Errorf("fx.Shutdowner does not lead to fx's %s", f.typ)
		}
		if _, ok := t.FieldByName(f.field); !ok {
			return fmt.Errorf("fx's %s has no field %s", f.typ, f.field)
		}
	}
	if k := seen["module"].Field(fieldIndex(seen["module"], "name")).Type.Kind(); k != reflect.String {
		return fmt.Errorf("fx's module name is a %v", k)
	}
	if k := seen["provide"].Field(fieldIndex(seen["provide"], "Target")).Type.Kind(); k != reflect.Interface {
		return fmt.Errorf("fx's provide Target is a %v", k)
	}
	return nil
}

func fieldIndex(t reflect.Type, name string) int {
	f, _ := t.FieldByName(name)
	return f.Index[0]
}

// modulesOf returns, by the identity of a declaration's anchor (see
// decl.anchor), the paths of the named fx.Modules that declare it, each
// outermost first.
func modulesOf(shutdowner any) map[uintptr][][]string {
	paths := map[uintptr][][]string{}
	app := reflect.ValueOf(shutdowner)
	for app.Kind() == reflect.Pointer || app.Kind() == reflect.Interface {
		app = app.Elem()
	}
	root := app.FieldByName("app").Elem().FieldByName("root")
	var walk func(m reflect.Value, path []string)
	walk = func(m reflect.Value, path []string) {
		if m.IsNil() {
			return
		}
		m = m.Elem()
		if name := m.FieldByName("name").String(); name != "" {
			path = append(path[:len(path):len(path)], name)
		}
		provides := m.FieldByName("provides")
		for i := range provides.Len() {
			if at, ok := anchorOf(provides.Index(i).FieldByName("Target")); ok {
				paths[at] = append(paths[at], path)
			}
		}
		children := m.FieldByName("modules")
		for i := range children.Len() {
			walk(children.Index(i), path)
		}
	}
	walk(root, nil)
	return paths
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

// nameApart renames the providers of one id, fx.Private in several
// modules, after the innermost modules that tell them apart: eu.db and
// us.db. Those that modules cannot tell apart (one Provide option given to
// two modules) keep id@2, id@3, … s.mu is held.
func (s *session) nameApart() {
	byOwnID := map[string][]*provider{}
	for _, sl := range s.slots {
		if !sl.dropped {
			byOwnID[sl.p.ID()] = append(byOwnID[sl.p.ID()], sl)
		}
	}
	var modules map[uintptr][][]string
	for id, slots := range byOwnID {
		if len(slots) < 2 {
			continue
		}
		if modules == nil {
			if checkModuleTree(s.shutdowner) != nil {
				return // readGraph failed fx.New already
			}
			modules = modulesOf(s.shutdowner)
		}
		paths := make([][]string, len(slots))
		for i, sl := range slots {
			if ps := modules[sl.d.anchor()]; len(ps) == 1 {
				paths[i] = ps[0]
			}
		}
		names := apart(id, paths)
		taken := map[string]bool{}
		for i, sl := range slots {
			name := names[i]
			for n := 2; taken[name]; n++ {
				name = id + "@" + strconv.Itoa(n)
			}
			taken[name] = true
			delete(s.byID, sl.id)
			sl.id = name
		}
		for _, sl := range slots {
			s.byID[sl.id] = sl
		}
	}
}

// apart names each of the providers of one id by the fewest innermost
// modules of its path that no other's path ends with: id itself for one
// with no path.
func apart(id string, paths [][]string) []string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = id
		for k := 1; k <= len(p); k++ {
			tail := p[len(p)-k:]
			names[i] = strings.Join(tail, ".") + "." + id
			unique := true
			for j, q := range paths {
				if j != i && len(q) >= k && slices.Equal(q[len(q)-k:], tail) {
					unique = false
				}
			}
			if unique {
				break
			}
		}
	}
	return names
}
