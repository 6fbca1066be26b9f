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

// callInit calls n's Initialize through protect, and marks it returned
// however it returns, a panic included. n.init is a func value already, so
// no closure is allocated per provider.
func (n *node) callInit(ctx context.Context) error {
	defer n.initReturns()
	return protect(ctx, n.init)
}
