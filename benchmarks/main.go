package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/samber/do/v2"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func main() {
	runs := flag.Int("runs", 5, "Stops per scenario and system; the median is shown")
	only := flag.String("only", "", "run only scenarios whose name contains this")
	scaled := flag.Bool("scale", true, "also print the cost per provider at 1,000, 10,000 and 100,000 providers")
	flag.Parse()
	fmt.Printf("Go %s, %s/%s, %d CPUs, %s\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format(time.DateOnly))
	report(os.Stdout, *runs, *only)
	if *scaled {
		fmt.Println()
		scaleTable(os.Stdout, *runs)
	}
}

type scenario struct {
	g       graph
	timeout time.Duration // per provider for the registry; the whole stop for fx
	runs    int           // 0: the -runs flag
}

func scenarios() []scenario {
	const ms = time.Millisecond
	hang := independent("one of 100 hangs past a 100 ms timeout", 100, 10*ms)
	hang.hang = 50
	return []scenario{
		{g: independent("100 independent, 10 ms each", 100, 10*ms), timeout: time.Minute},
		{g: chain(10, 10*ms), timeout: time.Minute},
		{g: diamond(10 * ms), timeout: time.Minute},
		{g: fan(100, 10*ms), timeout: time.Minute},
		{g: random(1000, 42), timeout: time.Minute, runs: 3}, // fx takes about 10 s a run
		{g: independent("10,000 that do nothing", 10000, 0), timeout: time.Minute},
		{g: hang, timeout: 100 * ms},
	}
}

var systems = []system{
	{"gleitzeit registry", registry},
	{"fx OnStop hooks", fxHooks},
	{"samber/do v2", samberDo},
}

// cell is one scenario under one system: the median of its runs.
type cell struct {
	stop, cp time.Duration
	ratio    float64
	perSvc   time.Duration
	note     string
	stopped  int
}

