package fxapp_test

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/benchmarks/fxapp"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hookCounter counts the hooks fx ran without error.
type hookCounter struct{ started, stopped atomic.Int64 }

func (c *hookCounter) LogEvent(e fxevent.Event) {
	switch e := e.(type) {
	case *fxevent.OnStartExecuted:
		if e.Err == nil {
			c.started.Add(1)
		}
	case *fxevent.OnStopExecuted:
		if e.Err == nil {
			c.stopped.Add(1)
		}
	}
}

func (c *hookCounter) option() fx.Option {
	return fx.WithLogger(func() fxevent.Logger { return c })
}

// Every twin of every shape and size starts and stops: the plain ones run
// a hook for each provider; the fxmodule one, a hook for each provider and
// the module's own, and its registry reports every provider cleaned up,
// with the dependencies of the shape.
func TestEveryTwinRuns(t *testing.T) {
	for _, shape := range fxapp.Shapes {
		for _, n := range fxapp.Sizes {
			t.Run(shape.Name+"/"+strconv.Itoa(n), func(t *testing.T) {
				// Twice from the same options, as BenchmarkApp runs them.
				t.Run("fx", func(t *testing.T) { plainRuns(t, shape.Plain(n), n) })
				t.Run("fx-annotated", func(t *testing.T) { plainRuns(t, shape.Annotated(n), n) })
				t.Run("fxmodule", func(t *testing.T) {
					opts := shape.Module(n)
					for range 2 {
						var (
							hooks hookCounter
							reg   *lifecycle.Registry
						)
						require.NoError(t, fxapp.Run(append(slices.Clip(opts), fx.Populate(&reg), hooks.option())))
						require.EqualValues(t, n+1, hooks.started.Load())
						require.EqualValues(t, n+1, hooks.stopped.Load())

						report := reg.Report()
						require.Len(t, report.Providers, n)
						for id, o := range report.Providers {
							require.Equal(t, lifecycle.ResultOK, o.Result, "provider %s: %+v", id, o)
						}
						infos := reg.Providers()
						require.Len(t, infos, n)
						for _, info := range infos {
							i, err := strconv.Atoi(strings.TrimPrefix(info.ID, "p"))
							require.NoError(t, err, info.ID)
							require.Equal(t, shape.DependsOn(i), info.DependsOn, "provider %s", info.ID)
						}
					}
				})
			})
		}
	}
}

// plainRuns runs a plain-fx twin twice from the same options, as
// BenchmarkApp does: a hook for each provider.
func plainRuns(t *testing.T, opts []fx.Option, n int) {
	for range 2 {
		var hooks hookCounter
		require.NoError(t, fxapp.Run(append(slices.Clip(opts), hooks.option())))
		require.EqualValues(t, n, hooks.started.Load())
		require.EqualValues(t, n, hooks.stopped.Load())
	}
}

var twins = []struct {
	name string
	opts func(fxapp.Shape, int) []fx.Option
}{{"fx", fxapp.Shape.Plain}, {"fx-annotated", fxapp.Shape.Annotated}, {"fxmodule", fxapp.Shape.Module}}

// BenchmarkApp is the comparison DESIGN.md sets a target for: fx.New, Start
// and Stop, for each shape, size and twin (BenchmarkApp/flat/200/fx,
// BenchmarkApp/flat/200/fxmodule, …; fx-annotated is the plain twin with
// each constructor through fx.Annotate, as fxmodule gives its wrappers). The options are declared once, before
// the loop, so that what is timed is what an app pays each time it starts;
// BenchmarkDeclare measures declaring them.
func BenchmarkApp(b *testing.B) {
	for _, shape := range fxapp.Shapes {
		b.Run(shape.Name, func(b *testing.B) {
			for _, n := range fxapp.Sizes {
				b.Run(strconv.Itoa(n), func(b *testing.B) {
					for _, tw := range twins {
						b.Run(tw.name, func(b *testing.B) {
							opts := tw.opts(shape, n)
							b.ReportAllocs()
							for b.Loop() {
								if err := fxapp.Run(opts); err != nil {
									b.Fatal(err)
								}
							}
						})
					}
				})
			}
		})
	}
}

// BenchmarkDeclare is declaring the options alone, of the largest apps:
// fxmodule.Provide against fx.Provide, fx.Annotate included in both.
func BenchmarkDeclare(b *testing.B) {
	n := fxapp.Sizes[len(fxapp.Sizes)-1]
	for _, shape := range fxapp.Shapes {
		b.Run(shape.Name, func(b *testing.B) {
			b.Run(strconv.Itoa(n), func(b *testing.B) {
				for _, tw := range twins {
					b.Run(tw.name, func(b *testing.B) {
						b.ReportAllocs()
						for b.Loop() {
							tw.opts(shape, n)
						}
					})
				}
			})
		})
	}
}
