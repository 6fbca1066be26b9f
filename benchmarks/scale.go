package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"time"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// noop is a provider whose Initialize and Cleanup do nothing: what is
// measured is the registry's own cost.
type noop struct{ id string }

func (p *noop) ID() string                       { return p.id }
func (p *noop) Initialize(context.Context) error { return nil }
func (p *noop) Cleanup(context.Context) error    { return nil }
func (p *noop) hook() fx.Hook                    { return fx.Hook{OnStart: p.Initialize, OnStop: p.Cleanup} }
func noops(n int) []*noop {
	out := make([]*noop, n)
	for i := range out {
		out[i] = &noop{id: "p" + strconv.Itoa(i)}
	}
	return out
}

// scale is one size: Start and Stop per provider (the medians over the
// runs), and the heap each provider holds once registered and once
// started, for the registry; the same per hook for fx.
type scale struct {
	start, stop         time.Duration
	registered, started float64 // bytes per provider
	stopGCs             uint32  // collections that ran during the last Stop
}

// heap is the live heap after a collection, and the collections so far.
func heap() (int64, uint32) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), m.NumGC
}

func perProvider(bytes int64, n int) float64 { return float64(bytes) / float64(n) }

// startStopper is what the table measures of a system: *lifecycle.Registry
// and *fx.App both are one.
type startStopper interface {
	Start(context.Context) error
	Stop(context.Context) error
}

// measureScale builds a system over n providers with build, runs times,
// timing its Start and Stop and weighing what it holds.
func measureScale(n, runs int, build func([]*noop) startStopper) scale {
	var starts, stops []time.Duration
	var s scale
	for range runs {
		ps := noops(n) // the providers themselves are not the system's cost
		before, _ := heap()
		sys := build(ps)
		registered, _ := heap()
		begin := time.Now()
		must(sys.Start(context.Background()))
		starts = append(starts, time.Since(begin))
		started, gcs := heap()
		begin = time.Now()
		must(sys.Stop(context.Background()))
		stops = append(stops, time.Since(begin))
		_, after := heap()
		s.registered, s.started = perProvider(registered-before, n), perProvider(started-before, n)
		s.stopGCs = after - gcs - 1 // heap's own collection is not the Stop's
		runtime.KeepAlive(ps)
	}
	s.start, s.stop = perItem(starts, n), perItem(stops, n)
	return s
}

func registryScale(n, runs int) scale {
	return measureScale(n, runs, func(ps []*noop) startStopper {
		r := lifecycle.NewRegistry()
		for _, p := range ps {
			must(r.Register(p))
		}
		return r
	})
}

func fxScale(n, runs int) scale {
	return measureScale(n, runs, func(ps []*noop) startStopper {
		return fx.New(fx.NopLogger, fx.Invoke(func(lc fx.Lifecycle) {
			for _, p := range ps {
				lc.Append(p.hook())
			}
		}))
	})
}

func perItem(ds []time.Duration, n int) time.Duration { return median(ds) / time.Duration(n) }

// spread is the largest of ds over the smallest.
func spread(ds []time.Duration) float64 {
	return float64(slices.Max(ds)) / float64(slices.Min(ds))
}

// scaleTable prints what Start and Stop cost per provider, and what a
// provider holds, at 1,000, 10,000 and 100,000 providers that do nothing.
func scaleTable(w io.Writer, runs int) {
	sizes := []int{1000, 10000, 100000}
	registryScale(1000, 1) // warm up: the first run pays for what the process sets up once
	fxScale(1000, 1)
	fmt.Fprintln(w, "| providers | registry Start | registry Stop (GCs in it) | registry heap, registered / started | fx Start | fx Stop (GCs in it) | fx heap, appended / started |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	var starts, stops []time.Duration
	for _, n := range sizes {
		// Small sizes take under a millisecond, where the scheduler's noise
		// is large: they are measured more often, so that every median is
		// over about the same number of providers.
		reg := registryScale(n, max(runs, 200_000/n))
		fxs := fxScale(n, max(3, 50_000/n)) // fx takes about 2.5 s to build 100,000 hooks
		starts, stops = append(starts, reg.start), append(stops, reg.stop)
		fmt.Fprintf(w, "| %d | %v | %v (%d) | %.0f / %.0f B | %v | %v (%d) | %.0f / %.0f B |\n", n,
			reg.start, reg.stop, reg.stopGCs, reg.registered, reg.started, fxs.start, fxs.stop, fxs.stopGCs, fxs.registered, fxs.started)
	}
	fmt.Fprintln(w)
	mark := func(r float64) string {
		if r <= 1.2 {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "- Start per provider, largest over smallest across the sizes: %.2f (≤ 1.20): %s\n", spread(starts), mark(spread(starts)))
	fmt.Fprintf(w, "- Stop per provider, largest over smallest across the sizes: %.2f (≤ 1.20): %s\n", spread(stops), mark(spread(stops)))
}
