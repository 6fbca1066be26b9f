package timeline

import (
	"slices"
	"strings"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Phases of a timeline.
const (
	PhaseStart = "start"
	PhaseStop  = "stop"
)

// Timeline is a registry's last start and stop, as bars.
type Timeline struct {
	Start Section
	Stop  Section
}

// Section is one start or stop: a bar per provider.
type Section struct {
	Phase string
	Began time.Time     // the start's call, or the first cleanup's begin; zero if there is none yet
	Took  time.Duration // from Began to the last bar's end
	Bars  []Bar         // by depth (in the order the phase runs them), then by begin
	// Unplaced are the providers that have an outcome but never began:
	// skipped as never initialized, or abandoned before they began.
	Unplaced []Bar
	// Joined counts, in a start, the stop's providers that the start did
	// not initialize: registered while the registry ran (a pool's instance).
	Joined int
}

// Bar is one provider's Initialize or cleanup.
type Bar struct {
	ID       string
	Depth    int // the longest chain of dependencies below the provider: 0 depends on nothing
	Began    time.Time
	Duration time.Duration
	Result   string // ok, error, panic, timeout, skipped or abandoned
	Reason   string // why it was skipped
	Err      string // redacted
	Late     bool   // returned after the registry stopped waiting; Duration runs to that return
	Critical bool   // on the section's critical path
}

// End is when the bar ends.
func (b Bar) End() time.Time { return b.Began.Add(b.Duration) }

// Of draws the last start and stop of r: its [lifecycle.Registry.StartReport]
// and [lifecycle.Registry.Report], placed by [lifecycle.Registry.Providers]'
// dependencies.
func Of(r *lifecycle.Registry) Timeline {
	deps := make(map[string][]string)
	for _, p := range r.Providers() {
		deps[p.ID] = p.DependsOn
	}
	return New(r.StartReport(), r.Report(), deps)
}

// New draws a start and a stop report, given each provider's dependencies
// (the ids it depends on).
func New(start lifecycle.StartReport, stop lifecycle.StopReport, dependsOn map[string][]string) Timeline {
	depth := depths(dependsOn)
	dependents := make(map[string][]string)
	for id, ds := range dependsOn {
		for _, d := range ds {
			dependents[d] = append(dependents[d], id)
		}
	}

	s := Section{Phase: PhaseStart, Began: start.Began}
	for id, i := range start.Providers {
		b := Bar{ID: id, Depth: depth[id], Began: i.Began, Duration: i.Duration, Result: i.Result.String()}
		if i.Err != nil {
			b.Err = lifecycle.Redact(i.Err.Error())
		}
		s.Bars = append(s.Bars, b)
	}
	s.finish(dependsOn, false)

	t := Section{Phase: PhaseStop}
	for id, o := range stop.Providers {
		b := Bar{ID: id, Depth: depth[id], Began: o.Began, Duration: o.Duration, Result: o.Result.String(),
			Reason: o.Reason, Late: o.Late}
		if o.Err != nil {
			b.Err = lifecycle.Redact(o.Err.Error())
		}
		if b.Began.IsZero() {
			t.Unplaced = append(t.Unplaced, b)
			continue
		}
		if t.Began.IsZero() || b.Began.Before(t.Began) {
			t.Began = b.Began
		}
		t.Bars = append(t.Bars, b)
	}
	t.finish(dependents, true)
	for id, o := range stop.Providers {
		if _, ok := start.Providers[id]; !ok && !start.Began.IsZero() && o.Reason != lifecycle.ReasonNotInitialized {
			s.Joined++
		}
	}
	return Timeline{Start: s, Stop: t}
}

// finish orders the bars, measures the section and marks its critical
// path: from the bar that ended last, back through what each waited for
// (waitedFor: a start's dependencies, a stop's dependents), taking each
// time the one that ended last. A stop runs the deepest providers first.
func (s *Section) finish(waitedFor map[string][]string, deepestFirst bool) {
	slices.SortFunc(s.Unplaced, func(a, b Bar) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Bars, func(a, b Bar) int {
		if a.Depth != b.Depth {
			if deepestFirst {
				return b.Depth - a.Depth
			}
			return a.Depth - b.Depth
		}
		if c := a.Began.Compare(b.Began); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(s.Bars) == 0 {
		return
	}
	at := make(map[string]int, len(s.Bars))
	last := 0
	for i, b := range s.Bars {
		at[b.ID] = i
		if b.End().After(s.Bars[last].End()) {
			last = i
		}
	}
	if s.Began.IsZero() {
		s.Began = s.Bars[0].Began
	}
	s.Took = s.Bars[last].End().Sub(s.Began)
	for i := last; i >= 0; {
		s.Bars[i].Critical = true
		next := -1
		for _, id := range waitedFor[s.Bars[i].ID] {
			j, ok := at[id]
			if ok && !s.Bars[j].Critical && (next < 0 || s.Bars[j].End().After(s.Bars[next].End())) {
				next = j
			}
		}
		i = next
	}
}

// depths gives each provider the length of its longest chain of
// dependencies. A cycle, which no registry starts, counts once.
func depths(dependsOn map[string][]string) map[string]int {
	depth := make(map[string]int, len(dependsOn))
	onPath := make(map[string]bool)
	var visit func(id string) int
	visit = func(id string) int {
		if d, ok := depth[id]; ok {
			return d
		}
		if onPath[id] {
			return 0
		}
		onPath[id] = true
		d := 0
		for _, dep := range dependsOn[id] {
			d = max(d, visit(dep)+1)
		}
		onPath[id] = false
		depth[id] = d
		return d
	}
	for id := range dependsOn {
		visit(id)
	}
	return depth
}
