package main

import (
	"math/rand/v2"
	"time"
)

// graph is a dependency graph of n services. deps[i] lists the services i
// depends on: they are cleaned up only after i. Every dependency has a
// higher index than its dependent, so index order is a valid cleanup order.
type graph struct {
	name string
	deps [][]int
	dur  []time.Duration
	hang int // the index of a service whose cleanup never returns; -1 for none
}

func (g graph) n() int { return len(g.deps) }

func uniform(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func independent(name string, n int, d time.Duration) graph {
	return graph{name: name, deps: make([][]int, n), dur: uniform(n, d), hang: -1}
}

func chain(n int, d time.Duration) graph {
	g := graph{name: "chain of 10, 10 ms each", deps: make([][]int, n), dur: uniform(n, d), hang: -1}
	for i := 0; i < n-1; i++ {
		g.deps[i] = []int{i + 1}
	}
	return g
}

// diamond: the top depends on two, which both depend on the bottom.
func diamond(d time.Duration) graph {
	return graph{name: "diamond, 10 ms each", deps: [][]int{{1, 2}, {3}, {3}, nil}, dur: uniform(4, d), hang: -1}
}

// fan: one depends on 100, which all depend on one.
func fan(width int, d time.Duration) graph {
	n := width + 2
	g := graph{name: "fan 1 -> 100 -> 1, 10 ms each", deps: make([][]int, n), dur: uniform(n, d), hang: -1}
	for i := 1; i <= width; i++ {
		g.deps[0] = append(g.deps[0], i)
		g.deps[i] = []int{n - 1}
	}
	return g
}

// random is a seeded random DAG: each service depends on up to three of
// the next fifty, and its cleanup takes 0 to 20 ms.
func random(n int, seed uint64) graph {
	r := rand.New(rand.NewPCG(seed, seed))
	g := graph{name: "random DAG of 1,000, 0-20 ms", deps: make([][]int, n), dur: make([]time.Duration, n), hang: -1}
	for i := range n {
		g.dur[i] = time.Duration(r.IntN(21)) * time.Millisecond
		if i == n-1 {
			continue
		}
		for range r.IntN(4) {
			d := i + 1 + r.IntN(min(50, n-1-i))
			g.deps[i] = append(g.deps[i], d)
		}
	}
	return g
}

// criticalPath is the longest chain of the given durations along the
// dependencies.
func (g graph) criticalPath(took []time.Duration) time.Duration {
	longest := make([]time.Duration, g.n())
	var cp time.Duration
	for i := g.n() - 1; i >= 0; i-- {
		var after time.Duration
		for _, d := range g.deps[i] {
			after = max(after, longest[d])
		}
		longest[i] = took[i] + after
		cp = max(cp, longest[i])
	}
	return cp
}
