package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/samber/do/v2"
	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// service is one provider of a scenario. Its cleanup sleeps for its
// duration, or, if it hangs, ignores its context until released. It
// records when its cleanup began and ended, to measure what it really took.
type service struct {
	id      string
	d       time.Duration
	hang    bool
	release chan struct{}
	began   atomic.Int64 // unix nanoseconds
	ended   atomic.Int64
}

func (s *service) ID() string { return s.id }

func (s *service) work() {
	s.began.Store(time.Now().UnixNano())
	switch {
	case s.hang:
		<-s.release
	case s.d > 0:
		time.Sleep(s.d)
	}
	s.ended.Store(time.Now().UnixNano())
}

// Cleanup is the registry's cleanup method.
func (s *service) Cleanup(context.Context) error { s.work(); return nil }

// Shutdown is samber/do's.
func (s *service) Shutdown(context.Context) error { s.work(); return nil }

func services(g graph, release chan struct{}) []*service {
	out := make([]*service, g.n())
	for i := range out {
		out[i] = &service{id: "s" + strconv.Itoa(i), d: g.dur[i], hang: i == g.hang, release: release}
	}
	return out
}

// took is what each cleanup really took; a hung one counts as the time
// until Stop returned.
func took(svcs []*service, stop time.Time) []time.Duration {
	out := make([]time.Duration, len(svcs))
	for i, s := range svcs {
		b, e := s.began.Load(), s.ended.Load()
		switch {
		case b == 0:
		case e == 0 || e < b:
			out[i] = stop.Sub(time.Unix(0, b))
		default:
			out[i] = time.Duration(e - b)
		}
	}
	return out
}

// result is one Stop.
type result struct {
	stop    time.Duration
	took    []time.Duration
	stopped int    // cleanups that ended
	note    string // what happened, when it is not the plain case
}

func countEnded(svcs []*service) int {
	n := 0
	for _, s := range svcs {
		if s.ended.Load() != 0 {
			n++
		}
	}
	return n
}

// A system builds, starts and stops a graph of services, timing the stop.
type system struct {
	name string
	stop func(g graph, timeout time.Duration) result
}

// registry stops with the Gleitzeit registry: each provider bounded by
// timeout.
func registry(g graph, timeout time.Duration) result {
	release := make(chan struct{})
	defer close(release)
	svcs := services(g, release)
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(timeout))
	for i, s := range svcs {
		var deps []string
		for _, d := range g.deps[i] {
			deps = append(deps, svcs[d].id)
		}
		must(r.Register(s, lifecycle.DependsOn(deps...)))
	}
	must(r.Start(context.Background()))
	settle()
	begin := time.Now()
	err := r.Stop(context.Background())
	end := time.Now()
	res := result{stop: end.Sub(begin), took: took(svcs, end), stopped: countEnded(svcs)}
	if err != nil {
		res.note = fmt.Sprintf("%d timed out, named in the error", r.Report().Count(lifecycle.ResultTimeout))
	}
	return res
}

// fxHooks stops with plain fx: one OnStop hook per service, appended so
// that fx, which runs hooks one by one in reverse order, stops dependents
// first. fx's only bound is its StopTimeout, for the whole stop.
func fxHooks(g graph, timeout time.Duration) result {
	release := make(chan struct{})
	defer close(release)
	svcs := services(g, release)
	app := fx.New(fx.NopLogger, fx.Invoke(func(lc fx.Lifecycle) {
		for i := len(svcs) - 1; i >= 0; i-- {
			s := svcs[i]
			lc.Append(fx.Hook{OnStop: func(context.Context) error { s.work(); return nil }})
		}
	}))
	must(app.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	settle()
	begin := time.Now()
	err := app.Stop(ctx)
	end := time.Now()
	res := result{stop: end.Sub(begin), took: took(svcs, end), stopped: countEnded(svcs)}
	if err != nil {
		res.note = fmt.Sprintf("StopTimeout %v ran out: %d of %d hooks never ran", timeout, len(svcs)-countBegan(svcs), len(svcs))
	}
	return res
}

func countBegan(svcs []*service) int {
	n := 0
	for _, s := range svcs {
		if s.began.Load() != 0 {
			n++
		}
	}
	return n
}

// samberDo stops with samber/do v2: services whose providers invoke their
// dependencies, all invoked, then ShutdownWithContext, which stops them
// tier by tier, each tier in parallel. It has no per-service timeout and
// waits for every service; giveUp bounds how long the benchmark waits.
func samberDo(g graph, timeout time.Duration) result {
	release := make(chan struct{})
	svcs := services(g, release)
	inj := do.New()
	for i, s := range svcs {
		do.ProvideNamed(inj, s.id, func(in do.Injector) (*service, error) {
			for _, d := range g.deps[i] {
				if _, err := do.InvokeNamed[*service](in, svcs[d].id); err != nil {
					return nil, err
				}
			}
			return s, nil
		})
	}
	for _, s := range svcs {
		_ = do.MustInvokeNamed[*service](inj, s.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	settle()
	begin := time.Now()
	go func() { inj.ShutdownWithContext(ctx); close(done) }()
	giveUp := 10 * timeout
	select {
	case <-done:
		end := time.Now()
		close(release)
		return result{stop: end.Sub(begin), took: took(svcs, end), stopped: countEnded(svcs)}
	case <-time.After(giveUp):
		end := time.Now()
		res := result{stop: end.Sub(begin), took: took(svcs, end), stopped: countEnded(svcs),
			note: fmt.Sprintf("had not returned after %v (no per-service timeout; it waits for the hung service)", giveUp)}
		close(release)
		<-done
		return res
	}
}

// settle collects the garbage that building the graph left, so that the
// Stop timed next does not pay for it: each system's Stop is timed from the
// same clean start.
func settle() { runtime.GC() }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
