package fxmodule

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
)

// discover finds each provider's dependencies and whether its stop hook
// must wait for its cleanup, and sets them on the slots.
//
// Two views are combined. The values a provider's constructor received
// are exact: a parameter, an fx.In field or a group member that is another
// provider's value is a dependency, by identity, whatever the types are
// called and whichever module provided them. fx's graph (fx.DotGraph) is
// the only view of the constructors in between (a repository built from
// a database provider, say), and it names types by their printed names,
// which two packages, or two modules' private providers, may share. So:
//
//   - an edge found through a type name that one constructor alone
//     produces is certain;
//   - one found through a name that several produce is possible: it is
//     kept, ordering two providers that may need no order, unless it would
//     close a cycle, which a legal fx graph cannot have;
//   - a provider found by identity is a dependency even if the graph does
//     not show it (a decorator may have handed it over);
//   - a provider built after the one that would depend on it is no input
//     of it, whatever the names say: fx builds every input first;
//   - fx's graph does not show decorators: a provider held, a few levels
//     down, by a value a constructor received (a repository that a
//     decorator wrapped with a cache provider, say) is a possible
//     dependency too.
func discover(slots []*provider, dot string) error {
	g, err := parseGraph(dot)
	if err != nil {
		return fmt.Errorf("fxmodule: read fx's graph: %w", err)
	}
	// Each provider's constructors are listed under the user's function
	// (see decl.locate): its wrapper, its entry in the registry's group
	// and, for an annotated one, the identity exposing it. One function
	// given to Provide in several modules, or one Provide option used in
	// several, has constructors that stand for any of its providers.
	byName := make(map[string][]*provider, len(slots))
	for _, sl := range slots {
		if !slices.Contains(byName[sl.d.name], sl) {
			byName[sl.d.name] = append(byName[sl.d.name], sl)
		}
	}
	ctorOf := make(map[int][]*provider, len(slots))
	nodesOf := make(map[*provider][]int, len(slots))
	for c, name := range g.names {
		for _, sl := range byName[name] {
			ctorOf[c] = append(ctorOf[c], sl)
			nodesOf[sl] = append(nodesOf[sl], c)
		}
	}
	byValue := make(map[valueKey]*provider, len(slots))
	for _, sl := range slots {
		if k, ok := keyOf(sl.raw); ok {
			byValue[k] = sl
		}
		if k, ok := keyOf(reflect.ValueOf(sl.p)); ok {
			byValue[k] = sl
		}
	}

	beforeSession := g.builtFor(sessionCtorName())
	order := make(map[*provider]int, len(slots))
	for i, sl := range slots {
		order[sl] = i
	}
	certain := make(map[*provider]map[*provider]bool, len(slots))
	possible := make(map[*provider]map[*provider]bool, len(slots))
	for _, sl := range slots {
		nodes := nodesOf[sl]
		if len(nodes) == 0 {
			return fmt.Errorf("fxmodule: provider %q: its constructor %s is not in fx's graph", sl.id, sl.d.where())
		}
		f := found{certain: map[*provider]bool{}, possible: map[string]map[*provider]bool{}, hooked: map[int]bool{}}
		for _, c := range nodes {
			g.walk(c, ctorOf, &f, len(byName[sl.d.name]) > 1, sl.d.softGroups)
		}
		sl.hooked = f.hooked
		for c := range beforeSession {
			// Built before the session, so stopped after its stop hook,
			// which waits for every cleanup: nothing to wait for here.
			delete(sl.hooked, c)
		}
		// Every input of a constructor was built before it: a provider
		// built later is no input, whatever the graph's names suggest (a
		// soft group, an optional parameter, a name several types print).
		// Values are another matter: a value fx.Replace gave, or one a
		// decorator put together, may hold a provider built later.
		earlier := func(q *provider) bool { return order[q] < order[sl] }
		certain[sl], possible[sl] = map[*provider]bool{}, map[*provider]bool{}
		for q := range f.certain {
			if earlier(q) {
				certain[sl][q] = true
			}
		}
		// The values a constructor received are exact, and win: a
		// decorator may hand it a provider the graph does not show.
		for _, q := range identities(sl.args, byValue) {
			certain[sl][q] = true
		}
		// What a decorator put together is not in the graph: the parts
		// its arguments hold, and those of a value that replaced the
		// provider's own, are possible dependencies. They also decide,
		// where they can, between the providers an ambiguous name may
		// stand for.
		// What the arguments held is what they held when the constructor
		// received them (see session.build): a registry of its own that
		// providers add themselves to holds later ones by now.
		h := slices.Clone(sl.heldThen)
		if sl.replaced {
			h = append(h, held(nil, []reflect.Value{reflect.ValueOf(sl.p)}, byValue)...)
		}
		for _, q := range h {
			possible[sl][q] = true
		}
		for _, group := range f.possible {
			confirmed := false
			for q := range group {
				if slices.Contains(h, q) || certain[sl][q] {
					confirmed = true
				}
			}
			if confirmed {
				continue // the values name which: the others are not
			}
			for q := range group {
				if earlier(q) {
					possible[sl][q] = true
				}
			}
		}
		delete(certain[sl], sl)
		delete(possible[sl], sl)
		for q := range certain[sl] {
			delete(possible[sl], q)
		}
	}

	// Certain edges first, then possible ones in a fixed order, each only
	// if it closes no cycle.
	edges := make(map[*provider][]*provider, len(slots))
	for _, sl := range slots {
		for q := range certain[sl] {
			edges[sl] = append(edges[sl], q)
		}
		slices.SortFunc(edges[sl], func(a, b *provider) int { return order[a] - order[b] })
	}
	for _, sl := range slots {
		qs := make([]*provider, 0, len(possible[sl]))
		for q := range possible[sl] {
			qs = append(qs, q)
		}
		slices.SortFunc(qs, func(a, b *provider) int { return order[a] - order[b] })
		for _, q := range qs {
			if !reaches(edges, q, sl) {
				edges[sl] = append(edges[sl], q)
			}
		}
	}
	for _, sl := range slots {
		sl.deps = sl.deps[:0]
		for _, q := range edges[sl] {
			sl.deps = append(sl.deps, q.id)
		}
	}
	return nil
}

