package testkit

import (
	"context"
	"time"
)

// DeadlineOnly returns a context that reports a deadline d from now and
// never ends: neither at that deadline nor ever. It tests code that cuts
// its own waits to fit its context's deadline (a grace period, a drain):
// with this context, only those cuts can end the waits, so a test that
// sees them end has seen the cuts, however slow the machine is; with a
// real deadline, the work that follows the cuts would also have to fit
// in what they leave. Bound the call with [Within].
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
