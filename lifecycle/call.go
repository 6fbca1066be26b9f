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
