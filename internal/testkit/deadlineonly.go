package testkit

import (
	"context"
	"time"
)

// DeadlineOnly returns a context that reports a deadline d from now but
// never ends, not even then. It is for code that cuts its own waits to fit
// its context's deadline (a grace period, a drain): only those cuts can
// then end the waits, so a test that sees them end has seen the cuts,
// however slow the machine; under a real deadline, the work after the cuts
// would also have to fit in what they leave. Bound the call with [Within].
//
// A context derived from it with a later deadline, as
// context.WithTimeout(ctx, time.Hour) is, reports its deadline and does
// not end either.
func DeadlineOnly(d time.Duration) context.Context {
	return deadlineOnly{Context: context.Background(), deadline: time.Now().Add(d)}
}

type deadlineOnly struct {
	context.Context
	deadline time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.deadline, true }
