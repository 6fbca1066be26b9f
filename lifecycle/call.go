package lifecycle

import (
	"context"
	"runtime/debug"
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

// callInit calls n's Initialize as protect would, and marks it returned
// however it returns, a panic included. It is protect written out for the
// one method every Start calls, without a closure to allocate for each
// provider.
func (n *node) callInit(ctx context.Context) (err error) {
	defer func() {
		n.initReturns()
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return n.init(ctx)
}
