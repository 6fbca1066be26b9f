package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
)

// Provider is a long-lived resource with a lifecycle: an HTTP session, a
// database pool, a buffered file, a child process. Its ID names it in the
// registry, in logs and in reports, and must be unique among the providers
// registered at one time.
//
// A Provider acquires its resources in Initialize, never in its constructor,
// so that a program that is built but never started holds nothing.
type Provider interface {
	ID() string
}

// Initializer is implemented by a provider that acquires resources when the
// registry starts. The context carries the provider's timeout.
type Initializer interface {
	Initialize(ctx context.Context) error
}

// Cleaner is the preferred cleanup method. The context's deadline is the
// earlier of the provider's timeout and the stop context's; a Cleanup that
// overruns it is no longer waited for.
type Cleaner interface {
	Cleanup(ctx context.Context) error
}

// Shutdowner is the cleanup method used when a provider has no Cleanup.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// HealthChecker is implemented by a provider that can report on its own
// health. The registry bounds each check by its health timeout.
type HealthChecker interface {
	HealthCheck(ctx context.Context) Health
}

// errCloser and closer are the last two cleanup methods tried, in that order:
// the io.Closer shape, then a Close that cannot fail.
type errCloser interface{ Close() error }

type closer interface{ Close() }

// CleanupMethod returns the name of the method the registry calls to clean
// p up: "Cleanup", else "Shutdown", else "Close" (the error-returning form
// first), or "" when p has none of them and its cleanup will be skipped.
func CleanupMethod(p Provider) string {
	name, _ := cleanupMethod(p)
	return name
}

// CleanupFunc returns the method CleanupMethod names, as the registry
// calls it, or nil: for tests that call a provider's cleanup themselves
// (package lifecycletest).
func CleanupFunc(p Provider) func(context.Context) error {
	_, f := cleanupMethod(p)
	return f
}

// cleanupMethod picks exactly one cleanup method, in the contract's order,
// and returns it with its name.
func cleanupMethod(p Provider) (string, func(context.Context) error) {
	switch c := p.(type) {
	case Cleaner:
		return "Cleanup", c.Cleanup
	case Shutdowner:
		return "Shutdown", c.Shutdown
	case errCloser:
		return "Close", func(context.Context) error { return c.Close() }
	case closer:
		return "Close", func(context.Context) error { c.Close(); return nil }
	}
	return "", nil
}

// ValidateProvider returns the error Register gives a provider it cannot
// hold: nil, a nil pointer (whose first method call would panic), or one
// with an empty id.
func ValidateProvider(p Provider) error {
	if isNil(p) {
		return errors.New("a nil provider")
	}
	if p.ID() == "" {
		return fmt.Errorf("a provider of type %T with an empty id", p)
	}
	return nil
}

// isNil reports whether p is nil or holds a nil pointer, map, slice, func
// or channel.
func isNil(p any) bool {
	if p == nil {
		return true
	}
	switch v := reflect.ValueOf(p); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// Health is one provider's answer to a health check.
type Health struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Resources shows what the provider holds, such as "http_session": true
	// or "open_connections": 3. The registry redacts secrets from string
	// values before a report leaves it.
	Resources map[string]any `json:"resources,omitempty"`
}

// Status is a provider's health. The zero value is StatusUnknown.
type Status int

// The statuses, in increasing order of severity except for StatusUnknown,
// which ranks between healthy and degraded (see [HealthReport]).
const (
	StatusUnknown Status = iota
	StatusHealthy
	StatusDegraded
	StatusUnhealthy
)

var statusNames = [...]string{"unknown", "healthy", "degraded", "unhealthy"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the status as its name, for JSON health reports.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status's name.
func (s *Status) UnmarshalText(text []byte) error {
	for i, name := range statusNames {
		if name == string(text) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown health status %q", text)
}

// severity orders statuses from best to worst: an unknown status is worse
// than a healthy one, since nothing vouches for it, but better than any
// status that reports a problem.
func (s Status) severity() int {
	switch s {
	case StatusHealthy:
		return 0
	case StatusUnknown:
		return 1
	case StatusDegraded:
		return 2
	default:
		return 3
	}
}

// worse returns the more severe of two statuses.
func worse(a, b Status) Status {
	if b.severity() > a.severity() {
		return b
	}
	return a
}
