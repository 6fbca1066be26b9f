// Package fxapp measures what fxmodule costs an fx application: fx.New,
// Start and Stop of one app written two ways, with fx alone (fx.Provide,
// hooks appended by hand through fx.Lifecycle: the plain-fx twin) and with
// fxmodule (fxmodule.Provide, fxmodule.Module), in three shapes (see
// [Shapes]) of 200 and 800 providers. Every provider does nothing, so that
// what is measured is the wiring.
//
// The constructors are functions of their own, written by gen.go into
// ctors.go. Closures made in a loop would share one function's name, by
// which fxmodule finds a provider's constructors in fx's graph: it would
// take them for one constructor given to Provide n times, and its start,
// which then weighs every provider against every other, would take seconds
// (1.8 s for a chain of 200, 6.1 s for 300, on a 2-CPU machine).
package fxapp

//go:generate go run gen.go
