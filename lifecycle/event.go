package lifecycle

import "time"

// An Observer receives the registry's events as typed values: the same
// events that its log lines describe, so that metrics and tests need no log
// scraping.
//
// Observe is called synchronously, sometimes from several goroutines at
// once (cleanups run concurrently, and a provider abandoned by Stop may
// return later). It must be safe for concurrent use and must not block: a
// slow observer slows the stop it observes. It may call Report,
// Providers, IDs, Health, Acquire, AllowCleanup and Register, and Stop
// from an observer of Start's events. It must not otherwise call Stop or
// Unregister: they wait for cleanups that the goroutine calling the
// observer may be the one to begin, so they wait until their context
// ends.
//
// A panic in Observe is recovered and logged at error level. An observer
// that calls runtime.Goexit (as t.FailNow does) ends the goroutine that
// called it: a Start or Stop then returns an error saying so to any
// caller that waits for it, and the cleanups of a Stop or a rollback not
// yet begun are begun at once, out of order, so that each still runs
// once.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// An Event is one of the types below. Errors in events are the ones the
// registry returns: *ProviderError values whose messages are redacted.
type Event interface{ event() }

// Trigger says why a provider was cleaned up.
type Trigger string

// The triggers of a cleanup.
const (
	TriggerStop       Trigger = "stop"       // Registry.Stop
	TriggerRollback   Trigger = "rollback"   // a failed Start, or a failed Register after Start
	TriggerUnregister Trigger = "unregister" // Registry.Unregister
)

// ProviderRegistered: a provider joined the registry.
type ProviderRegistered struct {
	ID        string
	DependsOn []string
	Timeout   time.Duration
}

// ProviderInitialized: a provider's Initialize ended. Err is nil on success.
// A provider without Initialize is reported with a zero Duration.
type ProviderInitialized struct {
	ID       string
	Began    time.Time // when Initialize began
	Duration time.Duration
	Err      error
}

// StartBegan: Start began initializing providers.
type StartBegan struct {
	Providers int // to initialize
	Staged    int // left to StartProvider (see Staged)
}

// StartEnded: Start ended. Err is nil on success.
type StartEnded struct {
	Providers int // initialized successfully
	Staged    int // left to StartProvider (see Staged)
	Duration  time.Duration
	Err       error
}

// CleanupBegan: a stop, a rollback or an unregister began cleaning up
// providers.
type CleanupBegan struct {
	Trigger   Trigger
	Providers int
}

// ProviderCleaned: one provider's cleanup ended (or was abandoned).
type ProviderCleaned struct {
	ID      string
	Trigger Trigger
	Outcome Outcome
}

// CleanupEnded: every cleanup of a stop, a rollback or an unregister has
// ended or been abandoned. Report holds this run's outcomes; it is left
// empty when the registry has no observer but its logger, which needs only
// the counts.
type CleanupEnded struct {
	Trigger  Trigger
	Report   StopReport
	Duration time.Duration
	OK       int // outcomes ok
	Skipped  int // skipped: no cleanup method, or never initialized (see Outcome.Reason)
	Failed   int // error, panic, timeout or abandoned
}

// ProviderReturnedLate: a provider's method returned after the registry had
// stopped waiting for it (its outcome was timeout or abandoned). It tells
// operators that the goroutine is gone and what the method finally said.
type ProviderReturnedLate struct {
	ID       string
	Op       string // "initialize", "cleanup" or "health"
	Duration time.Duration
	Err      error
}

func (ProviderRegistered) event()   {}
func (ProviderInitialized) event()  {}
func (StartBegan) event()           {}
func (StartEnded) event()           {}
func (CleanupBegan) event()         {}
func (ProviderCleaned) event()      {}
func (CleanupEnded) event()         {}
func (ProviderReturnedLate) event() {}
