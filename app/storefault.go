package app

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// storeFaultEvery bounds how often a failing store is logged: during an
// outage every task fails the same way, and one line a second, with the
// count of those not logged, says as much as one line a task.
const storeFaultEvery = time.Second

// storeFaults logs the task store's errors, which no answer carries: a
// database's own words (SQLSTATE codes, what it refused of a value, its
// host) are the operator's, not the client's.
type storeFaults struct {
	mu     sync.Mutex // guards last and hidden
	last   time.Time  // when the last line was logged
	hidden int        // failures since then not logged
}

// storeFault logs err, redacted and throttled, and returns what the answer
// says instead, with what could not be done: errStoreUnavailable, or
// errAuditUnavailable when it was the audit log that failed.
func (e *Engine) storeFault(what string, err error) error {
	// The answer is 503 either way; refusals are counted by which failed.
	kind := errStoreUnavailable
	if errors.Is(err, errAuditUnavailable) {
		kind = errAuditUnavailable
	}
	e.faults.mu.Lock()
	now := time.Now()
	if now.Sub(e.faults.last) < storeFaultEvery {
		e.faults.hidden++
		e.faults.mu.Unlock()
		return fmt.Errorf("%w: %s", kind, what)
	}
	hidden := e.faults.hidden
	e.faults.last, e.faults.hidden = now, 0
	e.faults.mu.Unlock()
	// err is the store's, or the audit log's when a record's audit line
	// failed: either way the task is not recorded; the answer says which
	// failed, and the log says how.
	e.log.Warn("task record failed: "+what, zap.String("error", lifecycle.Redact(err.Error())),
		zap.Int("failures_not_logged", hidden))
	return fmt.Errorf("%w: %s", kind, what)
}
