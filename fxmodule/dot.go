package fxmodule

import (
	"fmt"
	"strconv"
	"strings"
)

// graph is the constructor graph of an fx application, read from the DOT
// text that fx provides as [fx.DotGraph]. Keys are dig's: a type, with
// "[name=...]" for a named value or "[group=...]N" for a group member; a
// group as a whole is "[type=... group=...]".
//
// Reading DOT is the one way fx lets a module see the constructors it did
// not declare itself, which is where a dependency through a repository or a
// client in between is found. The format is dig's own (internal/dot), stable
// since dig 1.0; TestParseGraphReadsFxsDOT fails first if it changes.
type graph struct {
	names     []string            // by constructor: its function, package and name, as dig located it
	params    [][]string          // by constructor: the keys it consumes
	results   [][]string          // by constructor: the keys it produces
	producers map[string][]int    // by result key: the constructors producing it
	members   map[string][]string // by group key: the result keys in the group
}

func parseGraph(dot string) (*graph, error) {
	g := &graph{producers: make(map[string][]int), members: make(map[string][]string)}
	ctor := -1 // the cluster being read, or -1 outside one
	for line := range strings.Lines(dot) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "\tsubgraph cluster_"):
			n, err := strconv.Atoi(strings.TrimSuffix(line[len("\tsubgraph cluster_"):], " {"))
			if err != nil {
				return nil, fmt.Errorf("read constructor %q: %w", line, err)
			}
			ctor = n
			g.grow(n)
		case line == "\t}":
			ctor = -1
		case ctor >= 0 && strings.HasPrefix(line, "\t\tlabel = "):
			pkg, _, err := quoted(line[len("\t\tlabel = "):])
			if err != nil {
				return nil, fmt.Errorf("read constructor package %q: %w", line, err)
			}
			g.names[ctor] = pkg + "." + g.names[ctor]
		case ctor >= 0 && strings.HasPrefix(line, "\t\tconstructor_"):
			_, label, ok := strings.Cut(line, " label=")
			if !ok {
				return nil, fmt.Errorf("read constructor name %q", line)
			}
			name, _, err := quoted(label)
			if err != nil {
				return nil, fmt.Errorf("read constructor name %q: %w", line, err)
			}
			g.names[ctor] += name
		case ctor >= 0 && strings.HasPrefix(line, "\t\t\""):
			key, _, err := quoted(line[2:])
			if err != nil {
				return nil, fmt.Errorf("read constructor result %q: %w", line, err)
			}
			g.producers[key] = append(g.producers[key], ctor)
			g.results[ctor] = append(g.results[ctor], key)
		case strings.HasPrefix(line, "\tconstructor_"):
			// constructor_N -> "key" [ltail=cluster_N...];
			num, rest, ok := strings.Cut(line[len("\tconstructor_"):], " -> ")
			n, err := strconv.Atoi(num)
			if !ok || err != nil {
				return nil, fmt.Errorf("read constructor parameter %q", line)
			}
			key, _, err := quoted(rest)
			if err != nil {
				return nil, fmt.Errorf("read constructor parameter %q: %w", line, err)
			}
			g.grow(n)
			g.params[n] = append(g.params[n], key)
		case ctor < 0 && strings.HasPrefix(line, "\t\""):
			// A group's edge to one of its members: "[type=T group=g]" -> "T[group=g]0";
			// other quoted lines at this level only colour nodes.
			from, rest, err := quoted(line[1:])
			if err != nil {
				return nil, fmt.Errorf("read group %q: %w", line, err)
			}
			if rest, ok := strings.CutPrefix(rest, " -> "); ok {
				to, _, err := quoted(rest)
				if err != nil {
					return nil, fmt.Errorf("read group member %q: %w", line, err)
				}
				g.members[from] = append(g.members[from], to)
			}
		}
	}
	return g, nil
}

func (g *graph) grow(n int) {
	for len(g.params) <= n {
		g.names = append(g.names, "")
		g.params = append(g.params, nil)
		g.results = append(g.results, nil)
	}
}

// quoted reads the Go-quoted string at the start of s and returns it with
// what follows it.
func quoted(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err
}

// producersOf returns the constructors that produce key: for a group, the
// producers of all its members.
func (g *graph) producersOf(key string) []int {
	if members, ok := g.members[key]; ok {
		var out []int
		for _, m := range members {
			out = append(out, g.producers[m]...)
		}
		return out
	}
	return g.producers[key]
}
