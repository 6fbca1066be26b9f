// Package fxapp measures what fxmodule costs an fx application: fx.New,
// Start and Stop of one app written three ways, with fx alone (fx.Provide,
// hooks appended by hand through fx.Lifecycle: the plain-fx twin), the
// same with each constructor given through fx.Annotate (as fxmodule gives
// its wrappers, so that errors name the user's function), and with
// fxmodule (fxmodule.Provide, fxmodule.Module), in three shapes (see
// [Shapes]) of 200 and 800 providers. Every provider does nothing, so that
// what is measured is the wiring.
//
// The constructors are functions of their own, written by gen.go into
// ctors.go, as a program's constructors are: each named by its own
// function in fx's events and errors.
package fxapp

//go:generate go run gen.go
