// Package fxmodule wires the lifecycle registry into an fx application.
//
// # Use
//
//	fx.New(
//		fxmodule.Module,
//		fxmodule.Provide(NewDatabase),
//		fxmodule.Provide(NewOllama, lifecycle.Timeout(5*time.Second)),
//		fx.Provide(NewRepository), // takes the database
//		fx.Invoke(Serve),
//	)
//
// [Provide] declares a provider constructor: its value is available to the
// graph as with fx.Provide, and it joins the registry through a value
// group. [Module] builds the registry, registers every provider, starts it
// in an OnStart hook and stops it in an OnStop hook.
//
// # Dependencies
//
// Value groups are unordered, so no order comes from the group. The order
// comes from the constructors: a provider whose constructor receives another
// provider, as a parameter, as an fx.In field, or through other constructors
// in between (a repository built from the database, say), depends on it: it
// is initialized after it and cleaned up before it. [lifecycle.DependsOn]
// adds dependencies by hand. The graph is read from [fx.DotGraph], the
// view fx gives of every constructor in the application.
//
// # Stopping
//
// Every component built from a provider, and so every hook it appends,
// stops before the providers are cleaned up, whatever the order of the
// options given to fx.New: the registry's hooks are appended when the
// registry is built, which is before any provider can be. fx.StopTimeout
// bounds the whole stop. If the application's start fails anywhere, the
// providers initialized so far are cleaned up.
package fxmodule
