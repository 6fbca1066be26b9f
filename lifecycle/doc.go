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
// Cleanups begun together share a few worker goroutines; when none of them
// has ended for 100µs, every cleanup still waiting gets a goroutine of its
// own, so a slow or hung cleanup delays another's start by that much at
// most.
//
// # Bounds
//
// Each cleanup gets a context whose deadline is the earlier of its
// provider's timeout ([Timeout], [WithDefaultTimeout]) and Stop's context.
// A cleanup that overruns is recorded as timed out and no longer waited
// for. Once Stop's context is done, Stop begins every remaining cleanup
// with that done context and returns: it never waits past its context.
//
// # Exactly once
//
// Every registered provider's cleanup runs exactly once, whichever of Stop,
// a failed Start's rollback and [Registry.Unregister] reaches it first.
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
