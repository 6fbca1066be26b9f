package app

import (
	"context"
	"sync"
	"time"
)

// taskDeadlines makes the deadline of every task whose timeout is d the
// test's: it passes when the test calls the function the channel hands it
// for that task, in the order the tasks began, not when d has passed. A
// test can so let a task reach its provider before its deadline passes,
// however slow the machine. Tasks with other timeouts keep real ones.
func (s *service) taskDeadlines(d time.Duration) <-chan func() {
	passes := make(chan func(), 16)
	s.engine.withTimeout = func(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
		if timeout != d {
			return context.WithTimeout(ctx, timeout)
		}
		c := &heldDeadline{Context: ctx, done: make(chan struct{})}
		stop := context.AfterFunc(ctx, func() { c.end(ctx.Err()) })
		passes <- func() { c.end(context.DeadlineExceeded) }
		return c, func() { stop(); c.end(context.Canceled) }
	}
	return passes
}

// heldDeadline is a context whose deadline passes when end is called with
// context.DeadlineExceeded; it ends with its parent too. It reports no
// deadline, so that nothing below it sets a timer of its own.
type heldDeadline struct {
	context.Context // the parent
	done            chan struct{}
	once            sync.Once
	mu              sync.Mutex // guards err
	err             error
}

func (c *heldDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *heldDeadline) Done() <-chan struct{}       { return c.done }

func (c *heldDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *heldDeadline) end(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	})
}
