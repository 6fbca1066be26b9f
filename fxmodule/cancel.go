package fxmodule

import (
	"context"
	"errors"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// errStopBegan is the cause of a provider's Initialize context that a
// Registry.Stop, begun while fx starts the app, ended.
var errStopBegan = errors.New("fxmodule: the registry's Stop began during the start")

// stopBegan is closed, through the session's observer, once a
// Registry.Stop begins cleaning up: a Stop called by hand while fx starts
// the app (a service that gets SIGTERM during its start) ends the start.
// The registry cancels its own Start; the Initialize that a provider's
// hook is running is the module's to cancel.
type stopBegan struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newStopBegan() stopBegan {
	ctx, cancel := context.WithCancel(context.Background())
	return stopBegan{ctx: ctx, cancel: cancel}
}

// observe notes a Stop's cleanup beginning. A rollback's is not one: it
// follows a start that failed already.
func (b stopBegan) observe(e lifecycle.Event) {
	if c, ok := e.(lifecycle.CleanupBegan); ok && c.Trigger == lifecycle.TriggerStop {
		b.cancel()
	}
}

// until returns ctx, cancelled also once a Stop begins, with errStopBegan
// as its cause.
func (b stopBegan) until(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(b.ctx, func() { cancel(errStopBegan) })
	return ctx, func() {
		unhook()
		cancel(context.Canceled)
	}
}
