package fxmodule

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// discover finds each provider's dependencies and whether its stop hook
// must wait for its cleanup, and sets them on the slots.
//
// Two views are combined. The values a provider's constructor received
// are exact: a parameter, an fx.In field or a group member that is another
// provider's value is a dependency, by identity. fx's graph, read from the
// app's tree of modules (see readTree), is the view of the constructors
// and decorators in between (a repository built from a database provider,
// a decorator that wraps it with a cache), with exact types and fx's
// scopes. So:
//
//   - an edge found through the graph is certain, unless the provider's
//     constructor is one Provide option given to several modules, which
//     the graph cannot tell apart: then it is possible, kept unless it
//     would close a cycle, which a legal fx graph cannot have;
//   - a provider found by identity is a dependency even if the graph does
//     not show it;
//   - a provider built after the one that would depend on it is no input
//     of it: fx builds every input first (a soft group, or an optional
//     parameter, may name one it did not build for it);
//   - a provider held, a few levels down, by a value a constructor
//     received, or by a value that fx.Replace or a decorator gave in place
//     of the provider's own, is a possible dependency too: a value may
//     hold what no constructor's type shows;
//   - what a decorator of the provider's own value takes is a possible
//     dependency, even a provider built later: the decorator ran after.
func discover(slots []*provider, g *graph) error {
	// Each provider's constructors are found in fx's tree by their
	// anchors (see decl.anchor): its wrapper and, for an annotated one,
	// the identity exposing it. One Provide option used in several
	// modules has constructors that stand for any of its providers.
	byAnchor := make(map[uintptr]*decl, len(slots))
	slotsOf := make(map[*decl][]*provider, len(slots))
	for _, sl := range slots {
		d := sl.d
		if len(slotsOf[d]) == 0 {
			byAnchor[d.anchor()] = d
			if d.exposeAnns != nil {
				byAnchor[d.exposeAnchor()] = d
			}
		}
		slotsOf[d] = append(slotsOf[d], sl)
	}
	uses := make(map[*decl]int, len(slotsOf)) // the modules that give a declaration
	ctorOf := make(map[int][]*provider, len(slots))
	nodesOf := make(map[*provider][]int, len(slots))
	for c, at := range g.anchors {
		d := byAnchor[at]
		if at == 0 || d == nil {
			continue
		}
		if at == d.anchor() {
			uses[d]++
		}
		for _, sl := range slotsOf[d] {
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
		f := found{certain: map[*provider]bool{}, possible: map[key]map[*provider]bool{}, hooked: map[int]bool{}}
		for _, c := range nodes {
			g.walk(c, ctorOf, &f, uses[sl.d] > 1)
		}
		// A decorator of its value, which made what consumers receive and
		// the registry manages or configured it in place, may have given it
		// what it took: those are possible dependencies, even if the value
		// keeps them only in a closure, and even if fx built them after
		// the provider's constructor, since the decorator ran after. (A
		// consumer of the original may need the provider first: where the
		// two orders meet, the consumer's wins.)
		dec := found{certain: map[*provider]bool{}, possible: f.possible, hooked: f.hooked}
		for _, d := range g.decoratorsOf(nodes[0], sl.r.keys()) {
			g.walk(d, ctorOf, &dec, uses[sl.d] > 1)
		}
		sl.hooked = f.hooked
		for c := range beforeSession {
			// Built before the session, so stopped after its stop hook,
			// which waits for every cleanup: nothing to wait for here.
			delete(sl.hooked, c)
		}
		// Every input of a constructor was built before it: a provider
		// built later is no input, whatever the graph suggests (a soft
		// group, an optional parameter).
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
		// The parts its arguments hold, and those of a value that
		// replaced the provider's own, are possible dependencies. They
		// also decide, where they can, between the providers a reused
		// constructor may stand for.
		// What the arguments held is what they held when the constructor
		// received them (see session.build): a registry of its own that
		// providers add themselves to holds later ones by now, and those
		// it held then, fx built before, and stops after.
		h := slices.Clone(sl.heldThen)
		for q := range dec.certain {
			h = append(h, q)
		}
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
	// if it closes no cycle, with those the certain ones and
	// lifecycle.DependsOn make.
	byID := make(map[string]*provider, len(slots))
	for _, sl := range slots {
		byID[sl.id] = sl
	}
	edges := make(map[*provider][]*provider, len(slots))
	declared := make(map[*provider][]*provider, len(slots))
	for _, sl := range slots {
		for q := range certain[sl] {
			edges[sl] = append(edges[sl], q)
		}
		slices.SortFunc(edges[sl], func(a, b *provider) int { return order[a] - order[b] })
		for _, id := range lifecycle.DependsOnOf(sl.d.opts...) {
			if q := byID[id]; q != nil {
				declared[sl] = append(declared[sl], q)
			}
		}
	}
	// into: by provider, those with an edge to it, declared ones included.
	into := make(map[*provider][]*provider, len(slots))
	// Only an edge to a provider built later can close a cycle: along
	// edges that all lead to ones built earlier, none leads back. Until
	// there is one, no possible edge needs the walk that looks for it
	// (providers that register with a shared component may hold a
	// hundred each).
	backward := false
	for _, sl := range slots {
		for _, q := range append(slices.Clip(edges[sl]), declared[sl]...) {
			into[q] = append(into[q], sl)
			backward = backward || order[q] > order[sl]
		}
	}
	for _, sl := range slots {
		qs := make([]*provider, 0, len(possible[sl]))
		for q := range possible[sl] {
			qs = append(qs, q)
		}
		slices.SortFunc(qs, func(a, b *provider) int { return order[a] - order[b] })
		// The providers that lead to sl, found once for all of sl's
		// possible edges: an edge from sl adds none.
		var leadTo map[*provider]bool
		for _, q := range qs {
			backward = backward || order[q] > order[sl]
			if backward {
				if leadTo == nil {
					leadTo = leadingTo(into, sl)
				}
				if leadTo[q] {
					continue // sl → q would close a cycle
				}
			}
			if order[q] > order[sl] && len(q.hooked) > 0 {
				// A guess that a provider depends on one fx builds after
				// it, from components with hooks, would have fx stop those
				// components before that one's cleanup (see assignWaits):
				// a guess gives way, as it does to a cycle.
				continue
			}
			edges[sl] = append(edges[sl], q)
			into[q] = append(into[q], sl)
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

// leadingTo returns the providers from which to is reachable, to
// included, along the edges whose sources into lists by target.
func leadingTo(into map[*provider][]*provider, to *provider) map[*provider]bool {
	seen := map[*provider]bool{to: true}
	stack := []*provider{to}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, m := range into[n] {
			if !seen[m] {
				seen[m] = true
				stack = append(stack, m)
			}
		}
	}
	return seen
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
	heldDepth = 6
	heldNodes = 512
)

// held returns the providers that values hold, a few levels down through
// pointers, interfaces, struct fields (unexported ones too), slices and
// maps (their first 64 elements):
// the parts of a component that a decorator put together, or that
// registered with it, which fx's graph does not show. A provider held is
// not looked into (what it holds is its own dependency); one of vals (a
// constructor's arguments), or of inside, is.
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
				if depth > 1 {
					return
				}
				// An argument that is a provider is looked into as well:
				// a hub that is a provider holds those that registered
				// with it, which its consumer may use through it.
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
		case reflect.Map: // a registry by name
			it := v.MapRange()
			for n := 0; n < 64 && it.Next(); n++ {
				visit(it.Value(), depth+1)
			}
		}
	}
	for _, v := range vals {
		visit(v, 1)
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
	// possible holds, by the first key on the way that the graph cannot
	// resolve to one constructor, the providers found past it.
	possible map[key]map[*provider]bool
	hooked   map[int]bool // the plain constructors and decorators in between that take fx.Lifecycle
}

// Keys a walk never follows: the lifecycle every hooked constructor takes,
// and the session every provider wrapper takes.
var (
	lifecycleKey = key{t: lifecycleType}
	skipKeys     = map[key]bool{lifecycleKey: true, {t: sessionType}: true}
)

// walk follows the constructors and decorators that c's parameters need,
// through plain ones, stopping at provider constructors (ctorOf), and adds
// what it finds to f. reused: c is one of several constructors of one
// Provide option, so what it finds may belong to another of them.
func (g *graph) walk(c int, ctorOf map[int][]*provider, f *found, reused bool) {
	type item struct {
		node      int
		uncertain bool // a key on the way resolved to several constructors, or reused
		via       key  // the first such key
	}
	seen := map[int]bool{c: true}
	queue := []item{{node: c}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		for _, k := range g.params[it.node] {
			if skipKeys[k] || it.node == c && g.soft[c][k] {
				// A soft group holds only the members fx built for
				// others: the values received say which.
				continue
			}
			nodes, ambiguous := g.resolve(it.node, k)
			next := it
			if !next.uncertain && (ambiguous || reused) {
				next.uncertain, next.via = true, k
			}
			for _, p := range nodes {
				if sls := ctorOf[p]; len(sls) > 0 {
					for _, sl := range givenAs(sls, k) {
						if !next.uncertain && len(sls) == 1 {
							f.certain[sl] = true
							continue
						}
						via := next.via
						if !next.uncertain {
							via = k
						}
						if f.possible[via] == nil {
							f.possible[via] = map[*provider]bool{}
						}
						f.possible[via][sl] = true
					}
					continue
				}
				if seen[p] {
					continue
				}
				seen[p] = true
				if slices.Contains(g.params[p], lifecycleKey) {
					f.hooked[p] = true
				}
				next.node = p
				queue = append(queue, next)
			}
		}
	}
}

// givenAs returns those of one constructor's providers that consumers ask
// for as k, or all of them if none is (k names another of its results, or
// a raw value an identity exposes).
func givenAs(sls []*provider, k key) []*provider {
	if len(sls) == 1 {
		return sls
	}
	var out []*provider
	for _, sl := range sls {
		if slices.Contains(sl.r.keys(), k) {
			out = append(out, sl)
		}
	}
	if len(out) == 0 {
		return sls
	}
	return out
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
