package fxmodule_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/fx/fxtest"

	"github.com/gleitzeit/gleitzeit/fxmodule"
)

// recorder keeps fx's events, as a user's fx.WithLogger would see them.
type recorder struct {
	mu     sync.Mutex
	events []fxevent.Event
}

func (r *recorder) LogEvent(e fxevent.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []fxevent.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// fx's events about a provider say what each thing is: the constructor's
// outputs are the user's types alone, and the hooks and the registry's
// entry are named for what they do.
func TestFxEventsSayWhatEachThingIs(t *testing.T) {
	rec := &recorder{}
	app := fxtest.New(t, fx.WithLogger(func() fxevent.Logger { return rec }),
		fx.Supply(&journal{}), fxmodule.Module, fxmodule.Provide(NewDB))
	app.RequireStart().RequireStop()

	var provided [][]string
	var hooks []string
	for _, e := range rec.all() {
		switch e := e.(type) {
		case *fxevent.Provided:
			provided = append(provided, e.OutputTypeNames)
		case *fxevent.OnStartExecuted:
			hooks = append(hooks, e.FunctionName)
		case *fxevent.OnStopExecuted:
			hooks = append(hooks, e.FunctionName)
		}
	}
	assert.Contains(t, provided, []string{"*fxmodule_test.DB"}, "the provider constructor gives the user's type alone")
	assert.Contains(t, provided, []string{`fxmodule.managedProvider[group = "gleitzeit.providers"]`})
	assert.Contains(t, hooks, "github.com/gleitzeit/gleitzeit/fxmodule.(*provider).initialize-fm()")
	assert.Contains(t, hooks, "github.com/gleitzeit/gleitzeit/fxmodule.(*provider).cleanUp-fm()")
	for _, names := range provided {
		for _, n := range names {
			assert.False(t, strings.Contains(n, "marker") || strings.Contains(n, "slot"), "an internal type in %v", names)
		}
	}
}
