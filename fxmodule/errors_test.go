package fxmodule_test

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// location is how errors name a function: its full name, file and line.
func location(fn any) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	file, line := f.FileLine(f.Entry())
	return fmt.Sprintf("%s (%s:%d)", f.Name(), file, line)
}

func NewBrokenDB(*journal) (*DB, error) { return nil, errors.New("bad dsn") }

// A constructor's error names the user's constructor, by file and line.
func TestConstructorErrorNamesTheConstructor(t *testing.T) {
	for _, ctor := range []any{NewBrokenDB, fx.Annotate(NewBrokenDB, fx.As(new(Store)))} {
		app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Module, fxmodule.Provide(ctor))
		require.Error(t, app.Err())
		assert.ErrorContains(t, app.Err(), "provider constructor "+location(NewBrokenDB)+": bad dsn")
	}
}

// Two providers with one id: the error names both types and both
// constructors.
func TestDuplicateIDNamesBothProviders(t *testing.T) {
	newCache := func(j *journal) *Cache { return &Cache{base{id: "db", jnl: j}} }
	app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Module, fxmodule.Provide(NewDB), fxmodule.Provide(newCache))
	err := app.Err()
	require.ErrorIs(t, err, lifecycle.ErrDuplicateID)
	for _, want := range []string{`provider id "db" is given twice`, "*fxmodule_test.DB", location(NewDB), "*fxmodule_test.Cache", location(newCache)} {
		assert.ErrorContains(t, err, want)
	}
}

// Provide without Module says to add it, however the constructor is
// given, whether or not something consumes the provider.
func TestProvideWithoutModuleNamesTheConstructor(t *testing.T) {
	for name, ctor := range map[string]any{
		"plain":     NewDB,
		"annotated": fx.Annotate(NewDB, fx.As(new(Store))),
		"param tags": fx.Annotate(func(j *journal, _ string) *DB { return NewDB(j) },
			fx.ParamTags(``, `name:"dsn" optional:"true"`)),
		"named": fx.Annotated{Name: "primary", Target: NewDB},
	} {
		t.Run(name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Provide(ctor))
			require.Error(t, app.Err())
			assert.ErrorContains(t, app.Err(), "needs fxmodule.Module in the same app: add it to fx.New")
		})
	}
	app := fx.New(fx.NopLogger, fx.Supply(&journal{}), fxmodule.Provide(NewDB))
	assert.ErrorContains(t, app.Err(), "fxmodule.Provide("+location(NewDB)+") needs fxmodule.Module")
}

// Module twice, as two libraries that each bundle it would include it:
// fx refuses, and the error names the module's own constructor.
func TestModuleTwiceFailsNamingTheModule(t *testing.T) {
	app := fx.New(fx.NopLogger, fxmodule.Module, fxmodule.Module)
	require.Error(t, app.Err())
	assert.ErrorContains(t, app.Err(), "fxmodule")
	assert.ErrorContains(t, app.Err(), "already provided")
}
