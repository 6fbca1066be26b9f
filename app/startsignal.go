package app

import (
	"context"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// startup is a start in progress: what cancelStartup needs to end it.
type startup struct {
	s       *config.Settings
	log     *zap.Logger
	app     *fx.App
	reg     *lifecycle.Registry
	engine  *Engine
	started <-chan error // app.Start's result
}

// cancelStartup ends a start that a signal interrupted, within the
// shutdown timeout from the signal, and returns Main's exit code: ExitOK
// if every provider initialized so far was cleaned up, ExitFailed if a
// cleanup failed or did not end in time, or a second signal came.
//
// The registry's Stop ends the start: it cancels the registry's Start,
// which initializes the templates' instances, and fxmodule cancels the
// Initialize a provider's hook runs, so that fx's start fails and fx
// rolls back. The context given to app.Start is left alone: fx would give
// its rollback that same context, done, and so run no OnStop hook, and
// the providers initialized would never be released for cleanup. The
// Stop's context, the shutdown timeout, bounds the cleanup instead.
func cancelStartup(st startup, sig os.Signal, signals <-chan os.Signal) int {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), st.s.ShutdownTimeout)
	defer cancel()
	st.engine.BeginShutdown()
	st.log.Info("start cancelled by signal: cleaning up what was initialized", zap.Stringer("signal", sig),
		zap.Duration("timeout", st.s.ShutdownTimeout))
	stopped := make(chan error, 1)
	go func() { stopped <- st.reg.Stop(ctx) }()

	var appStopped bool
	var appErr error // the app's Stop's, which holds the registry's
	select {
	case err := <-st.started:
		if err == nil {
			// The start ended before the Stop could cut it short: the
			// app's hooks stop it as after any start, releasing the
			// providers for the Stop to clean up.
			code, forcedExit, err := st.stopApp(ctx, signals)
			if forcedExit {
				return code
			}
			appErr = err
			appStopped = true
		}
		// Otherwise fx has rolled back: the providers are released.
	case <-ctx.Done():
	case sig := <-signals:
		return forced(st.log, st.reg, sig)
	}
	var err error
	select {
	case err = <-stopped:
	case sig := <-signals:
		return forced(st.log, st.reg, sig)
	}
	if appStopped {
		err = appErr
	}
	st.engine.awaitRemovals(ctx)
	logReport(st.log, st.reg, st.engine, st.s.LogFormat == "console")
	if err != nil {
		st.log.Error("start cancelled: providers failed to clean up", zap.Duration("duration", time.Since(begin)), zap.String("error", lifecycle.Redact(err.Error())))
		return ExitFailed
	}
	st.log.Info("start cancelled: service stopped", zap.Duration("duration", time.Since(begin)))
	return ExitOK
}

// stopApp stops an app whose start ended after the signal, and returns
// the Stop's error; or, if a second signal forces the exit, its exit code
// and true.
func (st startup) stopApp(ctx context.Context, signals <-chan os.Signal) (code int, forcedExit bool, err error) {
	stopped := make(chan error, 1)
	go func() { stopped <- st.app.Stop(ctx) }()
	select {
	case err := <-stopped:
		return 0, false, err
	case sig := <-signals:
		return forced(st.log, st.reg, sig), true, nil
	}
}
