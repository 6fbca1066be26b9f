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
// Shutdown(ctx) error ([Shutdowner]), Close() error, Close() (see
// [CleanupMethod]). An initialized provider with none is logged at warn
// level and reported as skipped, with [ReasonNoMethod].
//
// # Order and concurrency
//
// A provider that depends on another (see [DependsOn]) is initialized after
// it and cleaned up before it: B's cleanup begins only once the cleanups of
// all the providers that depend on B have ended, by returning, failing,
// panicking or timing out. Nothing else orders cleanups, so Stop takes the
// critical path of the dependency graph rather than the sum of its tiers.
//
// Every Initialize, cleanup and health check runs on a goroutine of its
// own, under a context with its deadline, as fx runs a hook: a caller
// that stops waiting for a hung one loses nothing but that goroutine. Start
// runs the Initialize calls one after another and waits for each, until it
// returns or its context ends. Stop's goroutine runs the cleanups' order:
// it begins each cleanup whose dependents have finished, and waits for the
// next one to finish, or for its context to end.
//
// A panic in any of them, or a call to runtime.Goexit (as t.FailNow makes
// in a test's fake), is an outcome like an error, naming the provider and
// the call. A panic in an [Observer] is logged at error level and goes no
// further.
//
// # Cleanup follows Initialize
//
// As OnStop follows OnStart in fx, a provider is cleaned up only if its
// Initialize began: one that Start never reached holds nothing, and is
// reported skipped, with [ReasonNotInitialized] (logged at debug level:
// a start cut short is no fault of it). A provider without Initialize
// counts as initialized once Start reaches it. Whether a provider's
// Initialize begins and whether its cleanup is claimed are decided under
// the registry's lock, so exactly one of "it began, and its cleanup waits
// for it" and "it never will" holds; once Stop has begun, no Initialize
// begins. A cleanup never runs beside its provider's Initialize: it waits
// for an Initialize that Start stopped waiting for to return, and that
// wait holds back the cleanups of the providers it depends on, within its
// timeout. If the timeout runs out first, the bound wins, as for any
// cleanup that overruns: the outcome is timeout, the dependencies'
// cleanups go ahead, and the cleanup method still runs, late, once
// Initialize returns, so that the provider releases what it holds itself.
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
// first: the first to claim it under the lock makes its one cleanup, and
// the others wait for that one.
//
// # States
//
// A provider moves through these states ([ProviderState]), forward only:
//
//	registered --Start or StartProvider begins Initialize--> initializing
//	registered --no Initialize method, when Start reaches it--> ready
//	initializing --Initialize returns nil in time--> ready
//	initializing --error, panic, Goexit, timeout, context done--> failed
//	registered, initializing, ready, failed --claimed by Stop, a rollback or Unregister--> cleaning
//	registered --claimed--> cleaned (skipped: never initialized)
//	cleaning --its outcome is recorded--> cleaned
//
// A cleanup, once claimed, is begun by its claimer (a Stop when its
// dependents have finished, or at once when its context is done; a
// rollback when its dependents have finished; Unregister at once). Its
// outcome is recorded once, by the first of three: its goroutine, when the
// method returns (ok, error, panic, Goexit) or, for a provider without
// one, when Initialize and leases are done (skipped); its timer, when the
// provider's own timeout ran out (timeout); its claimer, whose context is
// done (abandoned). A provider without a cleanup method and with nothing
// to wait for is skipped when begun, with no goroutine. A cleanup
// finishes, releasing the cleanups of what it depends on, when its outcome
// is recorded, except when it was abandoned while its method still ran:
// then when the method returns or its own timeout runs out. The claimer
// reports and returns the outcome as recorded; an abandoned cleanup whose
// method returns later shows its real result in [Registry.Report], marked
// late.
//
// # Locks
//
// The registry has one lock, Registry.mu. It guards the registry's phase,
// its providers and their order, Start's and Stop's results and the
// report, and every node's and cleanup's mutable fields (each field says
// so). No observer or provider method is called, and no channel is waited
// on, while it is held. The one send made with it held, on a run's
// channel, never blocks: the channel has room for every message the run
// can be sent (each cleanup finishes once, and each is allowed once).
//
// A run (a Stop or a rollback) keeps its scheduling state, the count of
// dependents left for each provider, in fields that only the goroutine
// executing the run touches; cleanups tell that goroutine when they
// finish through the run's channel.
//
// A health check in flight is shared through its done channel: it writes
// its answer before closing it, and readers read after.
//
// # Staged providers
//
// A framework with an order of its own (fx, whose hooks start in the order
// components were built and stop in reverse) registers providers with
// Staged and steps through them: Registry.StartProvider initializes one
// when its turn comes, and Registry.AllowCleanup lets its cleanup begin
// when the framework has stopped everything that used it. Stop still
// cleans up concurrently: an allowed provider's cleanup begins as soon as
// its dependents' have ended, whatever the framework does next. Package
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
//
// Each outcome has its Began time, and [Registry.StartReport] gives each
// Initialize's, so that a start and a stop can be drawn on a timeline
// (package lifecycle/timeline does). With [WithTracerProvider] the
// registry traces them too: a span per start, stop and Unregister, with a
// child per provider.
package lifecycle
