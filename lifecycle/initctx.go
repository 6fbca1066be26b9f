package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// initCtx is the context an Initialize is called with: Start's context,
// bounded by the provider's deadline. context.WithTimeout would make a
// timer, a channel and a link into Start's context for every provider, and
// most Initialize methods of a large registry never ask for Done. So
// initCtx makes them, as a real context.WithDeadline, only when Done is
// first asked for; until then Err reads the clock and Start's context.
// The deadline itself is enforced by Start's watchdog (see initSeq), not
// by this context.
//
// Once a real context is made, every method answers from it, Value
// included: a context derived from this one then finds the real one's
// cancellation the way it finds any context's, with no goroutine of its
// own. Once the Initialize has returned, release ends the context as
// WithTimeout's cancel would: Err is then Canceled, unless the deadline or
// Start's context had ended it first.
type initCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex         // guards the fields below
	real   context.Context    // made when Done is first asked for
	cancel context.CancelFunc // real's
	ended  error              // set by release if real was never made
}

func newInitCtx(parent context.Context, deadline time.Time) *initCtx {
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &initCtx{parent: parent, deadline: deadline}
}

func (c *initCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// String names the context as the standard ones do, from the fields that
// never change: printing it must not race with a Done.
func (c *initCtx) String() string {
	return fmt.Sprintf("%v.WithDeadline(%v)", c.parent, c.deadline)
}

func (c *initCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.real != nil:
		return c.real.Done()
	case c.ended != nil:
		return closed
	}
	c.real, c.cancel = context.WithDeadline(c.parent, c.deadline)
	return c.real.Done()
}

func (c *initCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.real != nil:
		return c.real.Err()
	case c.ended != nil:
		return c.ended
	}
	return c.clockErr()
}

func (c *initCtx) Value(key any) any {
	c.mu.Lock()
	real := c.real
	c.mu.Unlock()
	if real != nil {
		return real.Value(key)
	}
	return c.parent.Value(key)
}

// clockErr is Err for a context whose Done was never asked for. c.mu is
// held.
func (c *initCtx) clockErr() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release ends the context once its Initialize has returned.
func (c *initCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real != nil {
		c.cancel()
		return
	}
	if c.ended = c.clockErr(); c.ended == nil {
		c.ended = context.Canceled
	}
}
