package lifecycle

import (
	"context"
	"runtime/debug"
	"sync/atomic"
)

// protect calls fn, turning a panic into a *PanicError, so that no provider
// can crash the process through the registry.
func protect(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

// callBounded runs fn on a goroutine of its own and waits until fn returns
// or ctx is done, whichever comes first. It reports whether fn returned in
// time; when it did not, late receives fn's error once fn finally returns.
//
// Exactly one side claims the result: fn's goroutine when fn returned while
// ctx was still live, the waiter otherwise. A return that comes after the
// deadline counts as late even if the waiter has not noticed the deadline
// yet, so the outcome follows the clock and not select's coin toss.
func callBounded(ctx context.Context, fn func(context.Context) error, late func(error)) (error, bool) {
	var claimed atomic.Bool
	result := make(chan error, 1)
	go func() {
		err := protect(ctx, fn)
		if ctx.Err() == nil && claimed.CompareAndSwap(false, true) {
			result <- err
			return
		}
		if late != nil {
			late(err)
		}
	}()
	select {
	case err := <-result:
		return err, true
	case <-ctx.Done():
		if claimed.CompareAndSwap(false, true) {
			return nil, false
		}
		// fn returned in time and its result is on its way.
		return <-result, true
	}
}
