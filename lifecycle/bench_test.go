package lifecycle_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// These benchmarks back the figures in the README and the closing notes of
// the issues. Run them with `make bench`. Each reports ns/op for the whole
// operation and, where the target is per provider, ns/provider beside fx's
// ns/hook from the same run.

// noop is a provider that does nothing, with the methods a real one has.
type noop struct{ id string }

func (p *noop) ID() string                       { return p.id }
func (p *noop) Initialize(context.Context) error { return nil }
func (p *noop) Cleanup(context.Context) error    { return nil }

// sleeper's cleanup takes d, like a pool draining its connections.
type sleeper struct {
	id string
	d  time.Duration
}

func (p *sleeper) ID() string                    { return p.id }
func (p *sleeper) Cleanup(context.Context) error { time.Sleep(p.d); return nil }

// deaf's cleanup ignores its context and never returns until released.
type deaf struct {
	id      string
	release chan struct{}
}

func (p *deaf) ID() string                    { return p.id }
func (p *deaf) Cleanup(context.Context) error { <-p.release; return nil }

// BenchmarkStop1000Independent10ms: 1,000 independent providers whose
// cleanup takes 10 ms each. Target: Stop in under 15 ms.
func BenchmarkStop1000Independent10ms(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		r := lifecycle.NewRegistry()
		for i := 0; i < 1000; i++ {
			if err := r.Register(&sleeper{id: fmt.Sprintf("p%04d", i), d: 10 * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := r.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStopIgnoresContext100ms: a provider that ignores its context,
// with a 100 ms timeout, among 99 that behave. Target: Stop returns within
// 110 ms and its error names that provider.
func BenchmarkStopIgnoresContext100ms(b *testing.B) {
	release := make(chan struct{})
	defer close(release)
	for b.Loop() {
		b.StopTimer()
		r := lifecycle.NewRegistry()
		for i := 0; i < 99; i++ {
			if err := r.Register(&noop{id: fmt.Sprintf("p%02d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Register(&deaf{id: "deaf", release: release}, lifecycle.Timeout(100*time.Millisecond)); err != nil {
			b.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		err := r.Stop(context.Background())
		b.StopTimer()
		if err == nil || !strings.Contains(err.Error(), `provider "deaf"`) {
			b.Fatalf("Stop's error does not name the provider: %v", err)
		}
		b.StartTimer()
	}
}

const many = 10000

func registerNoops(b *testing.B, r *lifecycle.Registry) {
	for i := 0; i < many; i++ {
		if err := r.Register(&noop{id: "p" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterStartStop10000 is the whole life of 10,000 providers that
// do nothing. Compare ns/provider with BenchmarkFxAppendStartStop10000's
// ns/hook. Target: no more than fx's per hook pair.
func BenchmarkRegisterStartStop10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		r := lifecycle.NewRegistry()
		registerNoops(b, r)
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := r.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "provider")
}

// BenchmarkFxAppendStartStop10000 is the fx baseline: an app with 10,000
// OnStart/OnStop hook pairs that do nothing, built, started and stopped.
func BenchmarkFxAppendStartStop10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		app := fx.New(fx.NopLogger, fx.Invoke(appendHooks))
		if err := app.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := app.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "hook")
}

func appendHooks(lc fx.Lifecycle) {
	nothing := func(context.Context) error { return nil }
	for i := 0; i < many; i++ {
		lc.Append(fx.Hook{OnStart: nothing, OnStop: nothing})
	}
}

// BenchmarkStop10000 is Stop alone over 10,000 providers that do nothing.
// Compare ns/provider with BenchmarkFxStop10000's ns/hook.
func BenchmarkStop10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := lifecycle.NewRegistry()
		registerNoops(b, r)
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		runtime.GC() // the setup's garbage is not the Stop's cost
		b.StartTimer()
		if err := r.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "provider")
}

// BenchmarkFxStop10000 is fx's Stop alone over 10,000 OnStop hooks.
func BenchmarkFxStop10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		app := fx.New(fx.NopLogger, fx.Invoke(appendHooks))
		if err := app.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		runtime.GC() // the setup's garbage is not the Stop's cost
		b.StartTimer()
		if err := app.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "hook")
}

// perProvider reports the benchmark's time per provider, or per fx hook,
// beside ns/op (which is for all 10,000).
func perProvider(b *testing.B, unit string) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*many), "ns/"+unit)
}

// BenchmarkRegister10000 is Register alone: 10,000 providers into a new
// registry. Compare ns/provider with BenchmarkFxAppend10000's ns/hook.
func BenchmarkRegister10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		registerNoops(b, lifecycle.NewRegistry())
	}
	perProvider(b, "provider")
}

// BenchmarkFxAppend10000 builds an fx app whose one invoke appends 10,000
// hook pairs: fx's cost of declaring them, caller capture included.
func BenchmarkFxAppend10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		app := fx.New(fx.NopLogger, fx.Invoke(appendHooks))
		if err := app.Err(); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "hook")
}

// BenchmarkStart10000 is Start alone over 10,000 providers whose
// Initialize does nothing. Compare with BenchmarkFxStart10000.
func BenchmarkStart10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := lifecycle.NewRegistry()
		registerNoops(b, r)
		runtime.GC()
		b.StartTimer()
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "provider")
}

// BenchmarkFxStart10000 is fx's Start alone over 10,000 OnStart hooks.
func BenchmarkFxStart10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		app := fx.New(fx.NopLogger, fx.Invoke(appendHooks))
		runtime.GC()
		b.StartTimer()
		if err := app.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	perProvider(b, "hook")
}

// BenchmarkHealth10000 checks 10,000 providers whose checks answer at
// once. fx has no health checks to compare with.
func BenchmarkHealth10000(b *testing.B) {
	b.ReportAllocs()
	r := lifecycle.NewRegistry()
	for i := 0; i < many; i++ {
		if err := r.Register(&checked{id: "p" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rep := r.Health(context.Background()); rep.Status != lifecycle.StatusHealthy {
			b.Fatal(rep.Status)
		}
	}
	perProvider(b, "provider")
}

// BenchmarkHealth1000OneHung: 1,000 providers, one of whose checks hangs.
// Target: Health returns within the health timeout (50 ms here) + 5 ms.
func BenchmarkHealth1000OneHung(b *testing.B) {
	release := make(chan struct{})
	defer close(release)
	r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(50 * time.Millisecond))
	for i := 0; i < 999; i++ {
		if err := r.Register(&checked{id: fmt.Sprintf("p%03d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Register(&checked{id: "hung", release: release}); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rep := r.Health(context.Background())
		if rep.Providers["hung"].Status != lifecycle.StatusUnhealthy {
			b.Fatal("the hung check was not reported unhealthy")
		}
	}
}

type checked struct {
	id      string
	release chan struct{}
}

func (p *checked) ID() string { return p.id }
func (p *checked) HealthCheck(context.Context) lifecycle.Health {
	if p.release != nil {
		<-p.release
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy}
}
