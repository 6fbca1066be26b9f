package lifecycle

import (
	"context"
	"errors"
	"runtime/debug"
)

// errGoexit is the result of a provider's method that called
// runtime.Goexit, as t.FailNow does in a test's fake, instead of returning.
var errGoexit = errors.New("called runtime.Goexit instead of returning")

// goCall runs fn(ctx) on a goroutine of its own, the only kind the
// registry starts, and calls done on that goroutine with fn's result once
// fn has returned, panicked (a *PanicError) or called runtime.Goexit
// (errGoexit). Whoever started it may stop waiting for it; done still
// runs, late, when fn ends.
//
// done runs from a deferred call because runtime.Goexit cannot be
// recovered: it runs the deferred calls and ends the goroutine.
func goCall(ctx context.Context, fn func(context.Context) error, done func(error)) {
	go func() {
		err := errGoexit // kept only if fn neither returns nor panics
		defer func() { done(err) }()
		err = protect(ctx, fn)
	}()
}

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