func measure(s system, sc scenario, runs int) cell {
	var stops, cps []time.Duration
	var ratios []float64
	var last result
	for range runs {
		res := s.stop(sc.g, sc.timeout)
		cp := sc.g.criticalPath(res.took)
		stops, cps = append(stops, res.stop), append(cps, cp)
		if cp > 0 {
			ratios = append(ratios, float64(res.stop)/float64(cp))
		}
		last = res
	}
	c := cell{stop: median(stops), cp: median(cps), note: last.note, stopped: last.stopped}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		c.ratio = ratios[len(ratios)/2]
	}
	c.perSvc = c.stop / time.Duration(sc.g.n())
	return c
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(w io.Writer, runs int, only string) {
	fmt.Fprintf(w, "| scenario | critical path | %s |\n", strings.Join(names(), " | "))
	fmt.Fprintf(w, "|---|---|%s\n", strings.Repeat("---|", len(systems)))
	var targets []string
	for _, sc := range scenarios() {
		if !strings.Contains(sc.g.name, only) {
			continue
		}
		n := runs
		if sc.runs > 0 {
			n = min(runs, sc.runs)
		}
		cells := make([]cell, len(systems))
		for i, s := range systems {
			cells[i] = measure(s, sc, n)
		}
		row := []string{sc.g.name, round(cells[0].cp)}
		for _, c := range cells {
			row = append(row, c.String(sc))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		targets = append(targets, check(sc, cells)...)
	}
	health := healthRow()
	fmt.Fprintln(w, health)
	fmt.Fprintln(w)
	for _, t := range targets {
		fmt.Fprintln(w, t)
	}
}

func names() []string {
	var out []string
	for _, s := range systems {
		out = append(out, s.name)
	}
	return out
}

func (c cell) String(sc scenario) string {
	var s string
	switch {
	case sc.g.hang >= 0:
		s = fmt.Sprintf("%s; %d of %d cleanups ended", round(c.stop), c.stopped, sc.g.n())
	case c.cp < time.Millisecond:
		s = fmt.Sprintf("%s (%v per provider)", round(c.stop), c.perSvc)
	default:
		s = fmt.Sprintf("%s (%.2f×)", round(c.stop), c.ratio)
	}
	if c.note != "" {
		s += "; " + c.note
	}
	return s
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(100 * time.Nanosecond).String()
}

// check compares the registry with the targets of BENCHMARKS.md.
func check(sc scenario, cells []cell) []string {
	reg, fx, sd := cells[0], cells[1], cells[2]
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	switch {
	case sc.g.hang >= 0:
		return []string{fmt.Sprintf("- %s: registry Stop %s ≤ 110 ms: %s", sc.g.name, round(reg.stop), mark(reg.stop <= 110*time.Millisecond))}
	case reg.cp < time.Millisecond:
		// A goroutine per cleanup is what makes a hung one harmless: the
		// concurrent peer is the measure, and fx's hooks, run one after
		// another on one goroutine, are shown for reference.
		return []string{fmt.Sprintf("- %s: registry %v per provider ≤ samber/do %v per service: %s (fx, one hook after another: %v per hook)",
			sc.g.name, reg.perSvc, sd.perSvc, mark(reg.perSvc <= sd.perSvc), fx.perSvc)}
	}
	bound := time.Duration(1.05*float64(reg.cp)) + 2*time.Millisecond
	best := min(fx.stop, sd.stop)
	// Each system's cleanups sleep as long as the timers let them, which
	// varies by a millisecond from run to run; its ratio to the critical
	// path of its own cleanups is what it added to them.
	bestRatio := min(fx.ratio, sd.ratio)
	return []string{fmt.Sprintf("- %s: registry Stop %s ≤ 1.05 × %s + 2 ms = %s: %s; ≤ the best other system's %s: %s; its ratio %.3f× ≤ the best other's %.3f×: %s",
		sc.g.name, round(reg.stop), round(reg.cp), round(bound), mark(reg.stop <= bound), round(best), mark(reg.stop <= best),
		reg.ratio, bestRatio, mark(reg.ratio <= bestRatio))}
}

// healthRow checks 1,000 providers, one of whose checks hangs, with a 50 ms
// health timeout: the registry and samber/do (fx has no health checks).
func healthRow() string {
	const n, timeout = 1000, 50 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	hc := make([]*checked, n)
	for i := range hc {
		hc[i] = &checked{id: fmt.Sprintf("h%d", i), hang: i == n/2, release: release}
	}

	r := lifecycle.NewRegistry(lifecycle.WithHealthTimeout(timeout))
	for _, h := range hc {
		must(r.Register(h))
	}
	must(r.Start(context.Background()))
	var regTimes []time.Duration
	for range 5 {
		begin := time.Now()
		rep := r.Health(context.Background())
		regTimes = append(regTimes, time.Since(begin))
		if rep.Providers[hc[n/2].id].Status != lifecycle.StatusUnhealthy {
			panic("the hung check was not reported unhealthy")
		}
	}

	inj := do.New()
	for _, h := range hc {
		do.ProvideNamedValue(inj, h.id, doChecked{h})
	}
	for _, h := range hc {
		_ = do.MustInvokeNamed[doChecked](inj, h.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	doDone := make(chan time.Duration, 1)
	begin := time.Now()
	go func() { inj.HealthCheckWithContext(ctx); doDone <- time.Since(begin) }()
	var doCell string
	select {
	case d := <-doDone:
		doCell = round(d)
	case <-time.After(2 * time.Second):
		doCell = "had not returned after 2s (it waits for the hung check)"
	}
	return fmt.Sprintf("| health of 1,000, one check hung, 50 ms timeout | — | %s (target ≤ 55 ms) | no health checks | %s |",
		round(median(regTimes)), doCell)
}

// checked is a provider with a health check that may hang.
type checked struct {
	id      string
	hang    bool
	release chan struct{}
}

func (c *checked) ID() string { return c.id }

// HealthCheck is the registry's.
func (c *checked) HealthCheck(context.Context) lifecycle.Health {
	if c.hang {
		<-c.release
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy}
}

// doChecked is the same provider for samber/do, whose health checks have
// another signature.
type doChecked struct{ *checked }

func (d doChecked) HealthCheck(context.Context) error {
	if d.hang {
		<-d.release
	}
	return nil
}
