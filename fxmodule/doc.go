// Package fxmodule wires the lifecycle registry into an fx application.
//
// # Use
//
//	fx.New(
//		fxmodule.Module,
//		fxmodule.Provide(NewDatabase, NewCache),
//		fxmodule.Provide(NewOllama, lifecycle.Timeout(5*time.Second)),
//		fx.Provide(NewRepository), // takes the database
//		fx.Invoke(Serve),
//	)
//
// [Provide] declares provider constructors as fx.Provide declares
// constructors: it takes what fx.Provide takes (functions, with any
// parameters and fx.In structs, returning providers, values and fx.Out
// structs and optionally an error; an fx.Annotated; fx.Annotate's result
// with fx.As, fx.ParamTags, fx.ResultTags, fx.From, fx.OnStart and
// fx.OnStop; fx.Private), and [lifecycle.RegisterOption]s besides. Each
// result that implements [lifecycle.Provider], or field of an fx.Out
// result, is a provider; every value reaches the rest of the graph as
// fx.Provide would give it. [Module] builds the registry, injectable as a
// *lifecycle.Registry, and manages every provider declared. Include it
// once: a second copy fails fx.New ("already provided by
// fxmodule.newSession"). Provide without Module fails fx.New, saying so.
//
// The rule: an fx program means the same with fxmodule.Provide as with
// fx.Provide and hooks that call Initialize on start and the cleanup on
// stop, except for what this module adds (cleanups run concurrently where
// no dependency orders them, each bounded and reported) and for the
// differences listed at the end, each with its reason.
//
// # Order: a place among fx's hooks for each provider
//
// fx starts hooks in the order they were appended, which is the order
// their components were built, and stops them in reverse. Each provider
// takes its place in that order: its wrapper appends the provider's hooks
// when fx builds it, before calling its constructor. So, whatever the
// order of the options given to fx.New:
//
//   - a component the provider was built from, directly or through other
//     constructors, was built first: it starts before the provider is
//     initialized and stops after the provider is cleaned up;
//   - a component built from the provider, hooks that its own constructor
//     appends included, starts after it is initialized and stops before
//     its cleanup begins;
//   - a component built from the *lifecycle.Registry (an engine that
//     leases providers by id, an admin server) comes after every provider,
//     Private ones included, since the registry is given to the graph only
//     once all are built.
//
// The hooks coordinate with one registry Stop, so that providers are still
// cleaned up concurrently. A provider's OnStop hook runs when fx has
// stopped everything appended after it; it allows the provider's
// cleanup (see lifecycle.Staged), which then begins as soon as the cleanups
// of the providers that depend on it have ended, and the hook returns at
// once, so that fx goes on to the next hook while the cleanup runs. Only a
// provider built from a component that has hooks of its own waits in its
// hook for its cleanup to end, since fx stops that component next. The
// module's own hooks come before every provider's: the first registers the
// providers and starts the registry; the last allows the cleanup of whatever fx did not
// reach and returns the errors the provider hooks did not.
//
// # Dependencies
//
// A provider depends on every other provider its constructor receives: as
// a parameter, an fx.In field or a group member, found by identity (the
// very value another provider's constructor built). Through other
// constructors (a repository built from the database) and decorators,
// dependencies are read from fx's graph, which the module reads from the
// app's tree of modules: each module's constructors (fx.Provide,
// fx.Supply, fx.Annotate's results with their fx.OnStart and fx.OnStop
// hooks) and decorators (fx.Decorate, fx.Replace), with the exact types
// they take and give, so that types that print alike, from two packages
// both named store or local to two functions, are never confused. A
// consumer sees what fx lets it see: the fx.Private constructors of its
// own module or of the nearest one around it that has one (which hide
// those further out, as in fx), the others everywhere, and the decorators
// of its module and those around it, whose inputs, even those a decorator
// keeps only in a closure, are its dependencies too. What a decorator of a
// provider's own value took (a cache it wired in, returning the provider
// or a new value, the one managed) is a possible dependency of the
// provider, as is a provider that a received value held when the
// constructor received it, a few levels down: a value fx.Replace gave
// holding another, or a shared component (a health registry, a router)
// that providers registered with, which a provider built from it may use
// them through; it is kept, as fx's order keeps it, unless it would close
// a cycle, or have fx stop a component with hooks before a provider fx
// built after it from that component is cleaned up. Values are looked into
// six levels down, through the first 64 elements of each slice or map,
// and a provider is found in them by its pointer (a provider that is a
// struct value, with value receivers, is found by type and name alone):
// a hub deeper or larger than that orders only what it shows (declare the
// rest with lifecycle.DependsOn). Every input of a constructor is built
// before it, so a provider built later is never taken for one.
// [lifecycle.DependsOn] adds dependencies by hand; one on a provider that
// fx builds later brings that provider's Initialize forward to its
// dependent's turn, and the dependent's stop hook waits for its cleanup.
// If that provider is built from a component with hooks that fx builds
// after the dependent, fx would start that component too late and stop it
// too early: the start fails, saying to let the dependent's constructor
// take the provider.
//
// One Provide option given to several fx.Modules is one constructor that
// the graph cannot tell apart in each: what it reaches is kept for each
// of its providers, ordering more than needed but never less, and never
// into a cycle, with those lifecycle.DependsOn declares either.
//
// Providers are registered in the order fx builds them, which follows the
// order of the Provide options, a module's after its parent's (fx provides
// a module's constructors after its parent's).
//
// # Decorators and replacements
//
// fx.Replace and a replacing fx.Decorate (one that does not take the
// original) win, as in fx: the replaced constructor is never called, and
// the replacement is managed only if a Provide declared it (a fake given
// with fx.Replace is the test's own). A decorator that takes the original
// changes the value consumers receive: the changed value is the one
// initialized and cleaned up, and the original, which no one sees, is left
// alone (a provider acquires nothing in its constructor). A decorator that
// wraps the original without lifecycle methods of its own (a tracing
// wrapper) leaves the original managed: the wrapper delegates to it. A
// wrapper with a life of its own (its own id, and Initialize or a cleanup
// method) is managed as well as the original, depending on it: initialized
// after it and cleaned up before it. A decorator that hands over another
// provider, managed already, leaves the original unmanaged. The value is
// looked at where the provider is declared, with the decorators in scope
// there, as fx.Annotate's first fx.As and fx.ResultTags expose it; a
// Provide option used in several modules is not looked at.
//
// Every provider declared is built and managed, even if nothing consumes
// it, as if an fx.Invoke took it: a service reaches providers through the
// registry (by id), which fx cannot see. To leave one out of an app (a
// test's), replace it: fx.Replace(fake).
//
// # Errors and timeouts
//
// fx's and dig's errors about a provider constructor (a missing
// dependency, a type provided twice, a panic under fx.RecoverFromPanics)
// name the user's function by file and line, as they do without this
// module; so do a constructor's own error, a duplicate provider id (with
// both types) and a missing Module. fxmodule reads some of fx's
// unexported shapes (fx.Annotate's result, its annotations and the
// function its Build method gives dig, and the app's tree of modules,
// reached from fx.Shutdowner, for the graph and the names of private
// providers); it checks, once per app, that the fx it runs with has them,
// and fails fx.New naming the fx it was built against if not.
//
// fx.StartTimeout and fx.StopTimeout bound the start and the stop, and
// each provider's Initialize and cleanup, as they bound a hook: the
// registry has no timeout of its own ([lifecycle.NoTimeout]) unless
// [lifecycle.Timeout] given to Provide, or [lifecycle.WithDefaultTimeout]
// given to [WithRegistryOptions], asks for less. The module's hooks return
// a little before fx's deadline (a tenth of the time left, at least 20ms
// and at most 250ms), so that app.Start's and app.Stop's errors name the
// providers that failed or hung rather than fx's bare context error. fx
// lets no hook's error through once its deadline has passed: when fx's
// stop deadline passes with a provider's cleanup still running, whatever
// the order of the other hooks, an error-level line names it, through the
// graph's *zap.Logger or else on standard error.
//
// If a provider's Initialize fails, or its hook runs out fx's start
// deadline, fx stops what started; the providers initialized are cleaned
// up, each bounded by as long as fx gave the start
// (its StartTimeout) rather than by the start context that ran out. fx
// returns from app.Start at that context's deadline whatever its hooks do:
// cleanups that have not ended by then go on (the error says so), and
// Registry.Stop waits for them. A Registry.Stop called by hand otherwise
// waits for fx's hooks to allow each provider's cleanup, or for its
// context to end. A start that fails in a plain hook after the providers'
// (or runs out its deadline there) is fx's to roll back: it runs the stop
// hooks of what started, the providers' included, only while its context
// allows.
//
// A Registry.Stop called while fx starts the app ends the start: the
// registry cancels its own Start, and the module cancels the Initialize
// that a provider's hook runs, so the start fails at once with an error
// that is [lifecycle.ErrStopped], fx rolls back (which allows the
// providers' cleanups), and the Stop cleans up what was initialized
// within its own context. That is how a service ends its start on
// SIGTERM: cancelling the context given to app.Start would not do, since
// fx hands its rollback that same context, done, and so runs no OnStop
// hook.
// [EventLogger] logs the events of such a start at debug level.
//
// # Logging
//
// Module logs through the graph's *zap.Logger, if any, and leaves fx's own
// events to the application's logger; [EventLogger] sends them to zap. In
// fx's events, a provider's hooks are fxmodule.(*provider).initialize-fm
// and fxmodule.(*provider).cleanUp-fm; its entry in the registry's group,
// fxmodule.managedProvider, is given by fx.Annotated{Group:
// "gleitzeit.providers", Target: reflect.makeFuncStub()}; and each
// constructor has an invoke, fxmodule.(*decl).requireModule-fm, that fails
// the app if Module is missing.
//
// # Differences from fx
//
// What an fx program written with fxmodule.Provide does differently from
// its twin written with fx.Provide and hooks, and why:
//
//   - Cleanups run concurrently where no dependency orders them, where fx
//     runs OnStop hooks one at a time. Once fx has reached a provider's
//     stop hook, fx's stop deadline ends every cleanup (each is reported,
//     and those that had not begun begin then, with a done context), where
//     fx skips the hooks after one that ran out its time. A plain hook that
//     runs out fx's deadline before fx reaches any provider's hook leaves
//     every provider as fx would: not cleaned up, until a Registry.Stop.
//     This is what the module is for.
//   - Every provider declared is built, even if nothing consumes it (see
//     Decorators and replacements): the registry reaches providers by id.
//   - fx's Provided and Run events name a provider constructor
//     fx.Annotate(reflect.makeFuncStub()), and fx prefixes some errors
//     with it: fx names a function by its code pointer, and the function
//     fx calls, which takes the user's parameters and the registry, can
//     only be made by reflect.MakeFunc. The errors themselves, and their
//     locations, name the user's function.
//   - Hooks a provider constructor appends itself run after the provider's
//     Initialize and before its cleanup: the provider's hooks are appended
//     first.
//   - A provider's Initialize is given up to 250ms less than fx's start
//     deadline, and the module's stop hooks return as much before fx's
//     stop deadline while the cleanups go on to the deadline itself (see
//     Errors and timeouts), so that the error can say which provider hung.
//   - Two fx.Private providers of one id in two modules (one module factory
//     used twice) are registered after the innermost modules that tell
//     them apart: eu.db and us.db, when their ids meet (one alone keeps
//     its id). Those their modules cannot tell apart are numbered: one
//     Provide option given to two modules is db and db@2, a module
//     factory used thrice under one name m.db, m.db@2 and m.db@3; so is a
//     name that another provider's id takes.
//   - Providers are built when Module's invoke runs, which fx runs before
//     the root's own invokes, in declaration order. A hook that an
//     fx.Invoke appends for a component a provider is built from (the
//     pattern fx.Invoke(func(lc fx.Lifecycle, c *Conn) {...})) then comes
//     after the provider's: let the component's constructor append it, or
//     use fx.OnStart and fx.OnStop annotations.
//   - A decorator of a value group that returns new members: the members
//     the constructors built are the ones managed, as plain fx's hooks
//     would run theirs. Of wrappers chained by decorators in nested
//     modules, the original and the outermost are managed.
//   - A provider whose value fx.Decorate changes inside its own fx.Module:
//     the changed value, which the module sees, is the one managed, even if
//     the root, outside the decorator's scope, receives the original. A
//     value that replaces one of several results of one constructor is not
//     managed; the value the constructor built is.
//   - The session's constructor takes the graph's *zap.Logger and the
//     registry's options: a *zap.Logger built from a provider, or a
//     provider that takes the *lifecycle.Registry, makes a cycle fx
//     refuses. Reach providers through the registry by id instead.
//   - A soft value group sees the providers among its members, which
//     every provider being built puts there; plain fx would build them
//     only for another consumer.
//   - Provide does not take a slice of providers flattened into a group
//     (fx.ResultTags(`group:"x,flatten"`)): provide them one by one.
//   - Provide does not take a variadic constructor through fx.Annotate
//     (the function fx calls would have to be variadic and annotated at
//     once); a plain variadic one it takes, and fx leaves the variadic
//     parameter empty, as it does for fx.Provide. An fx.OnStart or
//     fx.OnStop hook on a provider constructor takes its results and its
//     parameters but those fx.From changes.
//   - An app is started once: a registry that has stopped does not start
//     again, as an fx app's hooks would.
//   - A panic in Initialize or in a cleanup is an error that names the
//     provider, where fx's own hook would crash the process.
//   - fx's errors about a provider's constructor come through Module's
//     invoke, which builds every provider: they begin with fxmodule.readGraph
//     and registryOf, where plain fx names the invoke that needed the value.
//   - A Registry.Stop called while fx runs hooks that come after the last
//     provider's does not end app.Start: fx gives the module no hook after
//     those. The application calls app.Stop once app.Start returns.
//   - Dependencies are found as described under Dependencies; where one
//     Provide option is given to several modules, what each of its
//     constructors reaches is kept for all its providers (ordering more
//     than needed, never less).
package fxmodule
