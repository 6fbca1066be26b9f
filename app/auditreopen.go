package app

import (
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
)

// auditReopened logs that the audit log's file was moved, deleted or
// replaced under the service (logrotate without copytruncate, an operator)
// and a new one is open at its path, which the writer tells once per new
// file (file.Config.OnReopen). Records written before it noticed are in
// the old file, wherever it was moved to.
func auditReopened(log *zap.Logger) func(path, why string) {
	return func(path, why string) {
		log.Warn("audit log reopened: its file was no longer at its path; earlier records stay in the old file, later ones go to a new file there",
			zap.String("provider", config.AuditID), zap.String("path", path), zap.String("reason", why))
	}
}
