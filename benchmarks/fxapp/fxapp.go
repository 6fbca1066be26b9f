package fxapp

import (
	"context"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/fxmodule"
)

// service is every provider of the chain: it does nothing, so that what is
// measured is the wiring.
type service struct{ id string }

func (s *service) ID() string                       { return s.id }
func (s *service) Initialize(context.Context) error { return nil }
func (s *service) Cleanup(context.Context) error    { return nil }

func hook(lc fx.Lifecycle, s *service) {
	lc.Append(fx.Hook{OnStart: s.Initialize, OnStop: s.Cleanup})
}

// Plain is the app as written without fxmodule: one fx.Provide per
// constructor, hooks appended by hand, and an invoke that builds it all.
func Plain() []fx.Option {
	opts := []fx.Option{fx.NopLogger}
	for i := range hooked {
		opts = append(opts, fx.Provide(hooked[i]), fx.Provide(components[i]))
	}
	return append(opts, fx.Invoke(consumeLast))
}

// Module is the app with fxmodule: one fxmodule.Provide per provider, one
// fx.Provide per component. Module builds every provider.
func Module() []fx.Option {
	opts := []fx.Option{fx.NopLogger, fxmodule.Module}
	for i := range providers {
		opts = append(opts, fxmodule.Provide(providers[i]), fx.Provide(components[i]))
	}
	return opts
}

// Run builds, starts and stops an app.
func Run(opts []fx.Option) error {
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return err
	}
	if err := app.Start(context.Background()); err != nil {
		return err
	}
	return app.Stop(context.Background())
}

// Providers returns the provider constructors of the chain.
func Providers() []any { return providers }
