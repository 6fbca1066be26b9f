package fxmodule_test

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
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
		f := runtime.FuncForPC(reflect.ValueOf(NewBrokenDB).Pointer())
		file, line := f.FileLine(f.Entry())
		assert.ErrorContains(t, app.Err(), fmt.Sprintf("%s:%d): bad dsn", file, line))
		assert.Equal(t, 1, strings.Count(app.Err().Error(), "NewBrokenDB"), "named once: %v", app.Err())
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

type PGSettings struct{ DSN string }

func NewPGDB(_ PGSettings, j *journal) *DB { return NewDB(j) }

func NewPanickingDB(*journal) *DB { panic("no driver") }

// fx's own errors about a provider constructor (a missing dependency, a
// type provided twice, a panic) point at the user's constructor, by file
// and line, as they do without fxmodule, and at nothing of fxmodule's but
// the name fx gives an annotated constructor in its own prefix (see the
// package doc). Plain fx 1.24 names an annotated constructor
// reflect.makeFuncStub; fxmodule names the user's.
func TestFxErrorsPointAtTheUsersConstructor(t *testing.T) {
	for name, tt := range map[string]struct {
		plain, managed []fx.Option
		ctor           any
		use            any  // the invoke that needs the provider
		plainMisses    bool // plain fx does not name the constructor
	}{
		"a missing dependency": {
			plain: []fx.Option{fx.Provide(NewPGDB)}, managed: []fx.Option{fxmodule.Provide(NewPGDB)}, ctor: NewPGDB,
		},
		"a missing dependency, annotated": {
			plain:   []fx.Option{fx.Provide(fx.Annotate(NewPGDB, fx.As(new(Store))))},
			managed: []fx.Option{fxmodule.Provide(fx.Annotate(NewPGDB, fx.As(new(Store))))}, ctor: NewPGDB,
			use: func(Store) {}, plainMisses: true,
		},
		"a type provided twice": {
			plain:   []fx.Option{fx.Provide(NewDB), fx.Provide(NewDB)},
			managed: []fx.Option{fxmodule.Provide(NewDB), fxmodule.Provide(NewDB)}, ctor: NewDB,
		},
		"a panic": {
			plain:   []fx.Option{fx.RecoverFromPanics(), fx.Provide(NewPanickingDB)},
			managed: []fx.Option{fx.RecoverFromPanics(), fxmodule.Provide(NewPanickingDB)}, ctor: NewPanickingDB,
		},
	} {
		t.Run(name, func(t *testing.T) {
			use := tt.use
			if use == nil {
				use = func(*DB) {}
			}
			f := runtime.FuncForPC(reflect.ValueOf(tt.ctor).Pointer())
			file, line := f.FileLine(f.Entry())
			at := fmt.Sprintf("%s:%d", file, line)

			plain := fx.New(append([]fx.Option{fx.NopLogger, fx.Supply(&journal{}), fx.Invoke(use)}, tt.plain...)...)
			require.Error(t, plain.Err())
			if !tt.plainMisses {
				require.ErrorContains(t, plain.Err(), at, "plain fx names the constructor")
			}

			managed := fx.New(append([]fx.Option{fx.NopLogger, fx.Supply(&journal{}), fxmodule.Module, fx.Invoke(use)}, tt.managed...)...)
			require.Error(t, managed.Err())
			assert.ErrorContains(t, managed.Err(), at)
			_, digs, _ := strings.Cut(managed.Err().Error(), "Failed: ") // past fx's prefix, if any
			assert.NotContains(t, digs, "makeFuncStub")
		})
	}
}
