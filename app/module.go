package app

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Options is the service as fx options: the registry, the task store and
// the audit log as providers, the engine, and the admin server. Their hooks
// run in that order at start, and the other way at stop: the admin server
// finishes its requests, the engine stops, then the providers are cleaned
// up.
func Options(s *config.Settings, log *zap.Logger, m *Metrics) fx.Option {
	return fx.Options(
		fx.Supply(s, log, m),
		fx.WithLogger(fxmodule.EventLogger),
		fxmodule.Module,
		fxmodule.WithRegistryOptions(
			lifecycle.WithDefaultTimeout(s.ProviderTimeout),
			lifecycle.WithObserver(m),
		),
		fx.Supply(s.StoreConfig()),
		// The audit log's writer tells its failure to the engine's
		// readiness at once, as well as to the log (see auditFailing).
		fx.Supply(&auditFailing{}),
		fx.Provide(func(log *zap.Logger, failing *auditFailing) file.Config {
			return file.Config{ID: config.AuditID, Path: s.AuditPath, MaxBytes: s.AuditMaxBytes, MaxFiles: s.AuditMaxFiles, OnRepair: func(path string, dropped int64) {
				log.Warn("audit log repaired: the last record, cut short by a crash, was dropped",
					zap.String("path", path), zap.Int64("bytes_dropped", dropped))
			}, OnFailure: failing.failed(auditFailed(log)), OnRecovery: failing.recovered(auditRecovered(log)), OnReopen: auditReopened(log)}
		}),
		fxmodule.Provide(sqldb.New),
		fxmodule.Provide(file.New),
		fx.Provide(newEngine, newAdmin),
		fx.Invoke(func(*adminServer) {}),
	)
}
