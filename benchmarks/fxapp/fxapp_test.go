package fxapp_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/benchmarks/fxapp"
	"github.com/gleitzeit/gleitzeit/fxmodule"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Both apps build, start and stop every provider, in order.
func TestBothAppsRun(t *testing.T) {
	require.NoError(t, fxapp.Run(fxapp.Plain()))
	require.NoError(t, fxapp.Run(fxapp.Module()))
}

var apps = []struct {
	name string
	opts func() []fx.Option
}{{"fx", fxapp.Plain}, {"fxmodule", fxapp.Module}}

// BenchmarkApp is the comparison of issue 10: declaring the options,
// fx.New, Start and Stop.
func BenchmarkApp(b *testing.B) {
	for _, tt := range apps {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := fxapp.Run(tt.opts()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNew is fx.New alone, of options declared once.
func BenchmarkNew(b *testing.B) {
	for _, tt := range apps {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			opts := tt.opts()
			for b.Loop() {
				if err := fx.New(opts...).Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProvide is 500 calls of fxmodule.Provide.
func BenchmarkProvide(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range fxapp.Providers() {
			fxmodule.Provide(p)
		}
	}
}