// reaches reports whether to is reachable from from along edges.
func reaches(edges map[*provider][]*provider, from, to *provider) bool {
	seen := map[*provider]bool{}
	stack := []*provider{from}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == to {
			return true
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, edges[n]...)
	}
	return false
}

// valueKey identifies a value by its dynamic type and address.
type valueKey struct {
	t   reflect.Type
	ptr uintptr
}

func keyOf(v reflect.Value) (valueKey, bool) {
	for v.IsValid() && v.Kind() == reflect.Interface {
		if v.IsNil() {
			return valueKey{}, false
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return valueKey{}, false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.UnsafePointer:
		if v.IsNil() {
			return valueKey{}, false
		}
		return valueKey{v.Type(), v.Pointer()}, true
	}
	return valueKey{}, false
}

// identities returns the providers among a constructor's arguments: the
// arguments themselves, the fields of fx.In structs, and group members.
func identities(args []reflect.Value, byValue map[valueKey]*provider) []*provider {
	var out []*provider
	var visit func(v reflect.Value, depth int)
	visit = func(v reflect.Value, depth int) {
		if !v.IsValid() || depth > 4 {
			return
		}
		if k, ok := keyOf(v); ok {
			if sl := byValue[k]; sl != nil && !slices.Contains(out, sl) {
				out = append(out, sl)
			}
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			if !embedsIn(v.Type()) {
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					visit(v.Field(i), depth+1)
				}
			}
		case reflect.Slice: // a group
			for i := range min(v.Len(), 4096) {
				visit(v.Index(i), depth+1)
			}
		}
	}
	for _, a := range args {
		visit(a, 0)
	}
	return out
}

// Bounds of held's walk: a value graph may be large, and only the values
// near the top are a component's parts.
const (
	heldDepth = 4
	heldNodes = 512
)

