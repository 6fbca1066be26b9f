package lifecycle

import (
	"errors"
	"fmt"
)

// Sentinel errors, for matching with errors.Is. Each reaches the caller
// wrapped in a [ProviderError] when it concerns one provider.
var (
	// ErrDuplicateID: a provider with that id is registered already. The
	// registry never replaces one provider with another silently.
	ErrDuplicateID = errors.New("duplicate provider id")
	// ErrNotFound: no provider with that id is registered.
	ErrNotFound = errors.New("provider not found")
	// ErrStopped: the registry, or that provider, is stopping or stopped.
	ErrStopped = errors.New("registry stopped")
	// ErrHasDependents: the provider cannot be unregistered while another
	// registered provider depends on it.
	ErrHasDependents = errors.New("provider has dependents")
	// ErrCycle: the declared dependencies form a cycle.
	ErrCycle = errors.New("dependency cycle")
	// ErrNotReady: the provider is registered but not initialized, so it
	// cannot be leased yet.
	ErrNotReady = errors.New("provider not initialized")
)

// ProviderError is an error about one provider: what was being done to it
// and why that failed. It unwraps to its cause.
//
// Its message is redacted with [Redact], so a password or token that the
// cause carries (a DSN in a driver's error, say) does not reach a log line
// or a report. The cause itself is left untouched for errors.Is and
// errors.As.
type ProviderError struct {
	ProviderID string
	Op         string // "register", "start", "initialize", "cleanup", "unregister", "acquire", "health"
	Err        error
}

func (e *ProviderError) Error() string {
	return fmt.Sprintf("provider %q: %s: %s", e.ProviderID, e.Op, Redact(e.Err.Error()))
}

func (e *ProviderError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from a provider's method, with the stack
// of the goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so that a provider
// that panics with an error can still be matched with errors.Is.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func providerError(id, op string, err error) error {
	return &ProviderError{ProviderID: id, Op: op, Err: err}
}
