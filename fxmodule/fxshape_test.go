package fxmodule

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
)

// appShutdowner is an app's fx.Shutdowner.
func appShutdowner(t *testing.T) fx.Shutdowner {
	var sd fx.Shutdowner
	app := fx.New(fx.NopLogger, fx.Populate(&sd))
	require.NoError(t, app.Err())
	return sd
}

// The fx this module runs with here has the shapes it reads.
func TestCheckFxPassesWithTheFxInGoMod(t *testing.T) {
	require.NoError(t, checkFx(fx.Annotate, appShutdowner(t)))
}

// A program given an fx whose fx.Annotate no longer has those shapes
// fails, naming the fx this module was built against, rather than losing
// annotations or locations in silence.
func TestCheckFxFailsWhenFxChangedItsShapes(t *testing.T) {
	type annotated struct{ Target any } // neither fx's type nor its fields
	for name, annotate := range map[string]func(any, ...fx.Annotation) any{
		"another type": func(f any, _ ...fx.Annotation) any { return annotated{f} },
		"a function":   func(f any, _ ...fx.Annotation) any { return f },
		"no annotations kept": func(f any, _ ...fx.Annotation) any {
			return fx.Annotate(f)
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkFx(annotate, appShutdowner(t))
			require.Error(t, err)
			assert.ErrorContains(t, err, "it was built against "+builtWith)
		})
	}
	// An app whose fx.Shutdowner no longer leads to its modules.
	type shutdowner struct{ fx.Shutdowner }
	err := checkFx(fx.Annotate, &shutdowner{appShutdowner(t)})
	require.Error(t, err)
	assert.ErrorContains(t, err, "it was built against "+builtWith)
	assert.ErrorContains(t, err, "fx.Shutdowner does not lead to fx's")
}

// Every field of fx's tree of modules that the module reads is checked:
// one that fx no longer has, or has with another kind, fails, naming it.
func TestCheckModuleTreeFailsWhenAFieldIsMissing(t *testing.T) {
	sd := appShutdowner(t)
	require.NoError(t, checkFields(sd, moduleFields))
	for _, f := range moduleFields {
		t.Run(f.typ+"."+f.name, func(t *testing.T) {
			gone := slices.Clone(moduleFields)
			for i := range gone {
				if gone[i] == f {
					gone[i].name += "Gone"
				}
			}
			assert.ErrorContains(t, checkFields(sd, gone), "fx's "+f.typ+" has no field "+f.name+"Gone")
			changed := slices.Clone(moduleFields)
			for i := range changed {
				if changed[i] == f {
					changed[i].kind = reflect.Func
				}
			}
			assert.ErrorContains(t, checkFields(sd, changed), "fx's "+f.typ+" "+f.name+" is a ")
		})
	}
}

// builtWith names the fx of go.mod.
func TestBuiltWithIsTheFxInGoMod(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	for line := range strings.Lines(string(mod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "go.uber.org/fx" {
			assert.Equal(t, builtWith, f[0]+" "+f[1])
			return
		}
	}
	t.Fatal("go.mod does not require go.uber.org/fx")
}
