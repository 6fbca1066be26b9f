package lifecycle

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapObserver writes the registry's events to a zap logger, at the levels
// the contract fixes: info when a cleanup of many providers begins and ends,
// debug for each provider cleaned or never initialized, warn for each
// failure and for each initialized provider that has no cleanup method. Field names are stable so that log
// queries keep working: provider, method, result, duration, error.
type zapObserver struct{ log *zap.Logger }

func (z zapObserver) Observe(e Event) {
	switch e := e.(type) {
	case ProviderRegistered:
		if ce := z.log.Check(zapcore.DebugLevel, "provider registered"); ce != nil {
			timeout := zap.Duration("timeout", e.Timeout)
			if e.Timeout == NoTimeout {
				timeout = zap.String("timeout", "none: the caller's context bounds it")
			}
			ce.Write(zap.String("provider", e.ID), zap.Strings("depends_on", e.DependsOn), timeout)
		}
	case StartBegan:
		// A start of staged providers alone initializes none: they begin
		// as the application starts each (fxmodule's hooks), and the
		// application says when it has started.
		if ce := z.log.Check(startLevel(e.Providers, e.Staged), "initializing providers"); ce != nil {
			ce.Write(zap.Int("providers", e.Providers), zap.Int("staged", e.Staged))
		}
	case ProviderInitialized:
		if e.Err != nil {
			z.log.Warn("provider initialize failed", zap.String("provider", e.ID), zap.Duration("duration", e.Duration), zap.Error(e.Err))
		} else if ce := z.log.Check(zapcore.DebugLevel, "provider initialized"); ce != nil {
			ce.Write(zap.String("provider", e.ID), zap.Duration("duration", e.Duration))
		}
	case StartEnded:
		if e.Err != nil {
			z.log.Warn("providers not started", zap.Int("initialized", e.Providers), zap.Duration("duration", e.Duration), zap.Error(e.Err))
		} else if ce := z.log.Check(startLevel(e.Providers, e.Staged), "providers initialized"); ce != nil {
			ce.Write(zap.Int("providers", e.Providers), zap.Int("staged", e.Staged), zap.Duration("duration", e.Duration))
		}
	case CleanupBegan:
		z.log.Info("cleaning up providers", zap.String("trigger", string(e.Trigger)), zap.Int("providers", e.Providers))
	case ProviderCleaned:
		z.cleaned(e)
	case CleanupEnded:
		z.log.Info("providers cleaned up",
			zap.String("trigger", string(e.Trigger)),
			zap.Int("providers", e.OK+e.Skipped+e.Failed),
			zap.Int("ok", e.OK),
			zap.Int("skipped", e.Skipped),
			zap.Int("failed", e.Failed),
			zap.Duration("duration", e.Duration))
	case ProviderReturnedLate:
		// A late cleanup or initialize is news once; a health check that
		// hangs comes back late at every poll while its provider hangs,
		// which the health report says already (unhealthy: timed out), and
		// whoever polls it logs as one transition.
		level := zapcore.WarnLevel
		if e.Op == "health" {
			level = zapcore.DebugLevel
		}
		if ce := z.log.Check(level, "provider returned after the registry stopped waiting"); ce != nil {
			ce.Write(zap.String("provider", e.ID), zap.String("op", e.Op), zap.Duration("duration", e.Duration), zap.Error(e.Err))
		}
	}
}

// startLevel is the level of a start's lines: debug for one that
// initializes no provider but staged ones, which begin later.
func startLevel(providers, staged int) zapcore.Level {
	if providers == 0 && staged > 0 {
		return zapcore.DebugLevel
	}
	return zapcore.InfoLevel
}

func (z zapObserver) cleaned(e ProviderCleaned) {
	o := e.Outcome
	switch {
	case o.Reason == ReasonNotInitialized: // holds nothing: a start cut short, not a fault
		if ce := z.log.Check(zapcore.DebugLevel, "provider never initialized: nothing to clean up"); ce != nil {
			ce.Write(zap.String("provider", e.ID), zap.String("trigger", string(e.Trigger)))
		}
	case o.Reason == ReasonNoMethod:
		z.log.Warn("provider has no cleanup method", zap.String("provider", e.ID), zap.String("trigger", string(e.Trigger)))
	case o.Result == ResultSkipped:
		if ce := z.log.Check(zapcore.DebugLevel, "provider cleanup skipped"); ce != nil {
			ce.Write(zap.String("provider", e.ID), zap.String("reason", o.Reason), zap.String("trigger", string(e.Trigger)))
		}
	case o.Result.Failed():
		z.log.Warn("provider cleanup failed",
			zap.String("provider", e.ID), zap.String("method", o.Method), zap.Stringer("result", o.Result),
			zap.Duration("duration", o.Duration), zap.String("trigger", string(e.Trigger)), zap.Error(o.Err))
	default:
		if ce := z.log.Check(zapcore.DebugLevel, "provider cleaned up"); ce != nil {
			ce.Write(zap.String("provider", e.ID), zap.String("method", o.Method),
				zap.Duration("duration", o.Duration), zap.String("trigger", string(e.Trigger)))
		}
	}
}
