// Package lifecycle is the engine of Gleitzeit: a registry of providers,
// the long-lived resources of a service (HTTP sessions, database pools,
// buffered files, child processes), that initializes them in dependency
// order and cleans them up when the service stops, in dependency order,
// concurrently where that order allows, each cleanup bounded by a timeout
// and kept apart from the others' errors, panics and hangs.
//
// It does not import fx; package fxmodule wires it into an fx application.
//
// # Providers
//
// A [Provider] has an ID and any of the optional methods: [Initializer] to
// acquire resources when the registry starts, [HealthChecker], and one
// cleanup method, chosen in this order: Cleanup(ctx) error ([Cleaner]),
// Shutdown(ctx) error ([Shutdowner]), Close() error, Close(). A provider
// with none is logged at warn level and reported as skipped.
//
// # Order and concurrency
//
// A provider that depends on another (see [DependsOn]) is initialized after
// it and cleaned up before it: B's cleanup begins only once the cleanups of
// all the providers that depend on B have ended, by returning, failing,
// panicking or timing out. Nothing else orders cleanups, so Stop takes the
// critical path of the dependency graph rather than the sum of its tiers.
// The goroutine that ends a cleanup begins the cleanups it unblocks, and
// runs the next one itself when that is all there is to do (a chain runs
// on one goroutine, as fx's hooks do). Cleanups begun together share a
// deadline. A batch of up to 128 gets a goroutine for each cleanup; a
// larger one shares a few, and when none of them has finished for 100µs,
// every cleanup still waiting gets a goroutine of its own (Go's runtime
// fires that timer up to a millisecond late while the process is otherwise
// idle). So a slow or hung cleanup holds back another's start only in a
// batch of more than 128, and by about a millisecond at most.
//
// Start runs the Initialize calls on one goroutine, one after another,
// watched from the caller's goroutine by one timer: a hung Initialize
// fails Start at its deadline all the same.
//
// # Cleanup follows Initialize
//
// As OnStop follows OnStart in fx, a provider is cleaned up only if its
// Initialize began: one that Start never reached holds nothing, and is
// reported skipped, with [ReasonNotInitialized] (logged at debug level:
// a start cut short is no fault of it). A provider without
// Initialize counts as initialized once Start reaches it. Whether a
// provider's Initialize begins and whether its cleanup is claimed are
// decided under one lock, so exactly one of "it began, and its cleanup
// waits for it" and "it never will" holds; once Stop has begun, Start
// begins no further Initialize (one it has just begun may still be
// entering, with a cancelled context). A cleanup never runs beside its
// provider's Initialize: it waits for an Initialize that Start stopped
// waiting for to return, and that wait holds back the cleanups of the
// providers it depends on, within its timeout. If the timeout runs out
// first, the bound wins, as for any cleanup that overruns: the outcome is
// timeout, the dependencies' cleanups go ahead, and Cleanup still runs,
// late, once Initialize returns, so that the provider releases what it
// holds itself.
//
// # Bounds
//
// Each cleanup gets a context whose deadline is the earlier of its
// provider's timeout ([Timeout], [WithDefaultTimeout]) and Stop's context.
// A cleanup that overruns is recorded as timed out and no longer waited
// for. Once Stop's context is done, Stop begins every remaining cleanup
// with that done context and returns: it never waits past its context.
// What it stopped waiting for is abandoned; a cleanup that then returns has
// its real result put in [Registry.Report] in place of abandoned, with
// [Outcome.Late] set.
//
// # Exactly once
//
// Every initialized provider's cleanup runs exactly once, whichever of
// Stop, a failed Start's rollback and [Registry.Unregister] reaches it
// first.
//
// # State
//
// Each provider's cleanup is one job with a mutex and a state (claimed,
// running, cut short, ended). Three parties may end it: the goroutine that
// ran its method, its deadline, and a Stop whose context is done; the first
// to end it under the mutex records the outcome, and the others find it
// ended. Callbacks that other goroutines run see only fields set before
// they were registered, or read under a lock held until those are set.
//
// # Staged providers
//
// A framework with an order of its own (fx, whose hooks start in the order
// components were built and stop in reverse) registers providers with
// Staged and steps through them: Registry.StartProvider initializes one
// when its turn comes, and Registry.Release frees its cleanup when the
// framework has stopped everything that used it. Stop still cleans up
// concurrently: a released provider's cleanup begins as soon as its
// dependents' have ended, whatever the framework does next. Package
// fxmodule is built on this.
//
// # Leases
//
// [Registry.Acquire] lends a provider out for one unit of work. A
// provider's cleanup waits, within its timeout, for its leases to be
// released; once Stop has begun, Acquire fails with [ErrStopped].
//
// # Reporting
//
// Stop returns the joined errors of the cleanups that failed, each a
// [*ProviderError]; [Registry.Report] gives every provider's method,
// duration and [Result]. A [zap.Logger] given with [WithLogger] and any
// [Observer] given with [WithObserver] see the same events. No error,
// health message or log line carries a password or token from a URL or a
// DSN: see [Redact].
package lifecycle
