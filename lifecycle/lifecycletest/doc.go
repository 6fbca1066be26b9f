// Package lifecycletest checks that a provider keeps the contract a
// [lifecycle.Registry] relies on, as testing/fstest checks a file system:
// one call, [Run], with a function that makes a fresh provider, and a
// subtest per property, named after it:
//
//   - Lifecycle: Initialize, then the registry's cleanup, succeed, and the
//     cleanup runs once; a second cleanup, by the provider's own method,
//     is harmless or returns an error, and does not panic.
//   - CleanupWithoutInitialize: a cleanup after a failed Initialize (one
//     whose context was done) or with no Initialize at all holds nothing
//     and does not panic.
//   - ContextDone: Initialize and the cleanup return promptly (within
//     [Bound]) when their context is done already or ends midway.
//   - Health: the health reports before Initialize, after it and after
//     the cleanup agree with the resources they name: not healthy before
//     Initialize nor after the cleanup, and then every resource named as
//     held released (open, running, connected, reachable false; in_use,
//     open_*, *_in_flight 0; see [Held]).
//   - NoLeaks: no goroutine, file descriptor, child process or listening
//     socket outlives the cleanup: one between health checks, one given a
//     context that is done already (a Stop out of time gives its last
//     cleanups such a context, and a close that needs no time must still
//     happen), and one raced by a health check (unless Concurrent is
//     skipped: the provider is not for concurrent use).
//   - Concurrent: health checks during the cleanup, and the cleanup during
//     a health check, return and do not panic; run the test with -race for
//     the race detector to judge them too.
//   - Identity: the ID is non-empty and stable, and the secret the caller
//     names with [Secret] appears in no error, health message or resource.
//
// [Skip] leaves a property out, with a reason the test output shows;
// [Bound] sets how long a call may go on once its context is done, and
// [Timeout] how long any other may take. NoLeaks reads /proc and is
// skipped, saying so, where there is none. TestJournal, in this package's
// example_test.go, is a provider's test written with the kit; every
// provider of this module runs it against its real peer.
package lifecycletest
