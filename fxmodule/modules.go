package fxmodule

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// fx tells a constructor nothing of the fx.Module it was declared in, nor
// a module of the constructors it did not declare itself. fx.Shutdowner,
// which every app's graph has, holds the app, whose tree of modules lists
// each module's constructors and decorators: it is read, by reflection,
// for the app's constructor graph (see readTree) and for the names of two
// fx.Private providers of one id (see nameApart). checkFx checks its shape
// on every app, so that a newer fx fails fx.New rather than losing
// dependencies or names in silence.

// field is a field of one of fx's types, and the kind it must be.
type field struct {
	typ, name string
	kind      reflect.Kind
}

// moduleFields are the fields read on the way from fx.Shutdowner to each
// module's constructors and decorators, by the type that has them.
var moduleFields = []field{
	{"shutdowner", "app", reflect.Pointer}, {"App", "root", reflect.Pointer},
	{"module", "name", reflect.String}, {"module", "modules", reflect.Slice},
	{"module", "provides", reflect.Slice}, {"module", "decorators", reflect.Slice},
	{"provide", "Target", reflect.Interface}, {"provide", "Private", reflect.Bool},
	{"decorator", "Target", reflect.Interface},
}

// checkModuleTree reports what fx's app lacks of the shape readTree
// reads, given the app's fx.Shutdowner.
func checkModuleTree(shutdowner any) error { return checkFields(shutdowner, moduleFields) }

// checkFields reports the first of fields that the types reached from
// shutdowner, through fields, lack.
func checkFields(shutdowner any, fields []field) error {
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
		for _, f := range fields {
			if f.typ == t.Name() {
				if sf, ok := t.FieldByName(f.name); ok {
					visit(sf.Type)
				}
			}
		}
	}
	visit(reflect.TypeOf(shutdowner))
	for _, f := range fields {
		t := seen[f.typ]
		if t == nil {
			return fmt.Errorf("fx.Shutdowner does not lead to fx's %s", f.typ)
		}
		sf, ok := t.FieldByName(f.name)
		if !ok {
			return fmt.Errorf("fx's %s has no field %s", f.typ, f.name)
		}
		if sf.Type.Kind() != f.kind {
			return fmt.Errorf("fx's %s %s is a %v, not a %v", f.typ, f.name, sf.Type.Kind(), f.kind)
		}
	}
	return nil
}

// nameApart renames the providers of one id, fx.Private in several
// modules, after the innermost modules that tell them apart: eu.db and
// us.db. Those that modules cannot tell apart (one Provide option given to
// two modules, or modules of one name at one depth) are numbered: db and
// db@2, or m.db and m.db@2; so is a name another provider's id takes.
// The names are given when ids meet: a private provider alone in its
// module keeps its id. It returns the names given, by the id they share.
// s.mu is held.
func (s *session) nameApart(g *graph) map[string][]string {
	named := map[string][]string{}
	byOwnID := map[string][]*provider{}
	for _, sl := range s.slots {
		if !sl.dropped {
			byOwnID[sl.p.ID()] = append(byOwnID[sl.p.ID()], sl)
		}
	}
	// In the order the first of each id was built, so that names do not
	// depend on a map's order from one run to the next.
	var ids []string
	for _, sl := range s.slots {
		if id := sl.p.ID(); !sl.dropped && len(byOwnID[id]) > 1 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return named
	}
	// The modules that declare each declaration, by its anchor.
	modules := map[uintptr][][]string{}
	for c, at := range g.anchors {
		if at != 0 {
			modules[at] = append(modules[at], g.path(g.module[c]))
		}
	}
	for _, id := range ids {
		slots := byOwnID[id]
		paths := make([][]string, len(slots))
		for i, sl := range slots {
			if ps := modules[sl.d.anchor()]; len(ps) == 1 {
				paths[i] = ps[0]
			}
		}
		// No name may be another provider's: the others' ids are taken.
		taken := map[string]bool{}
		for other, sl := range s.byID {
			if !slices.Contains(slots, sl) {
				taken[other] = true
			}
		}
		for i, name := range apart(id, paths) {
			for n, base := 2, name; taken[name]; n++ {
				name = base + "@" + strconv.Itoa(n)
			}
			taken[name] = true
			delete(s.byID, slots[i].id)
			slots[i].id = name
			named[id] = append(named[id], name)
		}
		for _, sl := range slots {
			s.byID[sl.id] = sl
		}
	}
	return named
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