// held returns the providers that values hold, a few levels down through
// pointers, interfaces, struct fields (unexported ones too) and slices:
// the parts of a component that a decorator put together, which fx's
// graph does not show. A value that is a provider is not looked into,
// except those in inside.
func held(vals, inside []reflect.Value, byValue map[valueKey]*provider) []*provider {
	var out []*provider
	seen := map[valueKey]bool{}
	nodes := 0
	var visit func(v reflect.Value, depth int)
	visit = func(v reflect.Value, depth int) {
		if !v.IsValid() || depth > heldDepth || nodes >= heldNodes {
			return
		}
		nodes++
		for v.Kind() == reflect.Interface {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if k, ok := keyOf(v); ok {
			if sl := byValue[k]; sl != nil && depth > 0 {
				if !slices.Contains(out, sl) {
					out = append(out, sl)
				}
				return
			}
			if seen[k] {
				return
			}
			seen[k] = true
		}
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				visit(v.Elem(), depth+1)
			}
		case reflect.Struct:
			for i := range v.NumField() {
				visit(v.Field(i), depth+1)
			}
		case reflect.Slice, reflect.Array:
			for i := range min(v.Len(), 64) {
				visit(v.Index(i), depth+1)
			}
		}
	}
	for _, v := range vals {
		visit(v, 1) // an argument that is a provider is found, not looked into
	}
	for _, v := range inside {
		visit(v, 0)
	}
	return out
}

func embedsIn(t reflect.Type) bool {
	for f := range t.Fields() {
		if f.Anonymous && f.Type == inType {
			return true
		}
	}
	return false
}

// found is what a walk of the graph from one provider's constructor found.
type found struct {
	certain map[*provider]bool
	// possible holds, by the first name on the way that several
	// constructors produce, the providers found past it.
	possible map[string]map[*provider]bool
	hooked   map[int]bool // the plain constructors in between that take fx.Lifecycle
}

// Keys a walk never follows: the lifecycle every hooked constructor takes,
// and the session every provider wrapper takes.
var skipKeys = map[string]bool{
	lifecycleType.String(): true,
	sessionType.String():   true,
}

// walk follows the constructors that c's parameters need, through plain
// constructors, stopping at provider constructors (ctorOf), and adds what
// it finds to f. reused: c is one of several constructors of one Provide
// option, so what it finds may belong to another of them.
func (g *graph) walk(c int, ctorOf map[int][]*provider, f *found, reused bool, soft map[string]bool) {
	type item struct {
		ctor  int
		group string // the first ambiguous name on the way, if any
	}
	seen := map[int]bool{c: true}
	queue := []item{{c, ""}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		for _, key := range g.params[it.ctor] {
			if skipKeys[key] || it.ctor == c && soft[key] {
				// A soft group holds only the members fx built for
				// others: the values received say which.
				continue
			}
			producers := g.producersOf(key)
			group := it.group
			if group == "" && (len(producers) > 1 || reused) {
				// Several constructors give this name, or this
				// constructor stands for several providers (one function
				// given to Provide in several modules): which provider it
				// leads to is possible, not certain.
				group = key
			}
			for _, p := range producers {
				if sls := ctorOf[p]; len(sls) > 0 {
					for _, sl := range sls {
						if group == "" && len(sls) == 1 {
							f.certain[sl] = true
							continue
						}
						k := group
						if k == "" {
							k = key
						}
						if f.possible[k] == nil {
							f.possible[k] = map[*provider]bool{}
						}
						f.possible[k][sl] = true
					}
					continue
				}
				if seen[p] {
					continue
				}
				seen[p] = true
				if slices.Contains(g.params[p], lifecycleType.String()) {
					f.hooked[p] = true
				}
				queue = append(queue, item{p, group})
			}
		}
	}
}

// sameValue reports whether a and b are one value: the same pointer, or
// equal comparable values.
func sameValue(a, b reflect.Value) bool {
	ka, okA := keyOf(a)
	kb, okB := keyOf(b)
	if okA || okB {
		return okA && okB && ka == kb
	}
	for a.IsValid() && a.Kind() == reflect.Interface {
		a = a.Elem()
	}
	for b.IsValid() && b.Kind() == reflect.Interface {
		b = b.Elem()
	}
	if !a.IsValid() || !b.IsValid() { // a nil interface is no provider
		return false
	}
	return a.Type() == b.Type() && a.Comparable() && b.Comparable() && a.Equal(b)
}

// sessionCtorName is how fx's graph names the session's constructor.
func sessionCtorName() string { return runtime.FuncForPC(reflect.ValueOf(newSession).Pointer()).Name() }

// builtFor returns the constructors that the constructor named name needs,
// directly or through others: fx builds them before it.
func (g *graph) builtFor(name string) map[int]bool {
	out := map[int]bool{}
	var queue []int
	for c, n := range g.names {
		if n == name {
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, key := range g.params[c] {
			for _, p := range g.producersOf(key) {
				if !out[p] {
					out[p] = true
					queue = append(queue, p)
				}
			}
		}
	}
	return out
}
