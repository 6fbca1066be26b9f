package lifecycle_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Property 11: the log lines, at their levels, with their fields. On
// synctest's clock the 30ms timeout that ends the hung cleanup passes only
// while every goroutine waits, so the other cleanups end within theirs
// however slowly the machine runs them.
func TestCleanupLogLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, _ := gate(t)
		core, logs := observer.New(zapcore.DebugLevel)
		r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)), lifecycle.WithDefaultTimeout(30*time.Millisecond))
		ok := newFake("ok", &journal{})
		bad := newFake("bad", &journal{})
		bad.cleanup = failing(errBoom)
		hung := newFake("hung", &journal{})
		hung.cleanup = ignoring(release)
		for _, p := range []lifecycle.Provider{ok, bad, hung, &noMethod{id: "bare"}} {
			mustRegister(t, r, p)
		}
		require.NoError(t, r.Start(context.Background()))
		require.Error(t, r.Stop(context.Background()))

		began := logs.FilterMessage("cleaning up providers").All()
		require.Len(t, began, 1)
		assert.Equal(t, zapcore.InfoLevel, began[0].Level)
		assert.EqualValues(t, 4, began[0].ContextMap()["providers"])

		ended := logs.FilterMessage("providers cleaned up").All()
		require.Len(t, ended, 1)
		assert.Equal(t, zapcore.InfoLevel, ended[0].Level)
		fields := ended[0].ContextMap()
		assert.EqualValues(t, 4, fields["providers"])
		assert.EqualValues(t, 1, fields["ok"])
		assert.EqualValues(t, 1, fields["skipped"])
		assert.EqualValues(t, 2, fields["failed"])
		assert.Contains(t, fields, "duration")

		cleaned := logs.FilterMessage("provider cleaned up").All()
		require.Len(t, cleaned, 1)
		assert.Equal(t, zapcore.DebugLevel, cleaned[0].Level)
		assert.Equal(t, "ok", cleaned[0].ContextMap()["provider"])
		assert.Equal(t, "Cleanup", cleaned[0].ContextMap()["method"])
		assert.Contains(t, cleaned[0].ContextMap(), "duration")

		failed := logs.FilterMessage("provider cleanup failed").All()
		require.Len(t, failed, 2)
		byID := map[string]map[string]any{}
		for _, e := range failed {
			assert.Equal(t, zapcore.WarnLevel, e.Level)
			byID[e.ContextMap()["provider"].(string)] = e.ContextMap()
		}
		assert.Contains(t, byID["bad"]["error"], "boom")
		assert.Equal(t, "error", byID["bad"]["result"])
		assert.Contains(t, byID["hung"]["error"], "timeout")
		assert.Equal(t, "timeout", byID["hung"]["result"])

		skipped := logs.FilterMessage("provider has no cleanup method").All()
		require.Len(t, skipped, 1)
		assert.Equal(t, zapcore.WarnLevel, skipped[0].Level)
		assert.Equal(t, "bare", skipped[0].ContextMap()["provider"])
	})
}

// The observer sees the same events as the log, as typed values.
func TestObserverReceivesTypedEvents(t *testing.T) {
	obs := &events{}
	r := lifecycle.NewRegistry(lifecycle.WithObserver(obs))
	mustRegister(t, r, newFake("a", &journal{}))
	mustRegister(t, r, newFake("b", &journal{}), lifecycle.DependsOn("a"))
	require.NoError(t, r.Start(context.Background()))
	require.NoError(t, r.Stop(context.Background()))

	var kinds []string
	for _, e := range obs.snapshot() {
		switch e := e.(type) {
		case lifecycle.ProviderRegistered:
			kinds = append(kinds, "registered "+e.ID)
		case lifecycle.StartBegan:
			kinds = append(kinds, "start")
		case lifecycle.ProviderInitialized:
			kinds = append(kinds, "initialized "+e.ID)
		case lifecycle.StartEnded:
			kinds = append(kinds, "started")
		case lifecycle.CleanupBegan:
			kinds = append(kinds, "cleanup "+string(e.Trigger))
		case lifecycle.ProviderCleaned:
			kinds = append(kinds, "cleaned "+e.ID+" "+e.Outcome.Result.String())
		case lifecycle.CleanupEnded:
			kinds = append(kinds, "cleaned up "+string(e.Trigger))
			assert.Len(t, e.Report.Providers, 2)
		}
	}
	assert.Equal(t, []string{
		"registered a", "registered b", "start", "initialized a", "initialized b", "started",
		"cleanup stop", "cleaned b ok", "cleaned a ok", "cleaned up stop",
	}, kinds)
}

