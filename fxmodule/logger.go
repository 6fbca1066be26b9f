package fxmodule

import (
	"errors"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// EventLoggerParams is what [EventLogger] takes from the graph: a
// *zap.Logger, if there is one. It is exported so that EventLogger can be
// called, or wrapped, outside fx.WithLogger.
type EventLoggerParams struct {
	fx.In
	Logger *zap.Logger `optional:"true"`
}

// EventLogger sends fx's events to the graph's *zap.Logger through
// [fxevent.ZapLogger], or nowhere if the graph has none. Pass it to
// fx.WithLogger at the root of an application to log all of fx's events
// with the rest of the service's. Routine events (a constructor provided,
// a hook run) are logged at debug level, errors at error level: a service
// logging at info keeps its startup and shutdown readable. A start that a
// Registry.Stop ended (its error is [lifecycle.ErrStopped]: the
// application stopped it on purpose, a service that got SIGTERM while it
// started) is routine too: the application says so itself. So are fx's
// events of a start that a provider's Initialize failed: the registry has
// logged that failure, naming the provider, and app.Start returns it; fx
// would log it three times more.
func EventLogger(p EventLoggerParams) fxevent.Logger {
	if p.Logger == nil {
		return fxevent.NopLogger
	}
	l := &fxevent.ZapLogger{Logger: p.Logger.Named("fx")}
	l.UseLogLevel(zapcore.DebugLevel)
	stopped := &fxevent.ZapLogger{Logger: l.Logger}
	stopped.UseLogLevel(zapcore.DebugLevel)
	stopped.UseErrorLevel(zapcore.DebugLevel)
	return eventLogger{ZapLogger: l, stopped: stopped}
}

// eventLogger logs the events of a start that a Registry.Stop ended, or
// that a provider's Initialize failed, through stopped, at debug level,
// and every other through ZapLogger.
type eventLogger struct {
	*fxevent.ZapLogger
	stopped *fxevent.ZapLogger
}

func (l eventLogger) LogEvent(e fxevent.Event) {
	var err error
	switch e := e.(type) {
	case *fxevent.OnStartExecuted:
		err = e.Err
	case *fxevent.RollingBack:
		err = e.StartErr
	case *fxevent.Started:
		err = e.Err
	}
	if errors.Is(err, lifecycle.ErrStopped) || initializeFailed(err) {
		l.stopped.LogEvent(e)
		return
	}
	l.ZapLogger.LogEvent(e)
}

// initializeFailed reports whether err is a provider's failed Initialize,
// which the registry logs itself.
func initializeFailed(err error) bool {
	pe, ok := errors.AsType[*lifecycle.ProviderError](err)
	return ok && pe.Op == "initialize"
}
