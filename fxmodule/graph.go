package fxmodule

import (
	"reflect"
	"slices"
)

// graph is the constructor graph of an fx application, read from its tree
// of modules (see readTree). Keys are exact: a type, as reflect knows it,
// with a name or a group, so that two types that print alike are never
// taken for one another. Each constructor and decorator is a node, placed
// in its module, and a consumer sees the producers that dig lets it see:
// those exported, and the private ones of its module and of the modules
// around it.
type graph struct {
	names     []string       // by node: its function, as runtime.FuncForPC names it
	params    [][]key        // by node: the keys it consumes
	soft      []map[key]bool // by node: the soft value groups among them
	results   [][]key        // by node: the keys it produces, or decorates
	anchors   []uintptr      // by node: the anchor of fx.Annotate's result, if it is one (see decl.anchor)
	module    []int          // by node: its module
	private   []bool         // by node: given with fx.Private
	parent    []int          // by module: the module around it, -1 for the app's
	modName   []string       // by module: its fx.Module's name, "" for the app's
	decor     []bool         // by node: a decorator, fx.Decorate's or fx.Replace's
	producers map[key][]int  // by key: the constructors producing it
	decors    map[key][]int  // by key: the decorators of it
}

// key is what a constructor consumes or produces: a type with a name, or a
// member of a value group.
type key struct {
	t     reflect.Type
	name  string
	group string
}

func (k key) isGroup() bool { return k.group != "" }

// path returns the names of the fx.Modules from the app's to module m,
// outermost first.
func (g *graph) path(m int) []string {
	var names []string
	for ; m >= 0; m = g.parent[m] {
		if g.modName[m] != "" {
			names = append(names, g.modName[m])
		}
	}
	slices.Reverse(names)
	return names
}

// within reports whether module m is module outer or inside it.
func (g *graph) within(m, outer int) bool {
	for ; m >= 0; m = g.parent[m] {
		if m == outer {
			return true
		}
	}
	return false
}

// resolve returns the nodes that give consumer c the value of k: the
// producers c sees (every member it sees, for a group) and the decorators
// of k in c's module and those around it. A decorator that does not take
// k replaces it: its producers are then not needed. ambiguous: several
// constructors give one single value, which dig would not allow in one
// scope.
func (g *graph) resolve(c int, k key) (nodes []int, ambiguous bool) {
	replaced := false
	for _, d := range g.decors[k] {
		if g.within(g.module[c], g.module[d]) {
			nodes = append(nodes, d)
			replaced = replaced || !slices.Contains(g.params[d], k)
		}
	}
	if replaced {
		return nodes, false
	}
	var seen []int
	for _, p := range g.producers[k] {
		if !g.private[p] || g.within(g.module[c], g.module[p]) {
			seen = append(seen, p)
		}
	}
	if !k.isGroup() {
		seen = g.innermost(c, seen)
	}
	return append(nodes, seen...), len(seen) > 1 && !k.isGroup()
}

// decoratorsOf returns the decorators of keys that node c's module sees:
// those of its module and of the modules around it.
func (g *graph) decoratorsOf(c int, keys []key) []int {
	var out []int
	for _, k := range keys {
		for _, d := range g.decors[k] {
			if g.within(g.module[c], g.module[d]) && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// innermost returns, of the producers of one value that consumer c sees,
// those fx gives it: a private one of c's module, or of the nearest module
// around it that has one, hides the others, as a value of a dig scope
// hides its parent's; with none, the exported ones.
func (g *graph) innermost(c int, producers []int) []int {
	for m := g.module[c]; m >= 0; m = g.parent[m] {
		var own []int
		for _, p := range producers {
			if g.private[p] && g.module[p] == m {
				own = append(own, p)
			}
		}
		if len(own) > 0 {
			return own
		}
	}
	return slices.DeleteFunc(producers, func(p int) bool { return g.private[p] })
}

// builtFor returns the nodes that the constructor named name needs,
// directly or through others: fx builds them before it.
func (g *graph) builtFor(name string) map[int]bool {
	out := map[int]bool{}
	var queue []int
	for c, n := range g.names {
		if n == name && !g.decor[c] {
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, k := range g.params[c] {
			ps, _ := g.resolve(c, k)
			for _, p := range ps {
				if !out[p] {
					out[p] = true
					queue = append(queue, p)
				}
			}
		}
	}
	return out
}

// add adds a node of module m that consumes params and produces results.
func (g *graph) add(name string, anchor uintptr, m int, private, decorator bool, params []key, soft map[key]bool, results []key) {
	n := len(g.names)
	g.names = append(g.names, name)
	g.params = append(g.params, params)
	g.soft = append(g.soft, soft)
	g.results = append(g.results, results)
	g.anchors = append(g.anchors, anchor)
	g.module = append(g.module, m)
	g.private = append(g.private, private)
	g.decor = append(g.decor, decorator)
	index := g.producers
	if decorator {
		index = g.decors
	}
	for _, k := range results {
		if !slices.Contains(index[k], n) {
			index[k] = append(index[k], n)
		}
	}
}