// The per-provider debug lines follow the logger's level as it is when
// the providers are cleaned up, not when the registry was built.
func TestDebugLinesFollowALevelChangedAtRunTime(t *testing.T) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	core, logs := observer.New(level)
	r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
	mustRegister(t, r, newFake("db", &journal{}))
	require.NoError(t, r.Start(context.Background()))
	level.SetLevel(zapcore.DebugLevel)
	require.NoError(t, r.Stop(context.Background()))
	cleaned := logs.FilterMessage("provider cleaned up").All()
	require.Len(t, cleaned, 1)
	assert.Equal(t, "db", cleaned[0].ContextMap()["provider"])
}

// A provider whose Initialize never began (Stop came first) holds nothing:
// that is logged at debug level, not warned about as a provider without a
// cleanup method.
func TestNeverInitializedIsNotWarnedAbout(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
	mustRegister(t, r, newFake("idle", &journal{}))
	require.NoError(t, r.Stop(context.Background()))

	assert.Equal(t, lifecycle.ReasonNotInitialized, r.Report().Providers["idle"].Reason)
	assert.Empty(t, logs.FilterMessage("provider has no cleanup method").All())
	lines := logs.FilterMessage("provider never initialized: nothing to clean up").All()
	require.Len(t, lines, 1)
	assert.Equal(t, zapcore.DebugLevel, lines[0].Level)
	assert.Equal(t, "idle", lines[0].ContextMap()["provider"])
}

// A start of staged providers alone initializes none, so it says nothing
// at info level: "providers initialized" before any was would mislead.
// One with providers of its own still says both at info.
func TestAStartOfStagedProvidersAloneLogsAtDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
	mustRegister(t, r, newFake("db", &journal{}), lifecycle.Staged())
	require.NoError(t, r.Start(context.Background()))
	for _, msg := range []string{"initializing providers", "providers initialized"} {
		lines := logs.FilterMessage(msg).All()
		require.Len(t, lines, 1, msg)
		assert.Equal(t, zapcore.DebugLevel, lines[0].Level, msg)
		assert.EqualValues(t, 1, lines[0].ContextMap()["staged"])
	}
	r.AllowCleanup("db")
	require.NoError(t, r.Stop(context.Background()))

	core, logs = observer.New(zapcore.DebugLevel)
	r = lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)))
	mustRegister(t, r, newFake("db", &journal{}), lifecycle.Staged())
	mustRegister(t, r, newFake("cache", &journal{}))
	require.NoError(t, r.Start(context.Background()))
	for _, msg := range []string{"initializing providers", "providers initialized"} {
		lines := logs.FilterMessage(msg).All()
		require.Len(t, lines, 1, msg)
		assert.Equal(t, zapcore.InfoLevel, lines[0].Level, msg)
	}
	r.AllowCleanup("db")
	require.NoError(t, r.Stop(context.Background()))
}

// A health check that hangs returns late at every poll while its provider
// hangs: that is logged at debug, since the report says it (timed out) and
// the poller logs the transition once; a late cleanup stays a warning.
func TestALateHealthCheckIsNotAWarningAtEveryPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)), lifecycle.WithHealthTimeout(10*time.Millisecond))
		hung := newFake("hung", &journal{})
		hung.health = func(ctx context.Context) lifecycle.Health {
			<-ctx.Done()
			time.Sleep(time.Millisecond) // returns after its bound
			return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "no answer"}
		}
		mustRegister(t, r, hung)
		require.NoError(t, r.Start(context.Background()))
		for range 3 {
			assert.Equal(t, lifecycle.StatusUnhealthy, r.Health(context.Background()).Providers["hung"].Status)
			synctest.Wait()
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		late := logs.FilterMessage("provider returned after the registry stopped waiting").All()
		require.NotEmpty(t, late)
		for _, l := range late {
			assert.Equal(t, zapcore.DebugLevel, l.Level)
			assert.Equal(t, "health", l.ContextMap()["op"])
		}
		require.NoError(t, r.Stop(context.Background()))
	})
}
