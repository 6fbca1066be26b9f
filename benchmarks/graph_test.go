package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

const ms = time.Millisecond

// The critical path is what every ratio in the table divides by: check it
// on graphs whose answer is known.
func TestCriticalPath(t *testing.T) {
	tests := []struct {
		g    graph
		want time.Duration
	}{
		{independent("independent", 100, 10*ms), 10 * ms},
		{chain(10, 10*ms), 100 * ms},
		{diamond(10 * ms), 30 * ms},
		{fan(100, 10*ms), 30 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.g.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.g.criticalPath(tt.g.dur))
		})
	}
	// Measured durations count, not nominal ones: a slow middle of the
	// diamond lengthens the path.
	d := diamond(10 * ms)
	took := []time.Duration{10 * ms, 25 * ms, 10 * ms, 10 * ms}
	assert.Equal(t, 45*ms, d.criticalPath(took))
}

func TestRandomGraphIsADAGAndSeeded(t *testing.T) {
	a, b := random(1000, 42), random(1000, 42)
	require.Equal(t, a.deps, b.deps, "the same seed, the same graph")
	require.Equal(t, a.dur, b.dur)
	edges := 0
	for i, deps := range a.deps {
		for _, d := range deps {
			require.Greater(t, d, i, "dependencies have higher indices: no cycle")
		}
		edges += len(deps)
		require.LessOrEqual(t, a.dur[i], 20*ms)
	}
	assert.Greater(t, edges, 1000, "a graph with real structure")
	assert.Greater(t, a.criticalPath(a.dur), 200*ms)
}

// Each system stops a small graph in dependency order.
func TestSystemsHonourDependencies(t *testing.T) {
	g := diamond(2 * ms)
	for _, s := range systems {
		t.Run(s.name, func(t *testing.T) {
			res := s.stop(g, time.Minute)
			assert.Equal(t, g.n(), res.stopped)
			assert.GreaterOrEqual(t, res.stop, g.criticalPath(res.took)-ms)
		})
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
