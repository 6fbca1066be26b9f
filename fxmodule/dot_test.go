package fxmodule

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
)

type (
	dotA struct{}
	dotB struct{}
)

// The DOT text fx gives is read as dig writes it: a constructor's
// parameters and results, a named value, and a group with its members. If
// dig changes its format, this fails first, naming what it no longer finds.
func TestParseGraphReadsFxsDOT(t *testing.T) {
	var dot fx.DotGraph
	app := fx.New(fx.NopLogger,
		fx.Provide(func() *dotA { return &dotA{} }),
		fx.Provide(fx.Annotated{Name: "n", Target: func(*dotA) *dotB { return &dotB{} }}),
		fx.Provide(fx.Annotated{Group: "g", Target: func() *dotB { return &dotB{} }}),
		fx.Provide(fx.Annotated{Group: "g", Target: func() *dotB { return &dotB{} }}),
		fx.Invoke(func(struct {
			fx.In
			B  *dotB   `name:"n"`
			Bs []*dotB `group:"g"`
		}) {
		}),
		fx.Populate(&dot),
	)
	require.NoError(t, app.Err())
	g, err := parseGraph(string(dot))
	require.NoError(t, err)

	a, named := "*fxmodule.dotA", "*fxmodule.dotB[name=n]"
	require.Len(t, g.producers[a], 1, "the producer of %s in:\n%s", a, dot)
	require.Len(t, g.producers[named], 1, "the producer of %s", named)
	assert.Contains(t, g.params[g.producers[named][0]], a, "the named constructor's parameter")
	assert.Contains(t, g.results[g.producers[a][0]], a)
	assert.Equal(t, "github.com/gleitzeit/gleitzeit/fxmodule.TestParseGraphReadsFxsDOT.func1", g.names[g.producers[a][0]],
		"a constructor's name, as runtime.FuncForPC gives it")
	group := "[type=*fxmodule.dotB group=g]"
	assert.Len(t, g.producersOf(group), 2, "the group's two members: %v", g.members)
}
