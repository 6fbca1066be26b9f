package app

import (
	"sync/atomic"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// auditFailing is the audit log's failure as its writer tells it
// (file.Config.OnFailure and OnRecovery), from the moment it begins to the
// moment it ends. Readiness reads it besides the health poll's check of
// the audit log: a task is refused as soon as its record finds the buffer
// full and cannot flush it, which is the writer's failure, so /readyz must
// answer 503 by then, not once the next poll has checked the writer, up to
// health_interval later. It reads an atomic, never the writer, whose lock
// a hung disk may hold.
type auditFailing struct {
	why atomic.Pointer[string] // the reason readiness gives; nil while writes succeed
}

// failed notes that the writer's writes began to fail, with err, and then
// tells next (which logs it). The writer calls it with its lock held: it
// must not call the writer.
func (a *auditFailing) failed(next func(path string, err error)) func(path string, err error) {
	return func(path string, err error) {
		// The words of the writer's own health check, which the next poll
		// reads: the reason does not change when the poll catches up.
		why := lifecycle.Redact("writes are failing: " + err.Error())
		a.why.Store(&why)
		next(path, err)
	}
}

// recovered notes that a write succeeded again, and then tells next.
func (a *auditFailing) recovered(next func(path string)) func(path string) {
	return func(path string) {
		a.why.Store(nil)
		next(path)
	}
}

// reason says why the audit log is not ready, or "" while its writes
// succeed.
func (a *auditFailing) reason() string {
	if why := a.why.Load(); why != nil {
		return *why
	}
	return ""
}
