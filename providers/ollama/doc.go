// Package ollama provides a client of the Ollama REST API as a lifecycle
// provider: generate and chat, streamed or not, embeddings, the list of
// models and the server's version, through the official client package
// (github.com/ollama/ollama/api) over an *http.Client whose transport the
// provider owns.
//
// # What it holds
//
// From Initialize to Cleanup, an HTTP transport and its connections to the
// server. Cleanup cancels the requests in flight, waits for them to
// return, and closes every connection; calls after it fail with
// [ErrClosed].
//
// # Failing fast
//
// Calls go through a circuit breaker (sony/gobreaker): after
// BreakerFailures consecutive failures (network errors, 5xx answers,
// timeouts; not 4xx answers, not calls the caller cancelled) it opens, and
// calls fail at once with [ErrUnavailable] for BreakerOpenFor, so that a
// dead server does not pile up timeouts; then one call tries again.
// Idempotent calls (Version, List) are retried with exponential backoff
// (cenkalti/backoff) on network errors and on 502, 503 and 504.
//
// Initialize does not require the server to be reachable, so a service can
// start without its LLM; HealthCheck reports reachability.
package ollama
