package fxmodule

import (
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
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
// logging at info keeps its startup and shutdown readable.
func EventLogger(p EventLoggerParams) fxevent.Logger {
	if p.Logger == nil {
		return fxevent.NopLogger
	}
	l := &fxevent.ZapLogger{Logger: p.Logger.Named("fx")}
	l.UseLogLevel(zapcore.DebugLevel)
	return l
}
